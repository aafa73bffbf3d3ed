"""The scikit-learn estimator: :class:`ErasableClassifier`.

It follows the estimator conventions (parameters in ``__init__``, fitted attributes with a
trailing underscore, ``fit`` / ``partial_fit`` / ``predict`` / ``predict_proba`` /
``decision_function``) and adds what only an additive model can offer:
``forget``, ``merge``, ``certificate`` and ``save`` / ``load``.

>>> from sklearn.datasets import load_digits
>>> X, y = load_digits(return_X_y=True)
>>> X = X / 16.0                                    # inputs must fit the fixed-point scale
>>> clf = ErasableClassifier(width=512, scale_bits=11).fit(X[:1500], y[:1500], ids=range(1500))
>>> round(clf.score(X[1500:], y[1500:]), 2) > 0.9
True
>>> before = clf.certificate()
>>> clf = clf.partial_fit(X[1500:1510], y[1500:1510], ids=range(1500, 1510)).forget(ids=range(1500, 1510))
>>> clf.certificate() == before
True
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from erasable.encoders import CUSTOM, Encoder
from erasable.exact import clipping_message
from erasable.model import ForgetReceipt, HeadKind, Model, ModelConfig
from erasable.model_file import load_model, save_model
from erasable.parameters import DEFAULTS

__all__ = ["ErasableClassifier"]


class ErasableClassifier(ClassifierMixin, BaseEstimator):
    """Exactly erasable classifier on fixed embeddings.

    Parameters
    ----------
    head : {"ridge", "kernel", "prototype", "gaussian", "memory"}, default="ridge"
        Ridge regression on the features (analytic learning); kernel ridge on the arc-cosine
        kernel, the features' infinite-width limit, solved from the samples (more accurate,
        at O(n^3) per change: up to 20,000 samples, see :mod:`erasable.heads.kernel`);
        nearest class mean; shared-covariance Gaussian (LDA); or k-nearest-neighbour memory
        (extra ``memory``).
    feature_map : {"random_relu", "identity"}, default="random_relu"
        Features for the ridge head: a seeded ±1 projection with ReLU (the ACIL buffer),
        or the quantized embeddings themselves.
    width : int, default=4096
        Width of the random ReLU features. 4096 gives 93.6% on BANKING77 (2048: 93.0%, int16 features);
        the statistics grow as width**2.
    seed : int, default=0
        Seed of the random projection.
    feature_bits : int, default=6
        Bits of each random ReLU feature, 1 to 15. Below 15 the features are scale-free:
        ``min(floor(ReLU(e @ P) * 2**(bits - 2) / ||e||), 2**bits - 1)``, four standard deviations
        of each projection at the top whatever the input's norm. Six bits are within 0.1 point of
        int16 features on validation splits of BANKING77, HWU64 and Fashion-MNIST, and their Gram
        sums exactly in float32, twice as fast as in float64. 15 is the shifted int16 map of
        earlier models, whose shift never saturates a unit-norm input.
    scale_bits : int, default=13
        Fixed-point scale: inputs are stored as ``round(x * 2**scale_bits)`` in int16, so
        ``|x|`` must stay below ``2**(15 - scale_bits)`` (4 by default, right for unit-norm
        embeddings). Learning refuses inputs beyond it (``OverflowRiskError``); predicting
        clips them, with a ``UserWarning`` that counts them.
    alpha : float or None, default=None
        Ridge penalty relative to the mean eigenvalue of the centered feature Gram;
        ``None`` chooses it by generalized cross-validation.
    temperature : float, default=0.07
        Softmax temperature of the ridge probabilities.
    metric : {"cosine", "euclidean"}, default="cosine"
        Distance of the prototype head.
    shrinkage : float, default=0.05
        Shrinkage of the Gaussian head's covariance towards the identity.
    encoder : None, "text", "text-mpnet", "image", "text:PATH" or an Encoder, default=None
        ``None``: ``X`` holds embedding vectors. ``"text"``: ``X`` holds strings, embedded
        by all-MiniLM-L6-v2 (extra ``text``); ``"text-mpnet"``: by all-mpnet-base-v2 (extra
        ``text-mpnet``; more accurate, about 5x slower to encode); ``"text:PATH"``: by the sentence-transformers
        model saved in the directory PATH; ``"image"``: ``X`` holds images (arrays or
        ``pathlib.Path``), embedded by EfficientNet-Lite0 (extra ``image``). Or any object
        with ``name``, ``dim``, ``identity`` and ``encode`` (see ``erasable.encoders``, e.g.
        ``CallableEncoder``): a saved model records its identity, and ``load`` needs the
        object again (``encoder=``). The encoder's identity is part of the model: inputs of
        another encoder are refused.
    cache_dir : str or None, default=None
        Directory of an on-disk embedding cache for raw inputs (re-runs do not re-encode).

    Attributes
    ----------
    model_ : erasable.model.Model
        The statistics, the live samples and the derived heads.
    classes_ : ndarray
        Live classes, in sorted order (a class disappears when its last sample is forgotten).
    n_features_in_ : int
        Dimension of the input vectors.
    feature_names_in_ : ndarray
        Column names, when ``X`` was a DataFrame with string column names.

    Examples
    --------
    scikit-learn's bundled handwritten digits (1,797 real 8x8 scans) as a DataFrame, the
    pixels scaled to the fixed-point range; forgetting 100 samples gives exactly the model
    fitted without them:

    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True, as_frame=True)
    >>> X = X / 16
    >>> clf = ErasableClassifier(width=512, scale_bits=11).fit(X[:1500], y[:1500])
    >>> round(clf.score(X[1500:], y[1500:]), 3), clf.feature_names_in_[:2].tolist()
    (0.939, ['pixel_0_0', 'pixel_0_1'])
    >>> rest = ErasableClassifier(width=512, scale_bits=11).fit(X[100:1500], y[100:1500], ids=range(100, 1500))
    >>> clf.forget(ids=range(100)).certificate() == rest.certificate()
    True

    ``sample_weight`` holds repeat counts -- exactly the statistics of the repeated rows:

    >>> twice = ErasableClassifier(width=512, scale_bits=11).fit(X[:2], y[:2], sample_weight=[2, 1])
    >>> repeated = ErasableClassifier(width=512, scale_bits=11).fit(X.iloc[[0, 0, 1]], y.iloc[[0, 0, 1]])
    >>> twice.certificate() == repeated.certificate()
    True
    """

    def __init__(
        self,
        head: HeadKind = DEFAULTS["head"],
        feature_map: Literal["random_relu", "identity"] = DEFAULTS["feature_map"],
        width: int = DEFAULTS["width"],
        seed: int = DEFAULTS["seed"],
        feature_bits: int = DEFAULTS["feature_bits"],
        scale_bits: int = DEFAULTS["scale_bits"],
        alpha: float | None = DEFAULTS["alpha"],
        temperature: float = DEFAULTS["temperature"],
        metric: Literal["cosine", "euclidean"] = DEFAULTS["metric"],
        shrinkage: float = DEFAULTS["shrinkage"],
        encoder: str | Encoder | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.head = head
        self.feature_map = feature_map
        self.width = width
        self.seed = seed
        self.feature_bits = feature_bits
        self.scale_bits = scale_bits
        self.alpha = alpha
        self.temperature = temperature
        self.metric = metric
        self.shrinkage = shrinkage
        self.encoder = encoder
        self.cache_dir = cache_dir

    # -- configuration -----------------------------------------------------------------------

    def model_config(self, input_dim: int | None = None) -> ModelConfig:
        """The model configuration these parameters describe, for inputs of ``input_dim``.

        With an encoder, the dimension is the encoder's and ``input_dim`` may be omitted.
        See :meth:`ModelConfig.from_parameters`, which ``erasable learn`` and the service use too.
        """
        parameters = {name: getattr(self, name) for name in DEFAULTS}
        return ModelConfig.from_parameters(input_dim, encoder=self.encoder, **parameters)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # -- learning ----------------------------------------------------------------------------

    def _validated(
        self, X: ArrayLike, y: ArrayLike, reset: bool, incremental: bool
    ) -> tuple[NDArray[np.float64], NDArray[Any]]:
        X_checked, y_checked = validate_data(self, X, y, reset=reset, dtype=np.float64)
        if not incremental:
            check_classification_targets(y_checked)
        else:  # an increment may well hold more classes than half its samples: no warning
            kind = type_of_target(y_checked)
            if kind not in ("binary", "multiclass"):
                raise ValueError(f"Unknown label type: {kind}; expected discrete class labels.")
        return X_checked, y_checked

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        ids: ArrayLike | None = None,
        subjects: Sequence[str | None] | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> ErasableClassifier:
        """Learn from scratch on ``X`` (vectors, or raw inputs with an encoder) and ``y``; ``ids`` default to 0..n-1.

        ``sample_weight``: non-negative integer repeat counts (see :meth:`_repeated`).
        """
        model = self._encoding_model()
        if model is not None and ids is not None:
            model.check_new_ids(ids)  # before the encoder's long work
        X_checked, y_checked = self._validated(
            self._embedded(X, model, to_learn=True), y, reset=True, incremental=False
        )
        model = model or Model(self.model_config(X_checked.shape[1]))
        X_kept, y_kept, ids, subjects = _repeated(X_checked, y_checked, ids, subjects, sample_weight)
        model.learn(X_kept, y_kept, ids=ids, subjects=subjects)
        self.model_ = model
        return self

    def partial_fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        classes: ArrayLike | None = None,
        ids: ArrayLike | None = None,
        subjects: Sequence[str | None] | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> ErasableClassifier:
        """Add samples to what is learned. New classes may appear at any time.

        ``classes`` is accepted for scikit-learn compatibility; when given, every label of
        ``y`` must be in it. The model itself only ever knows the classes it has samples of.
        ``sample_weight``: non-negative integer repeat counts, as in :meth:`fit`.
        """
        first = not hasattr(self, "model_")
        model = self._encoding_model() if first else self.model_
        if model is not None and model.config.encoder is not None and ids is not None:
            model.check_new_ids(ids)  # before the encoder's long work
        X_checked, y_checked = self._validated(
            self._embedded(X, model, to_learn=True), y, reset=first, incremental=True
        )
        if classes is not None and not np.isin(y_checked, np.asarray(classes)).all():
            raise ValueError("y contains labels that are not in `classes`.")
        model = model or Model(self.model_config(X_checked.shape[1]))
        X_kept, y_kept, ids, subjects = _repeated(X_checked, y_checked, ids, subjects, sample_weight)
        model.learn(X_kept, y_kept, ids=ids, subjects=subjects)
        self.model_ = model
        return self

    def forget(
        self,
        ids: ArrayLike | None = None,
        subjects: Sequence[str] | None = None,
        X: ArrayLike | None = None,
        y: ArrayLike | None = None,
    ) -> ErasableClassifier:
        """Remove samples by ``ids``, by ``subjects``, or given as ``X`` with ``y``.

        The statistics afterwards are exactly those of a fit on the remaining samples; the
        served ridge head follows by a low-rank update (no refit). See :attr:`last_forget_`
        for the ids removed and the certificates before and after.
        """
        check_is_fitted(self)
        if X is not None:
            X = validate_data(self, self._embedded(X, self.model_), reset=False, dtype=np.float64)
        self.last_forget_: ForgetReceipt = self.model_.forget(ids=ids, subjects=subjects, embeddings=X, labels=y)
        return self

    def steer(
        self,
        *,
        classes: dict[Any, float] | None = None,
        subjects: dict[str, float] | None = None,
        ids: dict[str, float] | None = None,
    ) -> ErasableClassifier:
        """Weigh the memory head's votes by class, subject or sample id (see :meth:`Model.steer`).

        >>> import numpy as np
        >>> X = np.array([[1.0, 0.1], [0.9, 0.3], [0.1, 1.0]])
        >>> clf = ErasableClassifier(head="memory", scale_bits=8).partial_fit(
        ...     X, ["x", "y", "y"], ids=["a", "b", "c"], subjects=["web", "crawler", "web"])
        >>> clf.predict([[0.95, 0.25]]).tolist(), clf.steer(subjects={"crawler": 0}).predict([[0.95, 0.25]]).tolist()
        (['y'], ['x'])
        """
        check_is_fitted(self)
        self.model_.steer(classes=classes, subjects=subjects, ids=ids)
        return self

    def merge(self, other: ErasableClassifier) -> ErasableClassifier:
        """Add all samples of ``other`` (same parameters, disjoint ids): exact federated merge."""
        check_is_fitted(self)
        check_is_fitted(other)
        self.model_.merge(other.model_)
        return self

    # -- predictions -------------------------------------------------------------------------

    @property
    def classes_(self) -> NDArray[Any]:
        if not hasattr(self, "model_"):
            raise NotFittedError("This ErasableClassifier is not fitted yet.")
        return np.asarray(self.model_.classes)

    def _encoding_model(self) -> Model | None:
        """A new model whose encoder will embed the raw inputs; ``None`` for a model of vectors."""
        if self.encoder is None:
            return None
        model = Model(self.model_config())
        if isinstance(self.encoder, Encoder):
            model.attach_encoder(self.encoder)  # a named encoder the model builds itself, on first use
        return model

    def _embedded(self, X: Any, model: Model | None, to_learn: bool = False) -> Any:
        """``X`` itself for a model of vectors; the encoder's embeddings of ``X`` otherwise (see ``Model.embed``)."""
        if model is None or model.config.encoder is None:
            return X
        items = list(X) if not isinstance(X, np.ndarray) else X
        return model.embed(items, cache_dir=self.cache_dir, to_learn=to_learn)

    def _inputs(self, X: ArrayLike) -> NDArray[np.float64]:
        """The vectors to predict; a ``UserWarning`` says how many exceed the fixed-point range (they are clipped)."""
        check_is_fitted(self)
        inputs = validate_data(self, self._embedded(X, self.model_), reset=False, dtype=np.float64)
        if clipped := self.model_.clipped(inputs):
            warnings.warn(clipping_message(clipped, len(inputs), self.model_.config.scale_bits), stacklevel=3)
        return inputs

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class scores (n, K); for two classes, the score of ``classes_[1]`` minus ``classes_[0]``."""
        inputs = self._inputs(X)
        scores = self.model_.decision_function(inputs)
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        if scores.shape[1] == 1:
            return scores[:, 0]
        return scores

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities (n, K), columns in the order of ``classes_``."""
        inputs = self._inputs(X)
        return self.model_.predict_proba(inputs)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The class with the highest score, for each row of ``X``."""
        inputs = self._inputs(X)
        scores = self.model_.decision_function(inputs)
        return self.classes_[np.argmax(scores, axis=1)]

    def ood_score(self, X: ArrayLike) -> NDArray[np.float64]:
        """Out-of-distribution score, higher for inputs unlike every class (see :meth:`Model.ood_score`)."""
        inputs = self._inputs(X)
        return self.model_.ood_score(inputs)

    # -- identity and files ------------------------------------------------------------------

    def certificate(self) -> str:
        """SHA-256 of the configuration and statistics; equal to that of a refit on the live samples."""
        check_is_fitted(self)
        return self.model_.certificate()

    def refresh(self) -> ErasableClassifier:
        """Recompute the served heads canonically from the statistics."""
        check_is_fitted(self)
        self.model_.refresh()
        return self

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model (statistics, live samples, config) to ``path``; no pickle."""
        check_is_fitted(self)
        save_model(self.model_, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, encoder: Encoder | None = None) -> ErasableClassifier:
        """Read a model file written by :meth:`save`, verifying its digest and certificate.

        A model built on an encoder object needs it again: ``encoder`` (of the same identity).
        """
        model = load_model(path)
        if encoder is not None:
            model.attach_encoder(encoder)
        return cls.from_model(model)

    @classmethod
    def from_model(cls, model: Model) -> ErasableClassifier:
        """Wrap an existing :class:`~erasable.model.Model` in an estimator."""
        config = model.config
        parameters = config.parameters()
        if parameters["encoder"] == CUSTOM:
            parameters["encoder"] = model.encoder  # the object attached to it
        estimator = cls(**parameters)
        if estimator.model_config(config.input_dim) != config:
            raise ValueError("This model's configuration cannot be expressed by ErasableClassifier parameters.")
        estimator.model_ = model
        estimator.n_features_in_ = config.input_dim
        return estimator


def _repeated(
    X: NDArray[np.float64],
    y: NDArray[Any],
    ids: ArrayLike | None,
    subjects: Sequence[str | None] | None,
    sample_weight: ArrayLike | None,
) -> tuple[NDArray[np.float64], NDArray[Any], ArrayLike | None, Sequence[str | None] | None]:
    """The samples to learn when ``sample_weight`` holds repeat counts: row i ``sample_weight[i]`` times.

    A weight of 0 leaves the row out, 2 learns it twice (under two automatic ids, same subject):
    the statistics are exactly those of the repeated rows, and forgetting a subject removes every
    copy. Fractional weights are refused -- no additive integer statistic represents them -- and
    so are weights above 1 with ``ids`` (one id would be learned twice).
    """
    if sample_weight is None:
        return X, y, ids, subjects
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (len(y),):
        raise ValueError(f"sample_weight must hold one weight per sample ({len(y)}), got shape {weights.shape}.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or np.any(weights != np.round(weights)):
        raise ValueError(
            "sample_weight must hold non-negative integers: repeat counts (0 leaves a sample out, 2 learns it "
            "twice); fractional weights have no exact additive statistics."
        )
    if not weights.any():
        raise ValueError("Sample weights must contain at least one non-zero number (all are 0: nothing to learn).")
    counts = weights.astype(np.int64)
    if ids is not None and counts.max(initial=0) > 1:
        raise ValueError("sample_weight above 1 with ids would learn one id twice: give each copy its own id.")
    rows = np.repeat(np.arange(len(y)), counts).tolist()
    kept_ids = None if ids is None else [list(np.asarray(ids, dtype=object))[i] for i in rows]
    kept_subjects = None if subjects is None else [subjects[i] for i in rows]
    return X[rows], y[rows], kept_ids, kept_subjects

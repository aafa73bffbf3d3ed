"""The model: configuration + sample registry + statistics, with learn / forget / merge / certify.

A :class:`Model` keeps the live samples (in its :class:`~erasable.registry.SampleRegistry`)
and its :class:`~erasable.statistics.Statistics`: the Moments of the quantized embeddings
(for the prototype and Gaussian heads) and, when the feature map is not the identity, those
of the features (for the ridge head). The heads it predicts with are derived from them on
demand by its :class:`~erasable.served_heads.ServedHeads`, which caches them and keeps
them in step with each change.

The invariant: after any sequence of :meth:`Model.learn`, :meth:`Model.forget` and
:meth:`Model.merge`, the statistics -- hence :meth:`Model.certificate` -- are identical to
those of :meth:`Model.refit`, a model built from scratch on the live samples.

Every operation validates its input and computes the new statistics before it changes
anything, so a failure leaves the model as it was: a learn, forget or merge is planned
(:meth:`Model.plan_learn`, :meth:`Model.plan_forget`, :meth:`Model.plan_merge`) into a
:class:`Change`, and :meth:`Model.apply` is the one place a change is made -- for Dask fits
and forgets too, which plan from the statistics their workers reduced. :meth:`Model.restore`
is the one way to rebuild a model a file, a ledger or a federated merge recorded.

>>> import numpy as np
>>> config = ModelConfig(input_dim=2, scale_bits=8)
>>> model = Model(config)
>>> model.learn(np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]]), ["x", "y", "x"], ids=["1", "2", "3"])
>>> receipt = model.forget(ids=["3"])
>>> receipt.certificate_after == model.refit().certificate()
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from erasable.changes import Change, ForgetReceipt
from erasable.config import HEAD_KINDS, MAX_DIM, MAX_PROJECTION, HeadKind, ModelConfig
from erasable.encoders import CUSTOM, Batch, Encoder, check_same_encoder, encode_batched, load_encoder
from erasable.exact import OverflowRiskError, clipped_rows, quantize
from erasable.features import Identity, RandomReLU, feature_map_from_config
from erasable.heads import Head, KernelHead, RidgeHead
from erasable.moments import Label, Moments, MomentsMismatchError, canonical_labels, require_unicode
from erasable.registry import SampleRegistry
from erasable.served_heads import ServedHeads
from erasable.statistics import Statistics
from erasable.steering import Steering

if TYPE_CHECKING:
    from erasable.heads.memory import MemoryHead

#: Computes the statistics of quantized rows and their labels somewhere else than in this process (a cluster).
BatchStatistics = Callable[[NDArray[np.int16], NDArray[np.generic]], Statistics]
#: Rows quantized and accumulated at a time: bounds memory, feeds progress bars (features: FEATURE_CHUNK_BYTES).
CHUNK_ROWS = 4096
#: Feature rows mapped at a time, counted as float32 bytes: 1,024 rows at width 4096 (16 MB, below glibc's largest
#: mmap threshold, so each chunk reuses the last one's memory instead of faulting in fresh pages). The Gram's
#: kernel still gets large batches: the accumulator gathers 7-bit rows (``exact.STAGED_BYTES``). Fitting
#: BANKING77 took 0.57-0.66 s instead of 0.62-1.10 s with 4,096-row chunks (alternated new processes).
FEATURE_CHUNK_BYTES = 2**24
#: Bytes of float64 features scored at a time: below glibc's largest mmap threshold (32 MB), so that each chunk's
#: arrays reuse the last one's memory instead of faulting in fresh pages (at width 4096: 512 rows, 10,003 inputs
#: scored in 0.52 s instead of 0.55-1.5 s by 4096-row chunks, one thread).
SCORE_CHUNK_BYTES = 2**24
#: Batches up to this size update the Gram matrices in one pass instead of accumulating their own.
SMALL_BATCH = 256

__all__ = [
    "HEAD_KINDS",
    "MAX_DIM",
    "MAX_PROJECTION",
    "BatchStatistics",
    "Change",
    "ForgetReceipt",
    "Model",
    "ModelConfig",
    "Predictions",
]


class Predictions(NamedTuple):
    """What a head says of some inputs: :meth:`Model.predictions`."""

    decision: NDArray[np.float64]  # (n, K) scores, classes in sorted order
    probabilities: NDArray[np.float64]  # (n, K)
    ood_scores: NDArray[np.float64]  # (n,) in [0, 1): higher for inputs unlike every class


def _top_probability_ood(probabilities: NDArray[np.float64]) -> NDArray[np.float64]:
    """The out-of-distribution score of a head other than ridge: 1 - the top probability of each row (n, K).

    >>> _top_probability_ood(np.array([[0.9, 0.1], [0.5, 0.5]])).round(2).tolist()
    [0.1, 0.5]
    """
    return np.asarray(1.0 - probabilities.max(axis=1))


def _as_id_list(ids: ArrayLike | None) -> list[str] | None:
    if ids is None:
        return None
    values = np.asarray(ids, dtype=object).ravel().tolist()
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
            raise TypeError(f"Sample ids must be strings or integers, got {value!r}.")
        out.append(str(value))
    return out


class Model:
    """See the module docstring."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.feature_map: Identity | RandomReLU = feature_map_from_config(config.feature_map)
        self.registry = SampleRegistry(config.input_dim)
        self._statistics = Statistics.empty(config.input_dim, config.feature_dim)
        self.next_auto_id = 0
        self.steering = Steering()  # vote weights of the memory head, see steer()
        self._heads = ServedHeads(self)
        self._encoder: Encoder | None = None

    @classmethod
    def restore(
        cls,
        config: ModelConfig,
        statistics: Statistics,
        *,
        samples: SampleRegistry | None = None,
        next_auto_id: int = 0,
        features_from_samples: bool = False,
    ) -> Model:
        """The model a model file, a ledger or a federated merge recorded: its statistics, live samples and id counter.

        ``samples`` (the model takes them over) may be left out: a model of merged
        statistics alone predicts, and forgets whole clients by subtraction, not samples;
        no other model can merge it (:meth:`plan_merge`).
        ``features_from_samples``: the feature statistics were left to the samples (a small
        model's file or ledger, see :func:`erasable.model_file.recomputes_features`), so
        ``statistics.features`` is ``None`` and they are accumulated again here, as learning
        the samples would. Nothing here checks that the samples sum to the statistics:
        compare :meth:`certificate` with the one recorded, and :meth:`refit` with it.
        """
        model = cls(config)
        if samples is not None:
            if samples.dim != config.input_dim:
                raise ValueError(f"Samples of dimension {samples.dim} for a model of input_dim {config.input_dim}.")
            model.registry = samples
        if (statistics.features is None) != (config.feature_dim is None or features_from_samples):
            raise ValueError("Feature statistics must be given exactly when the feature map is not the identity.")
        if features_from_samples:
            features = model.statistics.features
            if len(model.registry):
                labels = canonical_labels(model.registry.labels)
                features = model.batch_statistics(np.asarray(model.registry.embeddings), labels).features
            statistics = Statistics(statistics.embedding, features)
        if statistics.embedding.dim != config.input_dim or (
            statistics.features is not None and statistics.features.dim != config.feature_dim
        ):
            raise ValueError("The statistics do not have the dimensions of the config.")
        model._statistics = statistics
        model.next_auto_id = next_auto_id
        return model

    # -- state ----------------------------------------------------------------------------

    @property
    def statistics(self) -> Statistics:
        """The statistics of the live samples: what the certificate covers, with the config."""
        return self._statistics

    @property
    def embedding_moments(self) -> Moments:
        return self._statistics.embedding

    @property
    def feature_moments(self) -> Moments | None:
        """The Moments of the features; ``None`` under the identity feature map."""
        return self._statistics.features

    @property
    def classes(self) -> tuple[Label, ...]:
        return self._statistics.classes

    @property
    def count(self) -> int:
        return self._statistics.count

    @property
    def holds_its_samples(self) -> bool:
        """Whether the registry holds every sample the statistics count.

        False only for statistics alone (a federated :meth:`~erasable.federated.ClientStatistics.to_model`):
        such a model predicts, but cannot be merged into another, saved as a model file, or
        solved in the dual, which all need the samples.
        """
        return len(self.registry) == self.count

    @property
    def ridge_moments(self) -> Moments:
        """The statistics the ridge head is derived from: features, or embeddings under the identity map."""
        return self.feature_moments if self.feature_moments is not None else self.embedding_moments

    @property
    def ridge_unit(self) -> float:
        """Square of the fixed-point scale of the ridge features: their integer value per natural unit.

        The ridge penalty is ``alpha * ridge_unit``, so ``alpha`` has scikit-learn's meaning
        for features in natural units (embedding units, halved per bit of feature-map shift;
        for scale-free features, those of a unit-norm input: ``2**(bits - 2)`` per unit).
        """
        fmap = self.config.feature_map
        if fmap.get("scale_free"):
            return 4.0 ** (fmap["bits"] - 2)
        return 4.0 ** (self.config.scale_bits - fmap.get("shift", 0))

    def certificate(self) -> str:
        """SHA-256 of the canonical config and statistics: equal iff the states are equal."""
        return self._statistics.certificate(self.config)

    # -- raw inputs --------------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The model's encoder, built on first use and checked against the recorded identity."""
        if self.config.encoder is None:
            raise ValueError("This model takes embedding vectors: it has no encoder for raw inputs.")
        if self._encoder is None:
            spec = self.config.encoder
            if spec["kind"] == CUSTOM:
                raise ValueError(
                    f"This model was built with your own encoder {spec['identity']!r}: attach it first "
                    "(ErasableClassifier.load(path, encoder=...) or Model.attach_encoder)."
                )
            self.attach_encoder(load_encoder(spec["kind"], **spec["options"]))
        assert self._encoder is not None
        return self._encoder

    def check_new_ids(self, ids: ArrayLike) -> None:
        """Raise ``ValueError`` unless ``ids`` are distinct and new: before encoding, not after."""
        self.registry.check_new_ids(_as_id_list(ids) or [])

    def attach_encoder(self, encoder: Encoder) -> None:
        """Embed raw inputs with ``encoder``, which must have the identity this model recorded."""
        if self.config.encoder is None:
            raise ValueError("This model takes embedding vectors: it has no encoder for raw inputs.")
        check_same_encoder(self.config.encoder["identity"], encoder)
        self._encoder = encoder

    def embed(
        self,
        items: Batch,
        *,
        progress: Callable[[int], None] | None = None,
        cache_dir: str | Path | None = None,
        to_learn: bool = False,
    ) -> NDArray[np.float32]:
        """Embeddings of raw inputs (texts, images) by the model's encoder, in chunks, optionally cached.

        With ``to_learn``, the embeddings must fit the fixed-point scale (learning refuses
        values out of range): checked on a first small batch before the long encoding, then
        on every chunk, raising :class:`~erasable.exact.OverflowRiskError`.
        """
        check = self._check_learnable if to_learn else None
        return encode_batched(self.encoder, items, progress=progress, cache_dir=cache_dir, check=check)

    def _check_learnable(self, embeddings: NDArray[np.float32]) -> None:
        try:
            self.quantize(embeddings)
        except OverflowRiskError as exc:
            raise OverflowRiskError(
                f"Encoder {self.encoder.name!r} makes embeddings this model cannot learn: {exc}"
            ) from None

    # -- computing statistics ---------------------------------------------------------------

    def quantize(self, embeddings: ArrayLike, *, saturate: bool = False) -> NDArray[np.int16]:
        """Validate shape and values, then quantize to int16 with the model's scale."""
        array = np.asarray(embeddings, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != self.config.input_dim:
            raise ValueError(f"Expected embeddings of shape (n, {self.config.input_dim}), got {array.shape}.")
        if array.shape[0] == 0:
            raise ValueError("Empty batch: at least one sample is required.")
        return quantize(array, self.config.scale_bits, saturate=saturate)

    def clipped(self, embeddings: ArrayLike) -> int:
        """How many rows of ``embeddings`` exceed the fixed-point range: predictions clip them, learning refuses them.

        See :func:`~erasable.exact.clipping_message` for what to tell the user.
        """
        return int(clipped_rows(embeddings, self.config.scale_bits).sum())

    def batch_statistics(
        self,
        quantized: NDArray[np.int16],
        labels: NDArray[np.generic],
        progress: Callable[[int], None] | None = None,
    ) -> Statistics:
        """The statistics of a batch alone: of its embeddings and, unless the map is the identity, its features.

        The features are computed and accumulated chunk by chunk (bounded memory, near the
        speed of the Gram's kernel); the model itself is not changed. A Dask worker computes its
        shard's this way, and the statistics of the shards add up to those of their union.
        """
        embedding = Moments.from_samples(quantized, labels)
        if self.feature_moments is None:
            if progress:
                progress(quantized.shape[0])
            return Statistics(embedding, None)
        step = max(1, FEATURE_CHUNK_BYTES // (4 * self.feature_map.output_dim))

        def feature_batches() -> Iterator[tuple[NDArray[np.floating], NDArray[np.generic]]]:
            for start in range(0, quantized.shape[0], step):
                chunk = quantized[start : start + step]
                yield self.feature_map.transform_float(chunk), labels[start : start + step]
                if progress:
                    progress(chunk.shape[0])

        return Statistics(embedding, Moments.from_batches(feature_batches(), dim=self.feature_map.output_dim))

    def _statistics_after(
        self,
        quantized: NDArray[np.int16],
        labels: NDArray[np.generic],
        sign: int,
        progress: Callable[[int], None] | None = None,
        batch: Statistics | None = None,
    ) -> tuple[Statistics, NDArray[np.floating] | None]:
        """The statistics after adding (``sign=+1``) or removing (``-1``) a batch.

        ``batch``, the batch's own statistics when they were computed elsewhere, is added or
        subtracted as it is. Otherwise a small batch updates the Gram matrices in one pass,
        and its feature rows are returned too (the ridge head's low-rank update needs them);
        a large batch has its own :meth:`batch_statistics` added or subtracted, and no rows
        are returned.
        """
        if batch is None and quantized.shape[0] <= SMALL_BATCH:
            embedding = self.embedding_moments.with_samples(quantized, labels, sign)
            features, rows = None, None
            if self.feature_moments is not None:
                rows = self.feature_map.transform_float(quantized)
                features = self.feature_moments.with_samples(rows, labels, sign)
            if progress:
                progress(quantized.shape[0])
            return Statistics(embedding, features), rows
        if batch is None:
            batch = self.batch_statistics(quantized, labels, progress)
        return (self._statistics + batch if sign > 0 else self._statistics - batch), None

    def features(self, quantized: NDArray[np.int16]) -> NDArray[np.float64]:
        """Integer features (as float64) of quantized embeddings."""
        return self.feature_map.transform_float(quantized).astype(np.float64, copy=False)

    # -- learn / forget / merge --------------------------------------------------------------

    def learn(
        self,
        embeddings: ArrayLike,
        labels: ArrayLike,
        *,
        ids: ArrayLike | None = None,
        subjects: Sequence[str | None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Add samples. ``ids`` default to consecutive integers; all must be new."""
        self.apply(self.plan_learn(embeddings, labels, ids=ids, subjects=subjects, progress=progress))

    def plan_learn(
        self,
        embeddings: ArrayLike,
        labels: ArrayLike,
        *,
        ids: ArrayLike | None = None,
        subjects: Sequence[str | None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Change:
        """Validate a batch and compute the statistics after learning it, without changing the model."""
        return self.plan_learn_quantized(
            self.quantize(embeddings), labels, ids=ids, subjects=subjects, progress=progress
        )

    def plan_learn_quantized(
        self,
        quantized: NDArray[np.int16],
        labels: ArrayLike,
        *,
        ids: ArrayLike | None = None,
        subjects: Sequence[str | None] | None = None,
        progress: Callable[[int], None] | None = None,
        statistics: Statistics | None = None,
    ) -> Change:
        """:meth:`plan_learn` for embeddings quantized already with this model's scale (by Dask workers).

        ``statistics`` are the batch's own (:meth:`batch_statistics`) when they were computed
        elsewhere, e.g. reduced on a cluster; they are added as they are, so they must be those
        of these rows, which :meth:`refit` checks.
        """
        quantized = np.asarray(quantized)
        if quantized.dtype != np.int16 or quantized.ndim != 2 or quantized.shape[1] != self.config.input_dim:
            raise ValueError(
                f"Expected int16 quantized embeddings of shape (n, {self.config.input_dim}), "
                f"got {quantized.dtype} {quantized.shape}."
            )
        if quantized.shape[0] == 0:
            raise ValueError("Empty batch: at least one sample is required.")
        y = canonical_labels(labels)
        n = quantized.shape[0]
        if y.shape[0] != n:
            raise ValueError(f"{n} embeddings but {y.shape[0]} labels.")
        id_list = _as_id_list(ids)
        next_auto_id = self.next_auto_id
        if id_list is None:
            id_list, next_auto_id = self._auto_ids(n)
        elif len(id_list) != n:
            raise ValueError(f"{n} embeddings but {len(id_list)} ids.")
        subject_list: list[str | None] = [
            None if s is None else str(s) for s in (subjects if subjects is not None else [None] * n)
        ]
        if len(subject_list) != n:
            raise ValueError(f"{n} embeddings but {len(subject_list)} subjects.")
        require_unicode(id_list, "Sample ids")
        require_unicode(subject_list, "Subjects")
        return self._plan(+1, quantized, y, id_list, subject_list, None, next_auto_id, progress, statistics)

    def _plan(
        self,
        sign: int,
        quantized: NDArray[np.int16],
        labels: NDArray[np.generic],
        ids: Sequence[str],
        subjects: Sequence[str | None],
        rows: NDArray[np.intp] | None,
        next_auto_id: int,
        progress: Callable[[int], None] | None = None,
        batch: Statistics | None = None,
    ) -> Change:
        if sign > 0:
            self.registry.check_new_ids(ids)
        after, feature_rows = self._statistics_after(quantized, labels, sign, progress, batch)
        return Change(
            sign=sign,
            ids=tuple(ids),
            subjects=tuple(subjects),
            labels=labels,
            quantized=quantized,
            rows=rows,
            next_auto_id=next_auto_id,
            config=self.config,
            statistics_before=self._statistics,
            statistics_after=after,
            steering_before=self.steering,
            steering_after=self._steering_after(sign, subjects, ids, after.embedding),
            feature_rows=feature_rows,
        )

    def _steering_after(
        self, sign: int, subjects: Sequence[str | None], ids: Sequence[str], embedding: Moments
    ) -> Steering:
        """The steering without the weights naming samples, subjects or classes a forget leaves with no live sample."""
        if sign > 0 or not self.steering:
            return self.steering
        removed = Counter(s for s in subjects if s in self.steering.subjects)
        live = Counter(s for s in self.registry.subjects if s in removed) if removed else Counter()
        gone_subjects = [s for s, count in removed.items() if live[s] == count]
        gone_classes = [c for c in self.steering.classes if c not in embedding.classes]
        return self.steering.without(samples=ids, subjects=gone_subjects, classes=gone_classes)

    def apply(self, change: Change) -> None:
        """Apply a planned change: swap in its statistics, steering and id counter, update the registry, then
        bring the served heads along (:meth:`~erasable.served_heads.ServedHeads.follow`).

        Raises ``ValueError`` if the model has changed since the change was planned.
        """
        if change.statistics_before is not self._statistics or change.steering_before is not self.steering:
            raise ValueError("The model changed after this change was planned: plan it again.")
        self._statistics = change.statistics_after
        self.steering = change.steering_after
        if change.sign > 0:
            self.registry.append(change.ids, change.subjects, change.labels.tolist(), change.quantized)
        else:
            assert change.rows is not None
            self.registry.remove_rows(change.rows)
        self.next_auto_id = change.next_auto_id
        self._heads.follow(change)

    def _auto_ids(self, n: int) -> tuple[list[str], int]:
        """``n`` unused consecutive integer ids, and the next counter value."""
        ids: list[str] = []
        candidate = self.next_auto_id
        while len(ids) < n:
            if str(candidate) not in self.registry:
                ids.append(str(candidate))
            candidate += 1
        return ids, candidate

    def forget(
        self,
        *,
        ids: ArrayLike | None = None,
        subjects: Sequence[str] | None = None,
        classes: ArrayLike | None = None,
        embeddings: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        batch_statistics: BatchStatistics | None = None,
    ) -> ForgetReceipt:
        """Remove samples named by ``ids``, ``subjects`` or ``classes``, or given as ``embeddings`` + ``labels``."""
        change = self.plan_forget(
            ids=ids,
            subjects=subjects,
            classes=classes,
            embeddings=embeddings,
            labels=labels,
            batch_statistics=batch_statistics,
        )
        receipt = ForgetReceipt.of(change)
        self.apply(change)
        return receipt

    def plan_forget(
        self,
        *,
        ids: ArrayLike | None = None,
        subjects: Sequence[str] | None = None,
        classes: ArrayLike | None = None,
        embeddings: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        batch_statistics: BatchStatistics | None = None,
    ) -> Change:
        """Find the samples a forget request names and compute the statistics without them.

        ``batch_statistics(quantized, labels)`` computes the statistics of the samples found,
        when not in this process (:func:`erasable.distributed.forget` reduces them on a cluster).
        """
        by_samples = embeddings is not None or labels is not None
        if sum([ids is not None, subjects is not None, classes is not None, by_samples]) != 1:
            raise ValueError("Name exactly one of: ids, subjects, classes, or embeddings with labels.")
        if ids is not None:
            id_list = _as_id_list(ids) or []
            if not id_list:
                raise ValueError("Empty forget request: no ids given.")
            rows = self.registry.rows_for_ids(id_list)
        elif subjects is not None:
            if isinstance(subjects, str):
                subjects = [subjects]
            if not subjects:
                raise ValueError("Empty forget request: no subjects given.")
            rows = self.registry.rows_for_subjects(subjects)
        elif classes is not None:
            wanted_classes = canonical_labels(np.atleast_1d(np.asarray(classes, dtype=object)))
            if not wanted_classes.size:
                raise ValueError("Empty forget request: no classes given.")
            rows = self.registry.rows_for_labels(wanted_classes.tolist())
        else:
            if embeddings is None or labels is None:
                raise ValueError("Forgetting by samples needs both embeddings and labels.")
            wanted = canonical_labels(labels)
            quantized_request = self.quantize(embeddings)
            if wanted.shape[0] != quantized_request.shape[0]:
                raise ValueError("Different numbers of embeddings and labels.")
            rows = self.registry.rows_for_samples(quantized_request, wanted.tolist())

        quantized = np.array(self.registry.embeddings[rows])
        y = canonical_labels([self.registry.labels[r] for r in rows])
        removed = [self.registry.ids[r] for r in rows]
        subjects_removed = [self.registry.subjects[r] for r in rows]
        batch = batch_statistics(quantized, y) if batch_statistics is not None else None
        return self._plan(-1, quantized, y, removed, subjects_removed, rows, self.next_auto_id, batch=batch)

    def merge(self, other: Model) -> None:
        """Add all of ``other``'s samples (configs must match, ids must not collide); keep this model's steering."""
        self.apply(self.plan_merge(other))

    def plan_merge(self, other: Model) -> Change:
        """The learn of all of ``other``'s samples, with the statistics ``other`` holds, without changing the model.

        ``other``'s statistics are added as they are rather than accumulated again, so they
        must be those of its samples: a model holding statistics without (all of) their
        samples -- a federated :meth:`~erasable.federated.ClientStatistics.to_model` -- is
        refused, since the merged model could not forget or refit what it has no samples of,
        and its model file would not load. Add such statistics with
        :func:`erasable.federated.merge` instead. This model may itself hold statistics alone:
        it then learns ``other``'s samples as it would learn any others. Its steering stays.
        """
        if not isinstance(other, Model):
            raise TypeError(f"Can only merge a Model, got {type(other).__name__}.")
        if other.config != self.config:
            differing = sorted(k for k, v in self.config.to_dict().items() if other.config.to_dict().get(k) != v)
            raise MomentsMismatchError(f"Cannot merge models with different configs (differ in {differing}).")
        if not other.holds_its_samples:
            raise ValueError(
                f"Cannot merge a model whose statistics count {other.count} samples but which holds "
                f"{len(other.registry)} of them (a federated ClientStatistics.to_model()): this model could not "
                "forget or refit the others, and its model file would not load. Add the statistics with "
                "erasable.federated.merge instead."
            )
        return self._plan_learn_registry(other.registry, max(self.next_auto_id, other.next_auto_id), other.statistics)

    def _plan_learn_registry(
        self, samples: SampleRegistry, next_auto_id: int, statistics: Statistics | None = None
    ) -> Change:
        """The learn of all of ``samples``, with their ``statistics`` if known (otherwise accumulated from them)."""
        return self._plan(
            +1,
            np.asarray(samples.embeddings),
            canonical_labels(samples.labels),
            list(samples.ids),
            list(samples.subjects),
            None,
            next_auto_id,
            batch=statistics,
        )

    # -- heads (served by ServedHeads) -------------------------------------------------------

    def head(self, kind: HeadKind | None = None) -> Head:
        """The head ``kind`` (default: the configured one), derived now if not cached."""
        return self._heads.head(kind)

    def memory(self) -> MemoryHead:
        """The k-nearest-neighbour memory of the live samples, steered by :attr:`steering` (extra ``memory``)."""
        return self._heads.memory()

    @property
    def keeps_ridge_weights(self) -> bool:
        """Whether model files and the ledger keep this model's canonical ridge weights (a primal ridge head)."""
        return self._heads.keeps_ridge_weights

    def factor_ridge_head(self) -> None:
        """Factor the system of a ridge head read with its weights, so it follows small changes by Woodbury updates.

        See :meth:`erasable.served_heads.ServedHeads.factor_ridge_head`.
        """
        self._heads.factor_ridge_head()

    def canonical_ridge(self) -> RidgeHead:
        """The ridge head computed from the current statistics, not a Woodbury update of an older one."""
        return self._heads.canonical_ridge()

    def gcv_alpha(self) -> float | None:
        """The ridge penalty GCV chooses for the current statistics; ``None`` if the config fixes alpha.

        Computed once per state, or recalled (:meth:`recall_alpha`): see
        :meth:`erasable.served_heads.ServedHeads.gcv_alpha`.
        """
        return self._heads.gcv_alpha()

    def recall_alpha(self, certificate: str, alpha: float) -> None:
        """Remember that GCV chose ``alpha`` for the statistics of ``certificate`` (e.g. from a model file)."""
        self._heads.recall_alpha(certificate, alpha)

    def recall_ridge_weights(self, weights: NDArray[np.float64]) -> None:
        """Take ``weights`` as those of the canonical (primal) ridge head of the current statistics.

        The penalty must be known (the config's, or recalled by :meth:`recall_alpha`).
        """
        self._heads.recall_ridge_weights(weights)

    def canonical_kernel(self) -> KernelHead:
        """The kernel head solved for the live samples, not a forget's update of an older one."""
        return self._heads.canonical_kernel()

    def recall_kernel_coefficients(self, coefficients: NDArray[np.float64], intercept: NDArray[np.float64]) -> None:
        """Take these as the kernel head's of the live samples (a model file keeps them).

        See :meth:`erasable.served_heads.ServedHeads.recall_kernel_coefficients`.
        """
        self._heads.recall_kernel_coefficients(coefficients, intercept)

    def refresh(self) -> None:
        """Recompute every cached head canonically from the statistics."""
        self._heads.refresh()

    # -- predictions -------------------------------------------------------------------------

    def head_inputs(self, embeddings: ArrayLike, kind: HeadKind | None = None) -> NDArray[np.float64]:
        """The vectors a head scores: integer features for ridge, quantized embeddings otherwise."""
        quantized = self.quantize(embeddings, saturate=True)
        if (kind or self.config.head) == "ridge":
            return self.features(quantized)
        return quantized.astype(np.float64)

    def decision_function(self, embeddings: ArrayLike, kind: HeadKind | None = None) -> NDArray[np.float64]:
        """Per-class scores (n, K), classes in sorted order."""
        head = self.head(kind)
        scored = self._by_chunks(
            embeddings, lambda chunk: (head.decision_function(self.head_inputs(chunk, kind)),), head
        )
        return scored[0]

    def predict_proba(self, embeddings: ArrayLike, kind: HeadKind | None = None) -> NDArray[np.float64]:
        """Class probabilities (n, K), classes in sorted order."""
        return self.decision_and_proba(embeddings, kind)[1]

    def decision_and_proba(
        self, embeddings: ArrayLike, kind: HeadKind | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """:meth:`decision_function` and :meth:`predict_proba` at once: the features are computed once."""
        scored = self._scorer(kind, with_ood=False)
        scores, probabilities = self._by_chunks(embeddings, scored, self.head(kind))
        return scores, probabilities

    def predictions(self, embeddings: ArrayLike, kind: HeadKind | None = None) -> Predictions:
        """:meth:`decision_function`, :meth:`predict_proba` and :meth:`ood_score` at once (the features computed
        once): what ``erasable predict`` and the service's predictions report."""
        return Predictions(*self._by_chunks(embeddings, self._scorer(kind, with_ood=True), self.head(kind)))

    def _scorer(
        self, kind: HeadKind | None, with_ood: bool
    ) -> Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], ...]]:
        """What scores a chunk of embeddings for :meth:`_by_chunks`: the head's scores, probabilities and, with
        ``with_ood``, OOD scores (the ridge head's read its leverage, see :meth:`RidgeHead.ood_score_of`)."""
        head = self.head(kind)
        leverage = self._heads.leverage() if with_ood and isinstance(head, RidgeHead) else None
        temperature = self.config.temperature

        def scored(chunk: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
            vectors = self.head_inputs(chunk, kind)
            scores = head.decision_function(vectors)
            if isinstance(head, RidgeHead | KernelHead):  # scores estimating one-hot targets
                probabilities = RidgeHead.proba_of(scores, temperature)
            else:
                probabilities = head.predict_proba(vectors)
            if not with_ood:
                return scores, probabilities
            if leverage is None:
                return scores, probabilities, _top_probability_ood(probabilities)
            return scores, probabilities, RidgeHead.ood_score_of(scores, leverage.ratio(vectors), temperature)

        return scored

    def _by_chunks(
        self,
        embeddings: ArrayLike,
        score: Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], ...]],
        head: Head,
    ) -> tuple[NDArray[np.float64], ...]:
        """``score`` of ``embeddings`` by ``head``, :data:`SCORE_CHUNK_BYTES` of its rows at a time, arrays stacked.

        A row is an input's features (a kernel head's: its kernel with every sample, if that is
        wider). The rows of a chunk stay in memory the machine caches well, and each chunk reuses
        the pages of the last: predicting 10,000 inputs at width 4096 took half the time of one
        pass over all of them. Rows are independent, but BLAS picks its kernel by shape (a lone
        row goes through a matrix-vector product), so a row's scores may differ in the last bit
        with the batch it came in, as they do between batch sizes anyway.
        """
        array = np.asarray(embeddings)
        width = self.feature_map.output_dim
        if isinstance(head, KernelHead):
            width = max(width, head.support.shape[0])
        step = max(1, SCORE_CHUNK_BYTES // (8 * width))
        if array.ndim != 2 or array.shape[0] <= step:
            return score(array)  # also what reports a malformed input
        chunks = [score(array[start : start + step]) for start in range(0, array.shape[0], step)]
        return tuple(np.concatenate(column) for column in zip(*chunks, strict=True))

    def ood_score(self, embeddings: ArrayLike) -> NDArray[np.float64]:
        """Out-of-distribution score in [0, 1), higher for inputs unlike every class.

        For the ridge head (the default), 1 - the top probability once the logits are softened
        by how far the input lies from the training samples (:meth:`RidgeHead.ood_score_of`);
        for the others, 1 - the top probability. Measured on BANKING77 and HWU64
        (``benchmarks/bench_ood.py``, validation splits of the training sets), the softening
        helps against queries for another assistant (AUROC 0.9931 against 0.9814 for the plain
        top probability on BANKING77, 0.9416 against 0.9327 on HWU64) and does not hurt on
        held-out intents of the same domain (0.9131 against 0.9055; 0.8415 against 0.8414).
        The squared Mahalanobis distance to the nearest class mean
        (:meth:`erasable.heads.GaussianHead.ood_score`), energy, kNN distances and mixtures
        with them did no better.
        """
        return self.predictions(embeddings).ood_scores

    # -- steering ----------------------------------------------------------------------------

    def steer(
        self,
        *,
        classes: dict[Label, float] | None = None,
        subjects: dict[str, float] | None = None,
        ids: dict[str, float] | None = None,
    ) -> None:
        """Weigh the memory head's votes by class, by subject (a data source) or by sample id.

        A weight multiplies the votes (0 silences, 1 restores the default) and replaces the
        earlier weight of the same name. Only live classes, subjects and ids can be steered;
        forgetting them drops their weights (see :mod:`erasable.steering`). The statistics and
        the certificate do not change: steering edits decisions, not what was learned.

        >>> import numpy as np
        >>> model = Model(ModelConfig(input_dim=2, scale_bits=8, head="memory"))
        >>> model.learn(np.array([[1.0, 0.1], [0.9, 0.3], [0.1, 1.0]]), ["x", "y", "y"],
        ...             ids=["a", "b", "c"], subjects=["web", "crawler", "web"])
        >>> query = model.head_inputs(np.array([[0.95, 0.25]]), "memory")
        >>> model.memory().predict(query).tolist()
        ['y']
        >>> model.steer(subjects={"crawler": 0.0})
        >>> model.memory().predict(query).tolist()
        ['x']
        """
        self.set_steering(self.plan_steer(classes=classes, subjects=subjects, ids=ids))

    def plan_steer(
        self,
        *,
        classes: dict[Label, float] | None = None,
        subjects: dict[str, float] | None = None,
        ids: dict[str, float] | None = None,
    ) -> Steering:
        """The steering a :meth:`steer` request gives, validated, without changing the model.

        A durable ledger records it between this and :meth:`set_steering`.
        """
        self._check_live(classes or {}, subjects or {}, ids or {})
        return self.steering.with_weights(classes=classes, subjects=subjects, samples=ids)

    def checked_steering(self, steering: Steering) -> Steering:
        """``steering`` (e.g. read from a file or a ledger), if it names only live classes, subjects and ids."""
        self._check_live(steering.classes, steering.subjects, steering.samples)
        return steering

    def _check_live(self, classes: Iterable[Label], subjects: Iterable[str], ids: Iterable[str]) -> None:
        unknown_classes = [c for c in classes if c not in self.classes]
        if unknown_classes:
            raise ValueError(f"Cannot steer classes the model does not have: {unknown_classes[:5]}.")
        if subjects := list(subjects):
            self.registry.rows_for_subjects(subjects)  # raises for a subject with no live sample
        if ids := list(ids):
            self.registry.rows_for_ids(ids)

    def set_steering(self, steering: Steering) -> None:
        """Weigh the memory's votes by ``steering`` (from :meth:`plan_steer`) from now on."""
        self.steering = steering
        self._heads.steer_memory()

    # -- from scratch ----------------------------------------------------------------------

    def refit(self) -> Model:
        """A new model fitted from scratch on the live samples of this one, steered the same way."""
        fresh = Model(self.config)
        if len(self.registry):
            fresh.apply(fresh._plan_learn_registry(self.registry, self.next_auto_id))  # statistics accumulated anew
        fresh.next_auto_id = self.next_auto_id
        fresh.set_steering(self.steering)  # it names only live samples, subjects and classes
        return fresh

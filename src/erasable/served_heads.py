"""The heads a model serves: derived from its statistics on first use, cached, and kept in step with its changes.

A :class:`~erasable.model.Model` owns one :class:`ServedHeads`. The ridge, prototype and
Gaussian heads are functions of the statistics, and the kernel head of the live samples at
the ridge head's penalty, so any of them can be derived again; what
this cache adds is speed, without changing what is predicted:

* after a small change, the ridge head follows by a Woodbury update of its factored system
  (:meth:`ServedHeads.follow`) instead of being solved again; the canonical head
  (:meth:`ServedHeads.canonical_ridge`) is what model files and the ledger keep;
* the ridge penalty GCV chose is computed once per state, or recalled from a file
  (:meth:`ServedHeads.recall_alpha`), with the weights that go with it
  (:meth:`ServedHeads.recall_ridge_weights`);
* the memory head, built from the live samples on first use, adds and physically removes
  the samples of each change and takes the vote weights of the model's steering.

The heads read their model through :class:`ModelState` only -- its config, statistics, live
samples and steering -- and never change it: the model changes, then tells its heads.

>>> import numpy as np
>>> from erasable.model import Model, ModelConfig
>>> model = Model(ModelConfig(input_dim=8, scale_bits=8, alpha=0.1))
>>> rng = np.random.default_rng(0)
>>> model.learn(rng.normal(0, 0.2, (40, 8)), rng.integers(0, 3, 40))
>>> model.head().rank_since_refresh  # derived from the statistics
0
>>> receipt = model.forget(ids=["7"])
>>> served = model.head()
>>> served.rank_since_refresh  # followed the forget by a rank-one update: nothing solved again
1
>>> bool(np.allclose(served.weights, model.refit().head().weights))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from erasable.changes import Change
from erasable.config import HEAD_KINDS, HeadKind, ModelConfig
from erasable.heads import GaussianHead, Head, PrototypeHead, RidgeHead
from erasable.heads.kernel import ArcCosineKernel, KernelHead
from erasable.heads.leverage import Leverage
from erasable.heads.ridge import penalty_by_gcv, uses_dual
from erasable.moments import Label, Moments
from erasable.registry import SampleRegistry
from erasable.statistics import Statistics
from erasable.steering import Steering

if TYPE_CHECKING:
    from erasable.heads.memory import MemoryHead

__all__ = ["ModelState", "ServedHeads"]


class ModelState(Protocol):
    """What the served heads read of their model: its config, statistics, live samples and steering."""

    @property
    def config(self) -> ModelConfig: ...

    @property
    def registry(self) -> SampleRegistry: ...

    @property
    def steering(self) -> Steering: ...

    @property
    def statistics(self) -> Statistics: ...

    @property
    def ridge_moments(self) -> Moments: ...

    @property
    def ridge_unit(self) -> float: ...

    @property
    def holds_its_samples(self) -> bool: ...

    def features(self, quantized: NDArray[np.int16]) -> NDArray[np.float64]: ...

    def certificate(self) -> str: ...


class ServedHeads:
    """See the module docstring."""

    def __init__(self, model: ModelState) -> None:
        self._model = model
        self._heads: dict[HeadKind, Head] = {}
        self._memory: MemoryHead | None = None  # not derived from the statistics: kept in step by follow()
        self._leverage: Leverage | None = None  # the ridge head's, for its OOD scores: derived on first use
        self._recalled_alpha: tuple[str, float] | None = None  # (certificate, its GCV alpha), see gcv_alpha()

    def head(self, kind: HeadKind | None = None) -> Head:
        """The head ``kind`` (default: the configured one), derived now if not cached."""
        kind = kind or self._model.config.head
        if kind not in HEAD_KINDS:
            raise ValueError(f"Unknown head {kind!r}; choose from {HEAD_KINDS}.")
        if self._model.statistics.count == 0:
            raise ValueError("The model has no samples: learn something first.")
        if kind == "memory":
            return self.memory()
        if kind not in self._heads:
            self._heads[kind] = self._derive(kind)
        return self._heads[kind]

    def _derive(self, kind: HeadKind) -> Head:
        model = self._model
        if kind == "ridge":
            return RidgeHead.from_moments(
                model.ridge_moments, alpha=self._known_alpha(), unit=model.ridge_unit, samples=self._ridge_samples()
            )
        if kind == "kernel":
            return self._kernel_head()
        if kind == "prototype":
            return PrototypeHead.from_moments(model.statistics.embedding, metric=model.config.metric)
        return GaussianHead.from_moments(model.statistics.embedding, shrinkage=model.config.shrinkage)

    def _kernel_head(self) -> KernelHead:
        """The arc-cosine kernel ridge of the live samples, at the ridge head's penalty and in its units.

        The penalty is the config's, the one recalled for these statistics, or GCV's on the
        feature statistics (:func:`~erasable.heads.ridge.penalty_by_gcv`, the leading block:
        tens of milliseconds): the ridge head's own, without solving the ridge head.
        """
        model = self._model
        alpha = self._known_alpha()
        if alpha is None:
            alpha = penalty_by_gcv(model.ridge_moments, model.ridge_unit)
        rows, labels, kernel = self._kernel_support()
        return KernelHead.from_samples(rows, labels, model.statistics.classes, kernel, alpha)

    def _kernel_support(self) -> tuple[NDArray[np.float64], list[Label], ArcCosineKernel]:
        """The kernel head's samples, their labels, and its kernel: the limit of the model's feature map."""
        model = self._model
        fmap = model.config.feature_map
        if fmap["kind"] != "random_relu":
            raise ValueError("The kernel head is the limit of the random ReLU features: this model has none.")
        rows, labels = self._canonical_samples("The kernel head is solved")
        index = {label: j for j, label in enumerate(model.statistics.classes)}
        # In the order of their values, not their ids: the head then depends on the multiset of samples alone,
        # as the statistics do, and rounds alike however the samples were named (repeats, sample weights).
        order = np.lexsort((np.array([index[label] for label in labels]), *rows.T[::-1]))
        scale_free = bool(fmap.get("scale_free"))
        unit = 1.0 if scale_free else 4.0**model.config.scale_bits  # the natural units of the embeddings
        kernel = ArcCosineKernel(width=fmap["width"], normalize=scale_free, unit=unit)
        return rows[order].astype(np.float64), [labels[i] for i in order], kernel

    def recall_kernel_coefficients(self, coefficients: NDArray[np.float64], intercept: NDArray[np.float64]) -> None:
        """Take these as the kernel head's of the current samples (from a model file, which keeps them).

        The first prediction then solves nothing. The penalty must be known (the config's, or
        recalled by :meth:`recall_alpha`); raises ``ValueError`` if it is not, or if the
        arrays do not fit the samples.
        """
        alpha = self._known_alpha()
        if alpha is None:
            raise ValueError("Kernel coefficients need their penalty: recall the alpha GCV chose first.")
        rows, _, kernel = self._kernel_support()
        classes = self._model.statistics.classes
        self._heads["kernel"] = KernelHead.from_coefficients(rows, classes, kernel, alpha, coefficients, intercept)

    def leverage(self) -> Leverage:
        """The ridge head's :class:`~erasable.heads.leverage.Leverage`, which its OOD scores read.

        Derived on first use for the current statistics and penalty (a 1024 x 1024 factor at
        most: tens of milliseconds), dropped by every change.
        """
        if self._leverage is None:
            ridge = self.head("ridge")
            assert isinstance(ridge, RidgeHead)
            self._leverage = Leverage.from_moments(self._model.ridge_moments, ridge.lam)
        return self._leverage

    def _ridge_samples(self) -> tuple[NDArray[np.float64], list[Label]] | None:
        """The live samples' ridge features and labels, sorted by id, when the ridge head is solved in the dual."""
        moments = self._model.ridge_moments
        if not uses_dual(moments.count, moments.dim):
            return None
        embeddings, labels = self._canonical_samples(
            f"{moments.count} samples of {moments.dim} features are solved in the dual"
        )
        return self._model.features(embeddings), labels

    def _canonical_samples(self, solver: str) -> tuple[NDArray[np.int16], list[Label]]:
        """The live samples' quantized embeddings and labels, sorted by id (independent of history).

        ``solver`` names what needs them in the error raised for a model of statistics alone.
        """
        registry = self._model.registry
        if not self._model.holds_its_samples:
            raise ValueError(
                f"{solver}, from the samples, and this model holds {len(registry)} of its "
                f"{self._model.statistics.count} (statistics alone, e.g. a federated to_model())."
            )
        order = sorted(range(len(registry)), key=registry.ids.__getitem__)
        return np.asarray(registry.embeddings)[order], [registry.labels[i] for i in order]

    # -- the memory ---------------------------------------------------------------------------

    def memory(self) -> MemoryHead:
        """The k-nearest-neighbour memory of the live samples, steered by the model's steering (extra ``memory``)."""
        if self._memory is None:
            from erasable.heads.memory import MemoryHead  # imported here: faiss is optional

            registry = self._model.registry
            self._memory = MemoryHead.from_registry(registry)
            if self._model.steering:
                self._steer_memory(self._model.steering, registry.ids, registry.subjects)
        return self._memory

    def steer_memory(self) -> None:
        """Give a memory already built the vote weights of the model's steering, which has just been set."""
        if self._memory is not None:
            self._steer_memory(self._model.steering, self._model.registry.ids, self._model.registry.subjects)

    def _steer_memory(self, steering: Steering, ids: Sequence[str], subjects: Sequence[str | None]) -> None:
        """Set the memory's class weights, and the sample weights of ``ids``, from ``steering``."""
        assert self._memory is not None
        weights = [steering.sample_weight(i, s) for i, s in zip(ids, subjects, strict=True)]
        self._memory.set_sample_weights(ids, weights)
        self._memory.set_class_weights(steering.classes)

    # -- following changes --------------------------------------------------------------------

    def follow(self, change: Change) -> None:
        """Bring the heads along ``change``, which the model has just applied.

        The ridge head follows a small change by a Woodbury update (no refit); a change of
        rank above a quarter of the feature width, or accumulated updates beyond half of it,
        drop it for a canonical recomputation at the next prediction. The kernel head follows
        a forget by its kept factor (:meth:`KernelHead.forgotten`) up to a quarter of its
        samples; a learn drops it. The memory adds or
        physically removes the change's samples and takes the steering after it. The other
        heads are cheap and are simply recomputed.
        """
        if not change.ids:
            return  # a merge of an empty model: the statistics are equal, and so are their heads
        model = self._model
        ridge, kernel = self._heads.get("ridge"), self._heads.get("kernel")
        self._heads.clear()
        self._leverage = None
        if self._memory is not None:
            if model.statistics.count == 0:
                self._memory = None
            elif change.sign > 0:
                self._memory.add(change.ids, change.quantized, change.labels)
                if model.steering.subjects:
                    self._steer_memory(model.steering, change.ids, change.subjects)
            else:
                self._memory.remove(change.ids)
                if change.steering_after.classes != change.steering_before.classes:
                    self._memory.set_class_weights(model.steering.classes)
        if (
            isinstance(kernel, KernelHead)
            and model.statistics.count > 0
            and (forgotten := self._forgotten(kernel, change))
        ):
            self._heads["kernel"] = forgotten
        moments = model.ridge_moments
        if isinstance(ridge, RidgeHead) and ridge.system is not None and moments.count > 0:
            rank = change.quantized.shape[0] + 1
            if rank <= moments.dim // 4 and ridge.rank_since_refresh + rank <= moments.dim // 2:
                rows, labels = self._ridge_rows(change), change.labels.tolist()
                self._heads["ridge"] = ridge.updated(rows, labels, change.sign, moments)

    def _forgotten(self, kernel: KernelHead, change: Change) -> KernelHead | None:
        """The kernel head after the forget ``change`` by its kept factor; ``None`` (solve it again at the next
        prediction) after a learn, for a head without its factor, past a quarter of its samples forgotten, or if
        the update fails in floating point."""
        if change.sign > 0 or kernel.system is None:
            return None
        if len(kernel.removed) + len(change.ids) > (len(kernel.removed) + len(kernel.positions)) // 4:
            return None
        where: dict[tuple[bytes, Label], list[int]] = {}
        for i, (row, label) in enumerate(zip(kernel.support, kernel.labels, strict=True)):
            where.setdefault((row.tobytes(), label), []).append(i)
        forgotten = []
        for row, label in zip(change.quantized.astype(np.float64), change.labels.tolist(), strict=True):
            matches = where.get((row.tobytes(), label))
            if not matches:
                return None
            forgotten.append(matches.pop())  # equal samples are interchangeable
        try:
            return kernel.forgotten(forgotten, self._model.statistics.classes)
        except (ValueError, np.linalg.LinAlgError):
            return None

    def canonical_kernel(self) -> KernelHead:
        """The kernel head solved for the current samples, not a forget's update of an older one (model files keep
        its coefficients); it becomes the cached one."""
        head = self._heads.get("kernel")
        if isinstance(head, KernelHead) and not head.removed:
            return head
        if self._model.statistics.count == 0:
            raise ValueError("The model has no samples: learn something first.")
        self._heads.pop("kernel", None)  # its factor freed before the new one is made
        solved = self._kernel_head()
        self._heads["kernel"] = solved
        return solved

    def _ridge_rows(self, change: Change) -> NDArray[np.float64]:
        """The features ``change`` adds to or removes from the ridge head's statistics (the embeddings under the
        identity map): those it computed already, if it did."""
        if change.feature_rows is not None:
            return change.feature_rows.astype(np.float64)
        return self._model.features(change.quantized)

    # -- the ridge head and its penalty ---------------------------------------------------------

    @property
    def keeps_ridge_weights(self) -> bool:
        """Whether model files and the ledger keep the canonical ridge weights: a ridge head solved in the
        primal (more than D / 4 samples). A dual head is cheap to solve again."""
        count = self._model.statistics.count
        return self._model.config.head == "ridge" and count > 0 and not uses_dual(count, self._model.ridge_moments.dim)

    def factor_ridge_head(self) -> None:
        """Give a ridge head read with its weights (a file, a ledger) its factored system, for what follows.

        Such a head solved nothing, and a change drops it: the next prediction derives the head
        again, GCV included. Factored, it follows small changes by Woodbury updates instead. A
        server does this before its first change; a command that saves after one change
        (which derives the canonical head anyway) does not. Costs one Cholesky factorization.
        """
        head, moments = self._heads.get("ridge"), self._model.ridge_moments
        if isinstance(head, RidgeHead) and head.system is None and not uses_dual(moments.count, moments.dim):
            self._heads["ridge"] = head.factored(moments)

    def canonical_ridge(self) -> RidgeHead:
        """The ridge head computed from the current statistics, not a Woodbury update of an older one.

        It becomes the cached ridge head (the two agree within rounding). Model files keep
        its penalty and, for a primal head, its weights: what GCV and solving would give again.
        """
        head = self._heads.get("ridge")
        if isinstance(head, RidgeHead) and head.rank_since_refresh == 0:
            return head  # derived from the current statistics: an update would raise the rank
        if self._model.statistics.count == 0:
            raise ValueError("The model has no samples: learn something first.")
        derived = self._derive("ridge")
        assert isinstance(derived, RidgeHead)
        self._heads["ridge"] = derived
        return derived

    def gcv_alpha(self) -> float | None:
        """The ridge penalty GCV chooses for the current statistics; ``None`` if the config fixes alpha.

        It costs a tridiagonal reduction of the statistics of the leading features (at most
        1024: :func:`~erasable.heads.gcv.gcv_width`), once per state: it is known
        from a ridge head derived from these statistics, or recalled (:meth:`recall_alpha`),
        or computed with the :meth:`canonical_ridge` head. Model files store it, so loading skips that cost.
        """
        if self._model.config.alpha is not None or self._model.statistics.count == 0:
            return None
        return self.canonical_ridge().alpha

    def _known_alpha(self) -> float | None:
        """The ridge penalty without running GCV: the config's, or the one recalled for these statistics."""
        if self._model.config.alpha is not None:
            return self._model.config.alpha
        if self._recalled_alpha is not None and self._recalled_alpha[0] == self._model.certificate():
            return self._recalled_alpha[1]  # what GCV would choose again: the same head, without the GCV
        return None

    def recall_alpha(self, certificate: str, alpha: float) -> None:
        """Remember that GCV chose ``alpha`` for the statistics of ``certificate`` (e.g. from a model file).

        Deriving the ridge head of exactly those statistics then skips the GCV -- the head is
        the same -- and any other statistics ignore it.
        """
        if not (isinstance(alpha, float) and 0 < alpha < float("inf")):
            raise ValueError(f"A recalled alpha must be a positive finite float, got {alpha!r}.")
        self._recalled_alpha = (certificate, alpha)

    def recall_ridge_weights(self, weights: NDArray[np.float64]) -> None:
        """Take ``weights`` as those of the canonical (primal) ridge head of the current statistics.

        From a model file, which keeps them: the first prediction then solves nothing. The
        penalty must be known (the config's, or recalled by :meth:`recall_alpha`); raises
        ``ValueError`` if it is not, or if the weights do not fit the statistics.
        """
        alpha = self._known_alpha()
        if alpha is None:
            raise ValueError("Ridge weights need their penalty: recall the alpha GCV chose first.")
        self._heads["ridge"] = RidgeHead.from_weights(self._model.ridge_moments, alpha, self._model.ridge_unit, weights)

    def refresh(self) -> None:
        """Recompute every cached head canonically from the statistics."""
        for kind in list(self._heads):
            self._heads[kind] = self._derive(kind)
        self._leverage = None

"""Visual memory: k-nearest-neighbour classification over the stored embeddings (FAISS).

The memory holds one unit vector per live sample -- its quantized embedding ``e_q`` as
float32, normalized by FAISS row by row -- with the sample's ledger id, label and a
weight. A query is normalized the same way, its ``k`` most cosine-similar vectors are
found by inner-product search, and they vote (:mod:`erasable.heads.voting`). Unlike the
other heads it does not use the Moments: its exactness is "the forgotten vector is gone".
This module is the head; the FAISS stores, and how they forget physically, are in
:mod:`erasable.heads.memory_index`, the files in :mod:`erasable.heads.memory_file`.

**Index.** Exact flat inner-product search (``faiss.IndexFlatIP``) up to
:data:`IVF_THRESHOLD` vectors, an inverted file (``IndexIVFFlat``, ``nlist`` ~ sqrt(n),
``nprobe`` 16) above it. Measured on this project's 2-core machine with 384-d BANKING77
embeddings replicated with noise (2,000 queries, k=10)::

    n        flat q/s   IVF q/s (nprobe 16)   IVF recall@10   IVF train + add
    20,000     2,314      11,728                0.998           2.5 s
    50,000       918       8,491                0.998           9.5 s
    100,000      440       3,815                1.000          14.5 s
    200,000      175       2,382                1.000          63 s

(IVF there with ``nlist`` ~ 4 sqrt(n), 64 training points per list, 25 k-means
iterations.) Up to 100k vectors flat search still serves > 400 queries/s, is exact, costs
nothing to build, and after forgetting gives exactly the predictions of a memory built
without the forgotten samples; beyond that its throughput falls below a few hundred
queries/s while the IVF index is > 10x faster at recall@10 >= 0.998, so the switch point
is 100,000. The shipped IVF settings (``nlist`` ~ sqrt(n), 40 points per list, 10
iterations) build 150k vectors in about 3 s and 1M in about 30 s, with top-10 results
identical to FAISS's own IVF at 1M (benchmarks/bench_memory.py).

**Ties.** Equally similar samples (copies of one vector: BANKING77 has a few) are ordered by
sample id, never by their place in the index, which depends on the order they were learned
and forgotten in: neighbours, votes and the leave-one-out choice of the voting rule are a
function of the live samples alone, so a model and its saved and reloaded copy agree.

**Ids.** A ledger id maps to its store key through a dictionary, and each key to its row
through an array. Saving puts the rows in id order with keys 0..n-1.

**Deletion is physical, and O(removed)**, in the store and in the head's side arrays (ids,
labels, weights, keys), which are cut by the same swap plan: nothing of a forgotten sample
stays in any of them, not even in their spare capacity.

>>> import numpy as np
>>> e_q = np.array([[100, 0], [90, 10], [0, 100], [10, 90]], dtype=np.int16)
>>> head = MemoryHead.from_samples(["a", "b", "c", "d"], e_q, ["x", "x", "y", "y"], voting=Voting("plurality", 1))
>>> head.predict(np.array([[80.0, 5.0]])).tolist()
['x']
>>> head.remove(["a", "b"])
>>> head.predict(np.array([[80.0, 5.0]])).tolist()
['y']
>>> [(n.id, n.label) for n in head.explain(np.array([[80.0, 5.0]]))[0]]
[('d', 'y')]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from erasable.heads.memory_file import MemoryFileError, SavedMemory
from erasable.heads.memory_index import (
    IVF_NPROBE,
    FlatStore,
    IndexKind,
    IVFStore,
    Store,
    apply_swap_plan,
    build_store,
    store_of_index,
    swap_plan,
    unit_rows,
)
from erasable.heads.voting import K_GRID, Voting, class_scores, select_voting, vote_shares
from erasable.moments import Label, canonical_labels

#: Largest memory served by the exact flat index when ``index="auto"`` (see the module docstring).
IVF_THRESHOLD = 100_000
#: Similarities within this of the k-th nearest are fetched too, to be ordered exactly (float32 rounding of a
#: unit vectors' inner product is below 1e-6).
TIE_MARGIN = 1e-5
#: Candidate vector values recomputed at a time (float64: 32 MiB).
NEAREST_BLOCK_VALUES = 2**22
#: Memory samples used as leave-one-out queries when choosing the voting rule.
CV_QUERIES = 4000

__all__ = ["IVF_THRESHOLD", "MemoryFileError", "MemoryHead", "Neighbour", "SampleSource", "unit_rows"]


class SampleSource(Protocol):
    """Live samples as the ledger's registry holds them (ids, labels, quantized embeddings)."""

    dim: int
    ids: list[str]
    labels: list[Label]

    def __len__(self) -> int: ...

    @property
    def embeddings(self) -> NDArray[np.int16]: ...


@dataclass(frozen=True)
class Neighbour:
    """One memory sample behind a prediction, with its share of the vote (``weight``)."""

    id: str
    label: Label
    similarity: float
    weight: float


class MemoryHead:
    """A k-NN classifier over labelled unit vectors; see the module docstring.

    ``voting=None`` chooses the rule, ``k`` and its parameter by leave-one-out accuracy on
    (at most ``cv_queries`` evenly spaced samples of) the memory, again after every change:
    like the other heads, it is a function of the live samples only.
    """

    def __init__(
        self,
        dim: int,
        *,
        voting: Voting | None = None,
        index: IndexKind = "auto",
        nprobe: int = IVF_NPROBE,
        cv_queries: int = CV_QUERIES,
    ) -> None:
        if index not in ("auto", "flat", "ivf"):
            raise ValueError(f"index must be 'auto', 'flat' or 'ivf', got {index!r}.")
        self.dim = dim
        self.voting_override = voting
        self.index_kind: IndexKind = index
        self.nprobe = nprobe
        self.cv_queries = cv_queries
        self._store: Store = FlatStore.empty(dim)
        self._ids: NDArray[np.object_] = np.zeros(0, dtype=object)  # str; filtered without copying strings
        self._labels: NDArray[Any] = np.zeros(0, dtype=np.int64)
        self._sample_weights = np.zeros(0, dtype=np.float64)
        self._keys = np.zeros(0, dtype=np.int64)  # FAISS id (IVF) of each row
        self._row_of_key = np.zeros(0, dtype=np.int64)  # row of each key ever issued; -1 once removed
        self._key_of: dict[str, int] = {}
        self._next_key = 0
        self._class_weights: dict[Label, float] = {}
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_samples(
        cls, ids: Sequence[str], e_q: NDArray[np.integer], labels: ArrayLike, **options: Any
    ) -> MemoryHead:
        """A memory of the given samples (``options`` as for the constructor)."""
        head = cls(np.asarray(e_q).shape[1], **options)
        head.add(ids, e_q, labels)
        return head

    @classmethod
    def from_registry(cls, registry: SampleSource, **options: Any) -> MemoryHead:
        """A memory of the live samples of a :class:`~erasable.registry.SampleRegistry`."""
        head = cls(registry.dim, **options)
        if len(registry):
            head.add(registry.ids, np.asarray(registry.embeddings), registry.labels)
        return head

    # -- contents ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._ids.tolist())

    @property
    def labels(self) -> NDArray[Any]:
        return self._labels.copy()

    @property
    def index_type(self) -> str:
        """``"flat"`` or ``"ivf"``: the index in use."""
        return self._store.kind

    @property
    def classes(self) -> tuple[Label, ...]:
        return self._codes()[0]

    @property
    def sample_weights(self) -> NDArray[np.float64]:
        return self._sample_weights.copy()

    @property
    def class_weights(self) -> dict[Label, float]:
        return dict(self._class_weights)

    def nbytes(self) -> int:
        """Bytes held by the index and the per-sample arrays (ids and dictionary excluded)."""
        arrays = (self._keys, self._row_of_key, self._sample_weights, self._labels)
        return self._store.nbytes() + sum(a.nbytes for a in arrays)

    def rows_for_ids(self, ids: Iterable[str]) -> NDArray[np.int64]:
        """Rows of live ids; an unknown or repeated id raises."""
        ids = list(ids)
        keys = np.array([self._key_of.get(i, -1) for i in ids], dtype=np.int64)
        if (keys < 0).any():
            unknown = [i for i, key in zip(ids, keys.tolist(), strict=True) if key < 0]
            raise KeyError(f"Ids not in the memory: {unknown[:5]}.")
        if len(set(ids)) != len(ids):
            raise ValueError("The same id is named twice.")
        return self._row_of_key[keys]

    # -- changes ----------------------------------------------------------------------------

    def add(self, ids: Sequence[str], e_q: NDArray[np.integer], labels: ArrayLike) -> None:
        """Add samples (new ids, their quantized embeddings and labels)."""
        ids = list(map(str, ids))
        vectors = unit_rows(e_q)
        y = canonical_labels(labels)
        keys = np.arange(self._next_key, self._next_key + len(ids), dtype=np.int64)
        new_keys = dict(zip(ids, range(self._next_key, self._next_key + len(ids)), strict=False))
        self._check_new(ids, new_keys, vectors, y)
        all_keys = np.concatenate([self._keys, keys])
        wanted = self._wanted_kind(len(self) + len(ids))
        if wanted != self._store.kind:
            self._store = build_store(
                wanted, np.vstack([self._store.all_vectors(self._keys), vectors]), all_keys, self.nprobe
            )
        else:
            self._store.add(vectors, keys)
        rows = np.arange(len(self), len(self) + len(ids), dtype=np.int64)
        self._row_of_key = np.concatenate([self._row_of_key, rows])
        self._keys, self._next_key = all_keys, self._next_key + len(ids)
        if self._key_of:
            self._key_of.update(new_keys)
        else:
            self._key_of = new_keys
        self._ids = np.concatenate([self._ids, np.array(ids, dtype=object)])
        self._labels = np.concatenate([self._labels, y]) if len(self._labels) else y
        self._sample_weights = np.concatenate([self._sample_weights, np.ones(len(ids))])
        self._cache.clear()

    def _check_new(
        self, ids: list[str], new_keys: dict[str, int], vectors: NDArray[np.float32], labels: NDArray[Any]
    ) -> None:
        if vectors.shape[1] != self.dim:
            raise ValueError(f"Expected vectors of dimension {self.dim}, got {vectors.shape[1]}.")
        if not len(ids) == vectors.shape[0] == labels.shape[0]:
            raise ValueError("ids, embeddings and labels must have the same length.")
        if len(new_keys) != len(ids) or not self._key_of.keys().isdisjoint(new_keys):
            raise ValueError("Ids must be new and distinct.")
        if len(self._labels) and len(labels) and self._labels.dtype.kind != labels.dtype.kind:
            raise ValueError("Labels must all be integers or all strings.")

    def remove(self, ids: Iterable[str]) -> None:
        """Remove samples by id: their vectors leave the index and every array, now.

        The last rows move into the holes (as in the ledger's registry), so removing k
        samples costs O(k) besides FAISS's own removal, and nothing of them stays behind,
        not even in the arrays' spare capacity.
        """
        rows = np.sort(self.rows_for_ids(ids))
        if not len(rows):
            return
        keep = len(self) - len(rows)
        sources, targets = swap_plan(len(self), rows)
        removed_keys, moved_keys = self._keys[rows], self._keys[sources]
        for row in rows.tolist():
            del self._key_of[self._ids[row]]
        wanted = self._wanted_kind(keep)
        if wanted != self._store.kind or self._store.needs_retraining(rows, self._keys):
            vectors = apply_swap_plan(self._store.all_vectors(self._keys), sources, targets, keep, 0.0)
            keys = apply_swap_plan(self._keys.copy(), sources, targets, keep, 0)
            self._store = build_store(wanted, vectors, keys, self.nprobe)
        else:
            self._store.remove(rows, self._keys, sources, targets)
        self._ids = apply_swap_plan(self._ids, sources, targets, keep, None)
        self._labels = apply_swap_plan(self._labels, sources, targets, keep, self._labels.dtype.type())
        self._keys = apply_swap_plan(self._keys, sources, targets, keep, 0)
        self._sample_weights = apply_swap_plan(self._sample_weights, sources, targets, keep, 0.0)
        self._row_of_key[removed_keys] = -1
        self._row_of_key[moved_keys] = targets
        self._cache.clear()

    def _wanted_kind(self, n: int) -> str:
        if self.index_kind == "auto":
            return "ivf" if n > IVF_THRESHOLD else "flat"
        return self.index_kind

    # -- steering ---------------------------------------------------------------------------

    def set_sample_weights(self, ids: Iterable[str], weights: ArrayLike) -> None:
        """Multiply the votes of the given samples by ``weights`` (>= 0) from now on.

        >>> head = MemoryHead.from_samples(["a", "b"], np.eye(2, dtype=np.int16), [0, 1])
        >>> head.set_sample_weights(["b"], [0.5])
        >>> head.sample_weights.tolist()
        [1.0, 0.5]
        """
        rows = self.rows_for_ids(ids)
        values = np.broadcast_to(np.asarray(weights, dtype=np.float64), rows.shape)
        if not np.all(np.isfinite(values) & (values >= 0)):
            raise ValueError("Sample weights must be finite and non-negative.")
        self._sample_weights[rows] = values
        self._cache.clear()

    def set_class_weights(self, weights: Mapping[Label, float]) -> None:
        """Multiply each named class's score by its weight (others keep 1); replaces earlier ones."""
        if not all(np.isfinite(w) and w >= 0 for w in weights.values()):
            raise ValueError("Class weights must be finite and non-negative.")
        self._class_weights = {label: float(w) for label, w in weights.items() if w != 1.0}
        self._cache.clear()

    # -- search and voting --------------------------------------------------------------------

    def label_codes(self) -> NDArray[np.int64]:
        """Each sample's class as an index into :attr:`classes`."""
        return self._codes()[1]

    def _codes(self) -> tuple[tuple[Label, ...], NDArray[np.int64]]:
        if "codes" not in self._cache:
            classes, codes = np.unique(self._labels, return_inverse=True)
            self._cache["codes"] = (tuple(classes.tolist()), codes.astype(np.int64))
        result: tuple[tuple[Label, ...], NDArray[np.int64]] = self._cache["codes"]
        return result

    def _class_weight_vector(self) -> NDArray[np.float64]:
        return np.array([self._class_weights.get(c, 1.0) for c in self.classes], dtype=np.float64)

    def search(self, vectors: ArrayLike, k: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Similarities and rows (n, k') of the ``k' = min(k, len)`` nearest samples; row -1 = none.

        Nearest first, and equally near samples in sample id order (see :meth:`_nearest`).
        """
        if not len(self):
            raise ValueError("The memory is empty.")
        return self._nearest(unit_rows(vectors), min(k, len(self)))

    def _id_rank(self) -> NDArray[np.int64]:
        """Each row's position in sample id order."""
        if "id_rank" not in self._cache:
            rank = np.empty(len(self), dtype=np.int64)
            rank[np.argsort(self._ids.astype(str), kind="stable")] = np.arange(len(self))
            self._cache["id_rank"] = rank
        result: NDArray[np.int64] = self._cache["id_rank"]
        return result

    def _nearest(
        self, queries: NDArray[np.float32], k: int, own_rows: NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The ``k`` nearest rows of each unit query, in a canonical order: similarity, then sample id.

        FAISS orders equal similarities by their place in its index, which depends on the order
        the samples were learned and forgotten in, and it may compute one similarity with a
        different rounding depending on where a vector sits (BLAS blocking), so even two copies
        of one vector need not tie. So every candidate within :data:`TIE_MARGIN` of the k-th is
        fetched, the candidates' similarities are recomputed pair by pair in float64 (the same
        bits for the same vectors, wherever they sit), and they are ordered by similarity, ties
        by sample id: the neighbours are a function of the live samples alone. ``own_rows``
        (leave-one-out) names each query's own row, which is left out.
        """
        n, fetch = len(self), min(len(self), k + (own_rows is not None))
        fetch = min(n, fetch + max(fetch, 8))
        while True:
            similarities, rows = self._store.search(queries, fetch, self._row_of_key)
            edge = min(k + (own_rows is not None), fetch) - 1
            if fetch >= n or np.all((rows[:, -1] < 0) | (similarities[:, -1] < similarities[:, edge] - TIE_MARGIN)):
                break
            fetch = min(n, 2 * fetch)
        exact = np.full(rows.shape, -np.inf)
        step = max(1, NEAREST_BLOCK_VALUES // (fetch * self.dim))
        for start in range(0, len(rows), step):
            block = slice(start, start + step)
            found = rows[block]
            candidates = self._store.vectors(np.maximum(found, 0).ravel(), self._keys).astype(np.float64)
            candidates = candidates.reshape(*found.shape, self.dim)
            exact[block] = np.einsum("qkd,qd->qk", candidates, queries[block].astype(np.float64))
        invalid = rows < 0
        if own_rows is not None:
            invalid |= rows == own_rows[:, None]
        exact[invalid] = -np.inf
        order = np.lexsort((self._id_rank()[np.maximum(rows, 0)], -exact))[:, :k]
        exact, rows = np.take_along_axis(exact, order, axis=1), np.take_along_axis(rows, order, axis=1)
        rows[exact == -np.inf] = -1
        return exact, rows

    def neighbour_weights(
        self, voting: Voting, similarities: NDArray[np.floating], rows: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Each neighbour's vote: the rule's weight times the sample's and its class's weights."""
        codes = self._codes()[1]
        weights = voting.weights(similarities) * self._sample_weights[rows]
        weights *= self._class_weight_vector()[codes[rows]]
        weights[rows < 0] = 0.0
        return weights

    def scores_from_neighbours(
        self, voting: Voting, similarities: NDArray[np.floating], rows: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Class scores (n, K) of neighbour lists, e.g. from :meth:`search`."""
        weights = self.neighbour_weights(voting, similarities, rows)
        return class_scores(weights, np.where(rows >= 0, self._codes()[1][rows], -1), len(self.classes))

    @property
    def voting(self) -> Voting:
        """The voting rule in use: the override, or the leave-one-out choice."""
        if self.voting_override is not None:
            return self.voting_override
        if "voting" not in self._cache:
            self._cache["voting"] = self._select_voting()
        voting: Voting = self._cache["voting"]
        return voting

    def loo_neighbours(
        self, k: int, rows: NDArray[np.int64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The ``k`` nearest other samples of memory rows ``rows`` (default: all), self left out, ties by id."""
        rows = np.arange(len(self)) if rows is None else rows
        return self._nearest(self._store.vectors(rows, self._keys), min(k, len(self) - 1), own_rows=rows)

    def cv_rows(self) -> NDArray[np.int64]:
        """The memory rows used as leave-one-out queries: at most ``cv_queries``, evenly spaced in id order.

        Id order, not row order: rows move when samples are removed, and the choice must
        depend on the live samples only.
        """
        if "cv_rows" not in self._cache:
            picks = np.unique(np.linspace(0, len(self) - 1, min(len(self), self.cv_queries)).astype(np.int64))
            self._cache["cv_rows"] = np.sort(np.argsort(self._ids.astype(str), kind="stable")[picks])
        rows: NDArray[np.int64] = self._cache["cv_rows"]
        return rows

    def _select_voting(self) -> Voting:
        if len(self) < 2:
            return Voting("plurality", 1)
        rows = self.cv_rows()
        similarities, found = self.loo_neighbours(max(K_GRID), rows)
        codes = self._codes()[1]
        weights = self._sample_weights[found] * self._class_weight_vector()[codes[found]]
        voting, _ = select_voting(similarities, codes[found], codes[rows], len(self.classes), weights)
        return voting

    # -- predictions ----------------------------------------------------------------------------

    def decision_function(self, vectors: ArrayLike) -> NDArray[np.float64]:
        """The summed vote weights per class (n, K), classes in sorted order."""
        voting = self.voting
        similarities, rows = self.search(vectors, voting.k)
        return self.scores_from_neighbours(voting, similarities, rows)

    def predict_proba(self, vectors: ArrayLike) -> NDArray[np.float64]:
        """Each class's share of the votes."""
        return vote_shares(self.decision_function(vectors))

    def predict(self, vectors: ArrayLike) -> NDArray[Any]:
        """The class with the largest vote (ties go to the first in sorted order)."""
        return np.asarray(self.classes)[self.decision_function(vectors).argmax(axis=1)]

    def explain(self, vectors: ArrayLike, k: int | None = None) -> list[list[Neighbour]]:
        """Per query, its ``k`` (default: the voting's) neighbours with id, label, similarity and vote.

        The votes of a class add up to its :meth:`decision_function` score.
        """
        voting = self.voting if k is None else Voting(self.voting.aggregation, k, self.voting.param)
        similarities, rows = self.search(vectors, voting.k)
        weights = self.neighbour_weights(voting, similarities, rows)
        return [
            [
                Neighbour(self._ids[r], self._labels[r].item(), float(s), float(w))
                for s, r, w in zip(sims, found, votes, strict=True)
                if r >= 0
            ]
            for sims, found, votes in zip(similarities, rows, weights, strict=True)
        ]

    # -- files ----------------------------------------------------------------------------------

    def _canonicalize(self) -> None:
        """Put the rows in id order with FAISS ids 0..n-1, so saved files do not depend on history."""
        order = np.argsort(self._ids.astype(str), kind="stable")
        if isinstance(self._store, FlatStore):
            storage = self._store.storage()
            storage[:] = storage[order]
        else:
            self._row_of_key[self._keys[order]] = np.arange(len(self))
            self._store.renumber(self._row_of_key)
        self._ids, self._labels = self._ids[order], self._labels[order]
        self._sample_weights = self._sample_weights[order]
        self._keys, self._row_of_key = np.arange(len(self), dtype=np.int64), np.arange(len(self), dtype=np.int64)
        self._key_of = dict(zip(self._ids.tolist(), range(len(self)), strict=True))
        self._next_key = len(self)
        self._cache = {"voting": self._cache["voting"]} if "voting" in self._cache else {}  # order-free

    def save(self, directory: str | Path) -> None:
        """Write ``index.faiss`` (FAISS's own format) and ``memory.json`` into ``directory`` (see
        :mod:`~erasable.heads.memory_file`), the rows first put in id order."""
        self._canonicalize()
        store = self._store
        SavedMemory(
            dim=self.dim,
            index_kind=self.index_kind,
            nprobe=self.nprobe,
            cv_queries=self.cv_queries,
            voting=self.voting_override,
            ids=self._ids.tolist(),
            labels=self._labels.tolist(),
            sample_weights=self._sample_weights.tolist(),
            class_weights=self._class_weights,
            trained_on=store.trained_on.tolist() if isinstance(store, IVFStore) else None,
            index=store.index,
        ).write(directory)

    @classmethod
    def load(cls, directory: str | Path) -> MemoryHead:
        """Read a memory written by :meth:`save`; nothing in the files is executed."""
        saved = SavedMemory.read(directory)
        head = cls(
            saved.dim,
            voting=saved.voting,
            index=saved.index_kind,
            nprobe=saved.nprobe,
            cv_queries=saved.cv_queries,
        )
        n = len(saved.ids)
        head._store = store_of_index(saved.index, saved.trained_on, head.nprobe)
        head._ids = np.array(saved.ids, dtype=object).reshape(n)
        head._labels = canonical_labels(saved.labels) if n else head._labels
        head._sample_weights = np.asarray(saved.sample_weights, dtype=np.float64).reshape(n)
        head._keys = np.arange(n, dtype=np.int64)
        head._row_of_key = np.arange(n, dtype=np.int64)
        head._key_of = dict(zip(head._ids.tolist(), range(n), strict=True))
        head._next_key = n
        head._class_weights = dict(saved.class_weights)
        return head

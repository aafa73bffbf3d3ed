"""The FAISS stores of the visual memory (:mod:`erasable.heads.memory`): exact flat search and an inverted file.

Both hold unit float32 vectors, one per live sample, and search them by inner product
(cosine similarity). The head keeps the samples' ids, labels and weights beside them and
chooses the store (flat up to :data:`~erasable.heads.memory.IVF_THRESHOLD` vectors).

**Ids.** FAISS ids are int64: the flat index uses row positions; the IVF index uses keys
that stay with their vectors, and an array maps each key to its row (the head keeps it).

**Deletion is physical, and O(removed).** The last rows move into the holes (in the flat
index's storage too), and the rows cut off the end are overwritten with zeros before
FAISS drops them; in the IVF index the same happens inside each inverted list, where the
store finds each entry through its own record of its list and offset. So the bytes of a
forgotten vector survive neither in the index nor in any spare capacity
(:func:`swap_plan` and :func:`apply_swap_plan` cut the head's side arrays the same way). The
IVF centroids are k-means means of a fixed sample of the memory (every ``n/(40 nlist)``-th
row at training time): forgetting any of those samples retrains the index on the remaining
vectors (:meth:`IVFStore.needs_retraining`), so no centroid is derived from a forgotten
sample (that costs a rebuild, ~12 s at 1M vectors, for the 40 nlist samples the centroids
come from: 4% of them at 1M). Heap blocks that FAISS or numpy freed earlier (e.g. when the
index grew) are not scrubbed: the guarantee covers the index, its spare capacity and the
files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import faiss as _faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

#: FAISS's bundled type stubs omit much of its SWIG API (DirectMap, lo_listno, ...): use it untyped.
faiss: Any = _faiss

#: The store a memory asks for: ``auto`` chooses by size.
IndexKind = Literal["auto", "flat", "ivf"]
#: Inverted lists probed per query by the IVF index.
IVF_NPROBE = 16
#: Training points per IVF list, and k-means iterations.
IVF_POINTS_PER_LIST = 40
IVF_ITERATIONS = 10
#: Removals per inverted list (on average) up to which the IVF index removes keys one at a
#: time rather than list by list. Measured at 1M vectors (1,024 lists): one at a time costs
#: ~10 us a key, list by list ~30 us a list touched; 1,000 keys take 11 vs 17 ms, 3,000 keys
#: 30 vs 28 ms, 10,000 keys 104 vs 48 ms.
IVF_REMOVE_ONE_BY_ONE = 2

__all__ = [
    "IVF_NPROBE",
    "FlatStore",
    "IVFStore",
    "IndexKind",
    "Store",
    "apply_swap_plan",
    "build_store",
    "faiss",
    "store_of_index",
    "swap_plan",
    "unit_rows",
]


def unit_rows(vectors: ArrayLike) -> NDArray[np.float32]:
    """Rows as float32 scaled to unit length by FAISS (zero rows stay zero).

    Each row is normalized on its own, so a vector maps to the same float32 row whatever
    batch it comes in; it is exactly what a user of raw FAISS does for cosine search.

    >>> unit_rows(np.array([[3, 4], [0, 0]], dtype=np.int16)).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise ValueError(f"Expected a 2-d array of vectors, got shape {array.shape}.")
    out = np.array(array, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(out)
    return out


def swap_plan(n: int, rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """How to remove the sorted, distinct ``rows`` from ``n`` rows in O(len(rows)).

    Move ``sources[i]`` into ``targets[i]``, then cut the last ``len(rows)`` rows.

    The holes below ``keep = n - len(rows)`` are filled with the surviving rows above it;
    what is beyond the cut is the removed and the moved-from rows.

    >>> swap_plan(5, np.array([1, 4]))
    (array([3]), array([1]))
    """
    keep = n - len(rows)
    survives = np.ones(len(rows), dtype=bool)  # the len(rows) rows from keep on
    survives[rows[rows >= keep] - keep] = False
    return np.flatnonzero(survives) + keep, rows[rows < keep]


def apply_swap_plan(
    array: NDArray[Any], sources: NDArray[np.int64], targets: NDArray[np.int64], keep: int, blank: Any
) -> Any:
    """``array`` with rows ``sources`` moved into ``targets`` and cut to ``keep`` rows, the cut-off rows blanked.

    The result is a view (O(moved) work); the blanked rows beyond it hold nothing of the removed samples.
    """
    array[targets] = array[sources]
    array[keep:] = blank
    return array[:keep]


class FlatStore:
    """Exact search; FAISS ids are row positions."""

    kind = "flat"

    def __init__(self, index: Any) -> None:
        self.index = index

    @classmethod
    def empty(cls, dim: int) -> FlatStore:
        """A store of no vectors of dimension ``dim``."""
        return cls(faiss.IndexFlatIP(dim))

    @classmethod
    def build(cls, vectors: NDArray[np.float32]) -> FlatStore:
        store = cls(faiss.IndexFlatIP(vectors.shape[1]))
        store.index.add(vectors)
        return store

    def add(self, vectors: NDArray[np.float32], keys: NDArray[np.int64]) -> None:
        self.index.add(vectors)

    def search(
        self, queries: NDArray[np.float32], k: int, row_of_key: NDArray[np.int64]
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        similarities, rows = self.index.search(queries, k)
        return similarities, rows

    def storage(self) -> NDArray[np.float32]:
        n, d = self.index.ntotal, self.index.d
        return faiss.rev_swig_ptr(self.index.get_xb(), n * d).reshape(n, d)

    def vectors(self, rows: NDArray[np.int64], keys: NDArray[np.int64]) -> NDArray[np.float32]:
        return self.storage()[rows].copy()

    def all_vectors(self, keys: NDArray[np.int64]) -> NDArray[np.float32]:
        return self.storage().copy()

    def remove(
        self, rows: NDArray[np.int64], keys: NDArray[np.int64], sources: NDArray[np.int64], targets: NDArray[np.int64]
    ) -> None:
        """Move the surviving tail rows into the holes, scrub the tail, then cut it off."""
        storage, keep = self.storage(), self.index.ntotal - len(rows)
        storage[targets] = storage[sources]
        storage[keep:] = 0.0  # the removed and moved-from rows: FAISS keeps them as spare capacity
        self.index.remove_ids(faiss.IDSelectorRange(keep, self.index.ntotal))

    def needs_retraining(self, rows: NDArray[np.int64], keys: NDArray[np.int64]) -> bool:
        return False

    def renumber(self, row_of_key: NDArray[np.int64]) -> None:
        """Flat ids are already the rows."""

    def nbytes(self) -> int:
        return int(self.index.ntotal * self.index.d * 4)


class IVFStore:
    """Inverted file over k-means cells; FAISS ids are the memory's keys.

    The store records where each key's entry is -- its inverted list (``list_of_key``) and
    its position in that list (``offset_of_key``), both set when the vector is added and kept
    up to date as entries move -- so it reads, scrubs and removes entries in place, in
    O(removed), with no hash table for FAISS to maintain on every add.
    """

    kind = "ivf"

    def __init__(self, index: Any, trained_on: NDArray[np.int64]) -> None:
        self.index = index
        self.trained_on = trained_on  # keys of the samples the centroids were computed from
        self.list_of_key = np.zeros(0, dtype=np.int32)  # per key ever issued; -1 once removed
        self.offset_of_key = np.zeros(0, dtype=np.int32)

    @classmethod
    def build(cls, vectors: NDArray[np.float32], keys: NDArray[np.int64], nprobe: int) -> IVFStore:
        n, dim = vectors.shape
        nlist = int(np.clip(2 ** round(np.log2(max(np.sqrt(n), 1.0))), 1, 4096))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        index.cp.niter = IVF_ITERATIONS
        sample = np.unique(np.linspace(0, n - 1, min(n, IVF_POINTS_PER_LIST * nlist)).astype(np.int64))
        index.train(vectors[sample])
        index.nprobe = nprobe
        store = cls(index, np.sort(keys[sample]))
        store.add(vectors, keys)
        return store

    @classmethod
    def from_index(cls, index: Any, trained_on: NDArray[np.int64]) -> IVFStore:
        """A store around a loaded index: the lists tell where each key is."""
        store = cls(index, trained_on)
        store._index_lists()
        return store

    def _index_lists(self) -> None:
        entries = [(list_no, self._list(list_no)[0]) for list_no in range(self.index.nlist)]
        top = max((int(ids.max()) for _, ids in entries if len(ids)), default=-1)
        self.list_of_key = np.full(top + 1, -1, dtype=np.int32)
        self.offset_of_key = np.zeros(top + 1, dtype=np.int32)
        for list_no, ids in entries:
            self.list_of_key[ids] = list_no
            self.offset_of_key[ids] = np.arange(len(ids))

    def _list(self, list_no: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Views of the ids and vectors stored in one inverted list."""
        lists = self.index.invlists
        size = lists.list_size(list_no)
        if not size:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.index.d), dtype=np.float32)
        ids = faiss.rev_swig_ptr(lists.get_ids(list_no), size)
        codes = faiss.rev_swig_ptr(lists.get_codes(list_no), size * lists.code_size)
        return ids, codes.view(np.float32).reshape(size, self.index.d)

    def add(self, vectors: NDArray[np.float32], keys: NDArray[np.int64]) -> None:
        """Append to the nearest lists; FAISS appends in input order, which gives each entry's offset."""
        _, assigned = self.index.quantizer.search(vectors, 1)  # what add_with_ids computes, kept
        lists = np.ascontiguousarray(assigned[:, 0])
        counts = np.bincount(lists, minlength=self.index.nlist)
        sizes = np.zeros(self.index.nlist, dtype=np.int64)
        for list_no in np.flatnonzero(counts).tolist():
            sizes[list_no] = self.index.invlists.list_size(list_no)
        order = np.argsort(lists.astype(np.int16), kind="stable")  # nlist <= 4096: a radix sort
        offsets = np.empty(len(lists), dtype=np.int64)  # size before + rank among the list's new entries
        offsets[order] = np.arange(len(lists)) + np.repeat(sizes - (np.cumsum(counts) - counts), counts)
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        self.index.add_core(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(keys), faiss.swig_ptr(lists))
        if len(keys) and keys.max() >= len(self.list_of_key):
            grow = int(keys.max()) + 1 - len(self.list_of_key)
            self.list_of_key = np.concatenate([self.list_of_key, np.full(grow, -1, dtype=np.int32)])
            self.offset_of_key = np.concatenate([self.offset_of_key, np.zeros(grow, dtype=np.int32)])
        self.list_of_key[keys] = lists
        self.offset_of_key[keys] = offsets

    def search(
        self, queries: NDArray[np.float32], k: int, row_of_key: NDArray[np.int64]
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        similarities, found = self.index.search(queries, k)
        rows = np.where(found >= 0, row_of_key[np.maximum(found, 0)], -1)
        return similarities, rows

    def _located(
        self, wanted: NDArray[np.int64]
    ) -> Iterator[tuple[int, NDArray[np.intp], NDArray[np.int32], NDArray[np.int64], NDArray[np.float32]]]:
        """Per inverted list holding some of the keys ``wanted``: the list's number, the indices
        into ``wanted`` it holds, their offsets in the list, and views of its ids and vectors."""
        lists_of = self.list_of_key[wanted]
        order = np.argsort(lists_of, kind="stable")
        numbers, starts = np.unique(lists_of[order], return_index=True)
        for list_no, chosen in zip(numbers.tolist(), np.split(order, starts[1:]), strict=True):
            yield list_no, chosen, self.offset_of_key[wanted[chosen]], *self._list(list_no)

    def vectors(self, rows: NDArray[np.int64], keys: NDArray[np.int64]) -> NDArray[np.float32]:
        wanted = keys[rows]
        out = np.empty((len(wanted), self.index.d), dtype=np.float32)
        for _, chosen, offsets, _, codes in self._located(wanted):
            out[chosen] = codes[offsets]
        return out

    def all_vectors(self, keys: NDArray[np.int64]) -> NDArray[np.float32]:
        return self.vectors(np.arange(len(keys)), keys)

    def remove(
        self, rows: NDArray[np.int64], keys: NDArray[np.int64], sources: NDArray[np.int64], targets: NDArray[np.int64]
    ) -> None:
        """Fill each hole with its list's last entry, zero the vacated tail, shrink the list (keys stay put).

        Up to :data:`IVF_REMOVE_ONE_BY_ONE` keys per list on average are removed one at a
        time (a few scalar moves each); more are removed list by list, vectorized.
        """
        removed = keys[rows]
        if len(removed) <= IVF_REMOVE_ONE_BY_ONE * self.index.nlist:
            for key in removed.tolist():
                self._remove_entry(key)
        else:
            for list_no, _, offsets, ids, codes in self._located(removed):
                keep = len(ids) - len(offsets)
                moved_from, moved_to = swap_plan(len(ids), np.sort(offsets))
                ids[moved_to], codes[moved_to] = ids[moved_from], codes[moved_from]
                self.offset_of_key[ids[moved_to]] = moved_to
                ids[keep:], codes[keep:] = -1, 0.0  # nothing of a removed vector stays in the spare capacity
                self.index.invlists.resize(list_no, keep)
        self.list_of_key[removed] = -1
        self.index.ntotal -= len(removed)

    def _remove_entry(self, key: int) -> None:
        """Move the last entry of the key's list into its slot, zero the last slot, shrink the list by one."""
        list_no, offset = int(self.list_of_key[key]), int(self.offset_of_key[key])
        ids, codes = self._list(list_no)
        last = len(ids) - 1
        if offset != last:
            ids[offset], codes[offset] = ids[last], codes[last]
            self.offset_of_key[ids[offset]] = offset
        ids[last], codes[last] = -1, 0.0
        self.index.invlists.resize(list_no, last)

    def needs_retraining(self, rows: NDArray[np.int64], keys: NDArray[np.int64]) -> bool:
        removed = keys[rows]  # trained_on is sorted: binary search, no set building
        found = np.minimum(np.searchsorted(self.trained_on, removed), len(self.trained_on) - 1)
        return bool((self.trained_on[found] == removed).any())

    def renumber(self, row_of_key: NDArray[np.int64]) -> None:
        """Replace the keys by their rows (0..n-1) in the lists."""
        for list_no in range(self.index.nlist):
            ids = self._list(list_no)[0]
            ids[:] = row_of_key[ids]
        self.trained_on = np.sort(row_of_key[self.trained_on])
        self._index_lists()

    def nbytes(self) -> int:
        lists = self.index.ntotal * (self.index.code_size + 8) + self.index.nlist * self.index.d * 4
        return int(lists + self.list_of_key.nbytes + self.offset_of_key.nbytes)


Store = FlatStore | IVFStore


def build_store(kind: str, vectors: NDArray[np.float32], keys: NDArray[np.int64], nprobe: int) -> Store:
    """A store of ``kind`` (``"flat"`` or ``"ivf"``) over ``vectors``; an empty memory is always flat."""
    if kind == "ivf" and len(vectors):
        return IVFStore.build(vectors, keys, nprobe)
    return FlatStore.build(vectors)


def store_of_index(index: Any, trained_on: Sequence[int] | None, nprobe: int) -> Store:
    """The store around a loaded FAISS index: an ``IndexIVFFlat`` trained on the keys ``trained_on``, probing
    ``nprobe`` lists, or an ``IndexFlatIP``."""
    if isinstance(index, faiss.IndexIVFFlat):
        index.nprobe = nprobe
        return IVFStore.from_index(index, np.asarray(trained_on, dtype=np.int64))
    return FlatStore(index)

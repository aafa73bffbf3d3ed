"""Additive sufficient statistics of a labelled set of integer vectors.

A :class:`Moments` holds, for integer vectors ``v`` (quantized embeddings or integer
features) with class labels:

* ``class_counts[c]``  -- how many samples have label ``classes[c]``;
* ``class_sums[c]``    -- the sum of their vectors (prototypes, class means, the ridge cross
  moment ``sum v y_c``, since the targets are one-hot);
* ``gram``             -- ``sum v v^T`` over all samples (upper triangle, zeros below).

All are int64, so adding, subtracting and merging are exact and order independent, and
the canonical bytes -- hence :meth:`Moments.digest` -- depend only on the multiset of
samples. Classes are kept in sorted label order; a class whose count reaches zero is
dropped. Labels are all ``int`` or all ``str``.

>>> import numpy as np
>>> a = Moments.from_samples(np.array([[1, 2], [3, 4]]), ["b", "a"])
>>> b = Moments.from_samples(np.array([[5, 6]]), ["b"])
>>> both = a + b
>>> both.classes, both.class_counts.tolist()
(('a', 'b'), [1, 2])
>>> (both - b).digest() == a.digest()
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from erasable.exact import (
    FLOAT64_EXACT,
    GramAccumulator,
    check_accumulator_range,
    exact_transpose_matmul,
    gram_plus_rows,
    max_abs,
    single_pass_bound,
)

Label = int | str
#: Integer labels are stored as int64.
INT64_MAX = 2**63 - 1
MIXED_LABELS = "Unknown label type: labels must be all integers or all strings, not a mix."

__all__ = [
    "Label",
    "Moments",
    "MomentsMismatchError",
    "canonical_labels",
    "pack_upper",
    "require_unicode",
    "unpack_upper",
]


class MomentsMismatchError(ValueError):
    """Two Moments cannot be combined, or a subtraction removes samples never added."""


def canonical_labels(labels: ArrayLike) -> NDArray[np.generic]:
    """Labels as a 1-d array of int64 or str, the two label types erasable stores.

    Integral floats and booleans become int64; any other float, an integer outside int64, a
    string that is not valid Unicode (a lone surrogate: no file, database or JSON encoder can
    write it), or a mix of numbers and strings, is refused: a class label must sort and
    serialize the same way everywhere.

    >>> canonical_labels([2.0, 1.0]).tolist()
    [2, 1]
    >>> canonical_labels(["x", "y"]).dtype.kind
    'U'
    >>> canonical_labels([1, "a"])
    Traceback (most recent call last):
    ...
    ValueError: Unknown label type: labels must be all integers or all strings, not a mix.
    """
    array = np.asarray(labels)
    if array.dtype.kind == "U" and not isinstance(labels, np.ndarray):
        array = np.asarray(labels, dtype=object)  # NumPy would turn the numbers among strings into strings
    if array.ndim != 1:
        raise ValueError(f"Labels must be one-dimensional, got shape {array.shape}.")
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.int64)
    if kind in "iu":
        if kind == "u" and array.size and int(array.max()) > INT64_MAX:
            raise ValueError(f"Integer labels must lie in the int64 range (at most {INT64_MAX}).")
        return array.astype(np.int64)
    if kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError("Unknown label type: float labels must be whole numbers (class ids).")
        if array.size and not np.all(np.abs(array) < 2.0**63):
            raise ValueError("Integer labels must lie in the int64 range (|label| < 2**63).")
        return array.astype(np.int64)
    if kind in "US":
        strings = array.astype(str)
        require_unicode(strings.tolist(), "Labels")
        return strings
    if kind == "O":
        values = array.tolist()
        if all(isinstance(v, str) for v in values):
            require_unicode(values, "Labels")
            return array.astype(str)
        if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            if any(not -INT64_MAX - 1 <= int(v) <= INT64_MAX for v in values):
                raise ValueError(f"Integer labels must lie in the int64 range ({-INT64_MAX - 1} to {INT64_MAX}).")
            return array.astype(np.int64)
        if any(isinstance(v, str) for v in values):
            raise ValueError(MIXED_LABELS)
    raise ValueError(f"Unknown label type: labels must be all integers or all strings, got {array.dtype}.")


def require_unicode(values: Iterable[str | None], what: str) -> None:
    """Raise ``ValueError`` unless every string of ``values`` (``None`` is skipped) is valid Unicode.

    Python strings may hold lone surrogates (``"\\udfff"``, e.g. from JSON escapes), which
    UTF-8 cannot encode: such a name would be accepted and then break every file, database
    row and JSON answer that has to write it. Checked on the distinct values, at once.
    """
    try:
        "\0".join({v for v in values if v is not None}).encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (no lone surrogates).") from None


def pack_upper(gram: NDArray[np.int64]) -> NDArray[np.int64]:
    """The upper triangle of a square matrix by rows, ``gram[0, 0:], gram[1, 1:], ...``: its canonical bytes.

    >>> pack_upper(np.array([[1, 2], [0, 3]])).tolist()
    [1, 2, 3]
    """
    dim = gram.shape[0]
    packed = np.empty(dim * (dim + 1) // 2, dtype=np.int64)
    start = 0
    for i in range(dim):
        packed[start : start + dim - i] = gram[i, i:]
        start += dim - i
    return packed


def unpack_upper(packed: NDArray[np.int64], dim: int) -> NDArray[np.int64]:
    """The ``dim`` x ``dim`` matrix, zeros below the diagonal, of :func:`pack_upper`'s output.

    Raises ``ValueError`` if ``packed`` is not a vector of ``dim * (dim + 1) / 2`` entries.

    >>> unpack_upper(np.array([1, 2, 3]), 2).tolist()
    [[1, 2], [0, 3]]
    """
    if packed.shape != (dim * (dim + 1) // 2,):
        raise ValueError(f"a packed upper triangle of {dim} x {dim} has {dim * (dim + 1) // 2} entries")
    gram = np.zeros((dim, dim), dtype=np.int64)
    start = 0
    for i in range(dim):
        gram[i, i:] = packed[start : start + dim - i]
        start += dim - i
    return gram


def _batch(vectors: ArrayLike, labels: ArrayLike, dim: int) -> tuple[NDArray[np.floating], NDArray[np.generic]]:
    """Validated rows (n, dim) -- float32 kept as is, anything else as float64 -- and canonical labels."""
    array = np.asarray(vectors)
    rows: NDArray[np.floating] = np.ascontiguousarray(
        array, dtype=np.float32 if array.dtype == np.float32 else np.float64
    )
    y = canonical_labels(labels)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"Expected vectors of shape (n, {dim}), got {rows.shape}.")
    if rows.shape[0] != y.shape[0]:
        raise ValueError(f"{rows.shape[0]} vectors but {y.shape[0]} labels.")
    return rows, y


def _class_sums(
    rows: NDArray[np.floating], y: NDArray[np.generic], bound: float | None = None
) -> tuple[list[Label], NDArray[np.int64], NDArray[np.int64]]:
    """Sorted labels of a batch, their counts and their exact row sums."""
    classes, inverse = np.unique(y, return_inverse=True)
    one_hot = np.zeros((rows.shape[0], classes.size), dtype=np.float64)
    one_hot[np.arange(rows.shape[0]), inverse] = 1.0
    counts = np.bincount(inverse, minlength=classes.size).astype(np.int64)
    return classes.tolist(), counts, exact_transpose_matmul(one_hot, rows, bound)


def _label_kind(classes: Sequence[Label]) -> str | None:
    if not classes:
        return None
    return "str" if isinstance(classes[0], str) else "int"


class Moments:
    """Integer sufficient statistics; see the module docstring. Instances are immutable.

    The Gram of few samples is *deferred*: the statistics of the first samples added to
    nothing (by :meth:`with_samples`, up to ``dim`` of them) keep those samples' rows and
    form ``triu(rows.T @ rows)`` only when :attr:`gram` is first read. The numbers are the
    same, bit for bit; what a small model never needs -- the D x D Gram of 100 samples is
    134 MB at D = 4096, its rows 1.6 MB -- it never allocates: a head solved in the dual
    reads only the leading block GCV looks at (:meth:`gram_block`).
    """

    dim: int
    classes: tuple[Label, ...]
    class_counts: NDArray[np.int64]
    class_sums: NDArray[np.int64]
    _gram: NDArray[np.int64] | None
    _rows: NDArray[np.floating] | None  # while the Gram is deferred: one row per sample

    def __init__(
        self,
        dim: int,
        classes: tuple[Label, ...],
        class_counts: NDArray[np.int64],
        class_sums: NDArray[np.int64],
        gram: NDArray[np.int64] | None = None,
        *,
        rows: NDArray[np.floating] | None = None,
    ) -> None:
        """Statistics from their arrays: ``gram``, or the ``rows`` (one per sample) it is the Gram of."""
        k = len(classes)
        if class_counts.shape != (k,) or class_sums.shape != (k, dim):
            raise MomentsMismatchError("Class arrays do not match the class list.")
        if (gram is None) == (rows is None):
            raise ValueError("Give exactly one of the Gram and the rows it is the Gram of.")
        if gram is not None and gram.shape != (dim, dim):
            raise MomentsMismatchError(f"Gram must be ({dim}, {dim}), got {gram.shape}.")
        if rows is not None and rows.shape != (int(class_counts.sum()), dim):
            raise MomentsMismatchError(f"Expected one row of {dim} per sample, got {rows.shape}.")
        if list(classes) != sorted(set(classes)):
            raise MomentsMismatchError("Classes must be unique and sorted.")
        if len({type(c) for c in classes}) > 1:
            raise MomentsMismatchError("Labels must be all integers or all strings.")
        if np.any(class_counts <= 0):
            raise MomentsMismatchError("Every listed class must have a positive count.")
        for array in (class_counts, class_sums, gram, rows):
            if array is not None:
                array.setflags(write=False)
        fields = {"dim": dim, "classes": classes, "class_counts": class_counts, "class_sums": class_sums}
        fields |= {"_gram": gram, "_rows": rows}
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Moments are immutable: cannot set {name!r}.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Moments are immutable: cannot delete {name!r}.")

    def __repr__(self) -> str:
        return f"Moments(dim={self.dim}, classes={len(self.classes)}, count={self.count})"

    @property
    def gram(self) -> NDArray[np.int64]:
        """``sum v v^T`` over the samples: upper triangle, zeros below (formed now if it was deferred)."""
        gram = self._gram
        if gram is None:
            rows = self._rows
            if rows is None:  # another thread formed it meanwhile: it sets the Gram before it drops the rows
                gram = self._gram
            else:
                gram = gram_plus_rows(None, rows, +1)
                gram.setflags(write=False)
                object.__setattr__(self, "_gram", gram)
                object.__setattr__(self, "_rows", None)
        assert gram is not None
        return gram

    def gram_block(self, width: int) -> NDArray[np.int64]:
        """The Gram of the first ``width`` features, ``gram[:width, :width]``, without forming the rest."""
        rows = self._rows
        if rows is None:
            return self.gram[:width, :width]
        return np.triu(exact_transpose_matmul(rows[:, :width], rows[:, :width]))

    # -- construction -------------------------------------------------------------------

    @classmethod
    def empty(cls, dim: int) -> Moments:
        """The statistics of no samples."""
        return cls(
            dim=dim,
            classes=(),
            class_counts=np.zeros(0, dtype=np.int64),
            class_sums=np.zeros((0, dim), dtype=np.int64),
            rows=np.zeros((0, dim)),
        )

    @classmethod
    def from_samples(cls, vectors: ArrayLike, labels: ArrayLike) -> Moments:
        """Statistics of one batch of integer vectors (n, dim) within the int16 range."""
        return cls.from_batches([(vectors, labels)], dim=np.shape(vectors)[1])

    @classmethod
    def from_batches(cls, batches: Iterable[tuple[ArrayLike, ArrayLike]], dim: int) -> Moments:
        """Statistics of a stream of ``(vectors, labels)`` batches, accumulated exactly.

        Equivalent to summing :meth:`from_samples` of each batch, but the Gram matrix is
        accumulated by one :class:`~erasable.exact.GramAccumulator` (int8 products, or BLAS
        ``ssyrk`` or ``dsyrk``) and converted to int64 rarely, which is what makes ingest run
        near the speed of the kernel.
        """
        gram = GramAccumulator(dim)
        per_class: dict[Label, tuple[int, NDArray[np.int64]]] = {}
        total = 0
        for vectors, labels in batches:
            rows, y = _batch(vectors, labels, dim)
            total += rows.shape[0]
            check_accumulator_range(total)
            bound = max_abs(rows)
            gram.add(rows, bound)
            for label, count, row_sum in zip(*_class_sums(rows, y, bound), strict=True):
                previous_count, previous_sum = per_class.get(label, (0, np.zeros(dim, dtype=np.int64)))
                per_class[label] = (previous_count + int(count), previous_sum + row_sum)
        classes = tuple(sorted(per_class))
        if len({type(c) for c in classes}) > 1:
            raise MomentsMismatchError("Labels must be all integers or all strings.")
        return cls(
            dim=dim,
            classes=classes,
            class_counts=np.array([per_class[c][0] for c in classes], dtype=np.int64),
            class_sums=np.array([per_class[c][1] for c in classes], dtype=np.int64).reshape(-1, dim),
            gram=gram.result(),
        )

    # -- algebra --------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Total number of samples."""
        return int(self.class_counts.sum())

    def _combine(
        self,
        classes: Sequence[Label],
        counts: NDArray[np.int64],
        sums: NDArray[np.int64],
        sign: int,
        gram: NDArray[np.int64] | None = None,
        rows: NDArray[np.floating] | None = None,
    ) -> Moments:
        """These statistics plus (``sign=+1``) or minus (``-1``) another set's class parts.

        ``gram`` is the already combined Gram matrix, or ``rows`` the rows of all the samples (deferred).
        """
        kinds = {_label_kind(self.classes), _label_kind(tuple(classes))} - {None}
        if len(kinds) > 1:
            raise MomentsMismatchError("Cannot mix integer and string class labels.")
        union = sorted(set(self.classes) | set(classes))
        index = {label: i for i, label in enumerate(union)}
        new_counts = np.zeros(len(union), dtype=np.int64)
        new_sums = np.zeros((len(union), self.dim), dtype=np.int64)
        for labels, part_counts, part_sums, factor in (
            (self.classes, self.class_counts, self.class_sums, 1),
            (classes, counts, sums, sign),
        ):
            positions = [index[c] for c in labels]
            new_counts[positions] += factor * part_counts
            new_sums[positions] += factor * part_sums
        if np.any(new_counts < 0):
            missing = [union[i] for i in np.flatnonzero(new_counts < 0)]
            raise MomentsMismatchError(f"Subtracting samples that were never added (classes {missing}).")
        alive = new_counts > 0
        if np.any(new_sums[~alive]):
            raise MomentsMismatchError("A class with no samples left has non-zero sums: inconsistent subtraction.")
        check_accumulator_range(int(new_counts.sum()))
        if int(new_counts.sum()) == 0 and gram is not None and np.any(gram):
            raise MomentsMismatchError("No samples left but the Gram matrix is non-zero: inconsistent subtraction.")
        return Moments(
            dim=self.dim,
            classes=tuple(c for c, keep in zip(union, alive, strict=True) if keep),
            class_counts=new_counts[alive],
            class_sums=new_sums[alive],
            gram=gram,
            rows=rows,
        )

    def _combine_moments(self, other: Moments, sign: int) -> Moments:
        if not isinstance(other, Moments):
            raise TypeError(f"Cannot combine Moments with {type(other).__name__}.")
        if other.dim != self.dim:
            raise MomentsMismatchError(f"Dimensions differ: {self.dim} and {other.dim}.")
        parts = other.classes, other.class_counts, other.class_sums, sign
        if sign > 0 and self.count == 0:  # adding to nothing: share the (immutable) arrays instead of adding zeros
            rows = other._rows  # read once: another thread may form the Gram meanwhile (and then drops the rows)
            return self._combine(*parts, gram=other.gram if rows is None else None, rows=rows)
        return self._combine(*parts, gram=self.gram + other.gram if sign > 0 else self.gram - other.gram)

    def __add__(self, other: Moments) -> Moments:
        """Merge: the statistics of both sample sets together."""
        return self._combine_moments(other, +1)

    def __sub__(self, other: Moments) -> Moments:
        """Forget: the statistics with ``other``'s samples removed."""
        return self._combine_moments(other, -1)

    def with_samples(self, vectors: ArrayLike, labels: ArrayLike, sign: int = 1) -> Moments:
        """``self + Moments.from_samples(vectors, labels)`` (``-`` with ``sign=-1``), for few samples.

        Identical result, but the Gram is updated in one pass (:func:`~erasable.exact.gram_plus_rows`)
        instead of materializing a dense batch Gram: the fast path of small learn and forget requests.
        Added to statistics whose Gram is deferred, up to ``dim`` samples in all, it stays deferred.
        """
        rows, y = _batch(vectors, labels, self.dim)
        classes, counts, sums = _class_sums(rows, y)
        pending = self._rows
        if sign > 0 and pending is not None and pending.shape[0] + rows.shape[0] <= self.dim:
            together = np.concatenate([pending, rows]) if pending.shape[0] else rows.copy()
            if single_pass_bound(together) < FLOAT64_EXACT:  # the Gram it defers forms exactly
                return self._combine(classes, counts, sums, sign, rows=together)
        return self._combine(classes, counts, sums, sign, gram=gram_plus_rows(self.gram, rows, sign))

    # -- identity -------------------------------------------------------------------------

    def header(self) -> dict[str, object]:
        """The non-array part of the canonical form (JSON-serializable)."""
        return {"dim": self.dim, "classes": list(self.classes), "dtype": "<i8", "gram": "upper triangle by rows"}

    def arrays(self) -> dict[str, NDArray[np.int64]]:
        """The arrays of the statistics (the Gram in full, zeros below the diagonal)."""
        return {"class_counts": self.class_counts, "class_sums": self.class_sums, "gram": self.gram}

    @cached_property
    def _digest(self) -> str:
        h = hashlib.sha256(json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode())
        for name in ("class_counts", "class_sums"):
            h.update(name.encode() + b"\0")
            h.update(np.ascontiguousarray(getattr(self, name), dtype="<i8").data)
        h.update(b"gram\0")
        gram = np.ascontiguousarray(self.gram, dtype="<i8")
        for i in range(self.dim):  # the canonical bytes skip the zeros below the diagonal
            h.update(gram[i, i:].data)
        return h.hexdigest()

    def digest(self) -> str:
        """SHA-256 of the canonical bytes, as hex (computed once: Moments are immutable)."""
        return self._digest

    def equals(self, other: Moments) -> bool:
        """Exact equality of the statistics."""
        return (
            self.dim == other.dim
            and self.classes == other.classes
            and all(np.array_equal(a, b) for a, b in zip(self.arrays().values(), other.arrays().values(), strict=True))
        )

"""What a file's values become: labels, ids, subjects and vectors, one rule each for every format.

Labels are int64 or str (:func:`~erasable.moments.canonical_labels`); ids are non-empty strings,
unique; an empty subject is none; vectors are a non-empty, finite float64 matrix. Arrays (NPZ,
NPY) and tables (CSV, Parquet) go through the same functions, so a value refused in one form is
refused in the others, with its file and, for vectors, its row and column.

>>> labels_from(np.array([2.0, 1.0]), "y.npy").tolist()
[2, 1]
>>> subjects_from(["u1", "", "u2"])
['u1', None, 'u2']
>>> vectors_from(np.array([[0.5, np.inf]]), "x.npy")
Traceback (most recent call last):
...
erasable.io.errors.InputError: x.npy, row 1, column 2: value inf is not finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erasable.io.errors import InputError
from erasable.moments import canonical_labels

__all__ = ["ids_from", "labels_from", "labels_from_text", "strings_from", "subjects_from", "vectors_from"]


def labels_from(values: Any, path: str | Path, key: str | None = None) -> NDArray[Any]:
    """Labels as int64 or str, one-dimensional; anything else is refused naming the file (and array)."""
    try:
        return canonical_labels(values)
    except ValueError as exc:
        raise InputError(f"labels must be integers or strings, one per item: {exc}", path=path, key=key) from exc


def labels_from_text(cells: Sequence[str], path: str | Path) -> NDArray[Any]:
    """Labels read as text (a labels file, a CSV of vectors): integers if every one is, strings otherwise."""
    try:
        return np.array([int(cell) for cell in cells], dtype=np.int64)
    except ValueError:
        return labels_from(np.array(cells, dtype=str), path)


def strings_from(array: NDArray[Any], path: str | Path, key: str | None = None) -> list[str]:
    """A 1-d array of integers or strings as a list of strings."""
    if array.ndim != 1 or array.dtype.kind not in "iuUS":
        raise InputError(
            f"expected a 1-d array of integers or strings, got {array.dtype} {array.shape}.", path=path, key=key
        )
    return [str(value) for value in (array.astype(str) if array.dtype.kind == "S" else array).tolist()]


def ids_from(array: NDArray[Any], path: str | Path, key: str | None = None) -> list[str]:
    """Ids from a 1-d array: strings, none empty, none twice (the positions of a repeat count from 0)."""
    ids = strings_from(array, path, key)
    first: dict[str, int] = {}
    for position, sample_id in enumerate(ids):
        if not sample_id:
            raise InputError(f"empty id at position {position}.", path=path, key=key)
        if sample_id in first:
            message = f"duplicate id {sample_id!r} at positions {first[sample_id]} and {position}."
            raise InputError(message, path=path, key=key)
        first[sample_id] = position
    return ids


def subjects_from(values: Sequence[str | None]) -> list[str | None]:
    """Subjects; an empty string or a missing value means "no subject"."""
    return [None if value is None or value == "" else str(value) for value in values]


def vectors_from(
    array: NDArray[Any],
    path: str | Path,
    key: str | None = None,
    *,
    lines: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
) -> NDArray[np.float64]:
    """A non-empty, numeric, finite (n, d) matrix as float64.

    The first NaN or infinity is reported by row (from 1), with its ``lines`` (of a text file)
    and its column (``names``, else its position from 1).
    """
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"expected a non-empty 2-D array of vectors, got shape {array.shape}.", path=path, key=key)
    if array.dtype.kind not in "iuf":
        raise InputError(f"vectors must be numeric, got dtype {array.dtype}.", path=path, key=key)
    vectors = array.astype(np.float64)
    bad = np.argwhere(~np.isfinite(vectors))
    if bad.size:
        row, column = (int(i) for i in bad[0])
        raise InputError(
            f"value {vectors[row, column]} is not finite.",
            path=path,
            key=key,
            row=row + 1,
            line=None if lines is None else lines[row],
            column=str(column + 1) if names is None else names[column],
        )
    return vectors

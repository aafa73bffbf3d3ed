"""NumPy files: NPY arrays and NPZ archives, never unpickled.

One loader for each format serves every caller -- the raw inputs of an encoder, embedding
vectors, and the shards of a Dask fit (through :mod:`erasable.io.source`, so also over fsspec).
``allow_pickle=False`` always: an object array is refused with a message saying why.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
>>> np.savez(path, X=np.eye(2), y=np.array(["a", "b"]), who=np.array(["u1", ""]))
>>> data = read_npz(path, subjects_key="who")
>>> data.labels.tolist(), data.subjects
(['a', 'b'], ['u1', None])
>>> read_npz(path, labels_key="labels")
Traceback (most recent call last):
...
erasable.io.errors.InputError: ...d.npz: no array 'labels'; it holds ['X', 'y', 'who'].
"""

from __future__ import annotations

import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erasable.io.columns import Columns
from erasable.io.dataset import Dataset, check_lengths
from erasable.io.errors import InputError
from erasable.io.source import StorageOptions, opened
from erasable.io.values import ids_from, labels_from, strings_from, subjects_from

__all__ = ["arrays_dataset", "load_npy", "load_npz", "npz_dataset", "read_npy", "read_npz"]

_NO_PICKLE = "object arrays need pickle, which erasable never loads"


def load_npy(source: str | Path, storage_options: StorageOptions = None) -> NDArray[Any]:
    """The array of an NPY file; a scalar, an object array or a damaged file is refused."""
    try:
        with opened(source, storage_options) as handle:
            array = np.asarray(np.lib.format.read_array(handle, allow_pickle=False))
    except ValueError as exc:
        note = f" ({_NO_PICKLE})" if "pickle" in str(exc) else ""
        raise InputError(f"cannot read as NPY: {exc}{note}.", path=source) from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read: {exc}", path=source) from exc
    if array.ndim == 0:
        raise InputError("expected an array of items, got a scalar.", path=source)
    return array


def load_npz(
    source: str | Path,
    keys: Collection[str],
    *,
    optional: Collection[str] = (),
    storage_options: StorageOptions = None,
) -> dict[str, NDArray[Any]]:
    """The arrays ``keys`` of an NPZ file; a key in ``optional`` may be absent, any other must be there.

    A missing array ``X`` beside arrays ``X_<name>`` says they are splits.
    """
    try:
        with opened(source, storage_options) as handle:
            if not zipfile.is_zipfile(handle):
                raise InputError("cannot read: not an NPZ file (not a zip archive).", path=source)
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as archive:
                names = list(archive.files)
                missing = [k for k in keys if k not in names and k not in optional]
                if missing:
                    raise InputError(_missing(missing[0], names), path=source)
                return {key: _member(archive, key, source) for key in keys if key in names}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read: {exc}", path=source) from exc


def _missing(key: str, names: list[str]) -> str:
    splits = sorted(name.removeprefix(f"{key}_") for name in names if name.startswith(f"{key}_"))
    hint = f" (the splits {splits}: choose one with --split NAME)" if splits else ""
    return f"no array {key!r}; it holds {names}{hint}."


def _member(archive: Any, key: str, source: str | Path) -> NDArray[Any]:
    try:
        return np.asarray(archive[key])
    except ValueError as exc:
        raise InputError(f"{exc} ({_NO_PICKLE}).", path=source, key=key) from exc


def npz_dataset(
    source: str | Path,
    columns: Columns,
    *,
    optional: Collection[str] = (),
    noun: str = "items",
) -> Dataset[NDArray[Any]]:
    """Items, labels, ids and subjects stored under the ``columns`` of an NPZ file."""
    return arrays_dataset(source, load_npz(source, columns.named(), optional=optional), columns, noun=noun)


def arrays_dataset(
    source: str | Path, arrays: Mapping[str, NDArray[Any]], columns: Columns, *, noun: str = "items"
) -> Dataset[NDArray[Any]]:
    """The arrays under ``columns`` (absent ones: none) as a dataset; ``noun`` says what the items are."""
    items = arrays[columns.items]
    if items.ndim == 0:
        raise InputError("expected an array of items, got a scalar.", path=source, key=columns.items)

    def field(name: str | None) -> NDArray[Any] | None:
        return None if name is None else arrays.get(name)

    labels, ids, subjects = field(columns.labels), field(columns.ids), field(columns.subjects)
    check_lengths(len(items), noun, source, labels=labels, ids=ids, subjects=subjects)
    return Dataset(
        items=items,
        labels=None if labels is None else labels_from(labels, source, columns.labels),
        ids=None if ids is None else ids_from(ids, source, columns.ids),
        subjects=None if subjects is None else subjects_from(strings_from(subjects, source, columns.subjects)),
    )


def read_npz(
    path: str | Path,
    *,
    items_key: str = "X",
    labels_key: str | None = "y",
    ids_key: str | None = None,
    subjects_key: str | None = None,
) -> Dataset[NDArray[Any]]:
    """Items, labels, ids and subjects stored under the given keys of a ``.npz`` file.

    ``labels_key=None`` reads unlabelled items; a named key that is missing is an error.
    """
    return npz_dataset(path, Columns(items_key, labels_key, ids_key, subjects_key))


def read_npy(path: str | Path, labels_path: str | Path | None = None) -> Dataset[NDArray[Any]]:
    """Items from a ``.npy`` file, labels (one per item) from an optional second one."""
    items = load_npy(path)
    if labels_path is None:
        return Dataset(items=items)
    labels = labels_from(load_npy(labels_path), labels_path)
    check_lengths(len(items), "items", f"{path} and {labels_path}", labels=labels)
    return Dataset(items=items, labels=labels)

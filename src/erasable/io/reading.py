"""The entry point: :func:`read` a file as the vectors or the raw inputs a model takes.

What the command line reads as DATA, in one call: the form of the file (its suffix, or a
folder) picks the reader, ``raw`` says whether the model takes vectors or raw inputs for its
encoder, and the result is a :class:`~erasable.io.dataset.Dataset` either way.

* vectors -- NPZ (arrays ``X``, ``y``, ``ids``, ``subjects``; ``X_<split>``, ... with
  ``split``), NPY (vectors only) or CSV (numeric columns and the ``columns`` named);
* raw inputs -- a table of texts (CSV / TSV / JSONL / Parquet, the text in ``columns.items``),
  a ``.txt`` file (one text per line; blank lines skipped, ids are line numbers), a folder of
  images (one subfolder per class), an image file, an IDX file (its labels from
  ``labels_path``, or beside it when named like Fashion-MNIST's), or NPZ / NPY items.

``labels_path`` (NPY, IDX, or text with one label per line) supplies the labels; with
``need_labels``, data without labels is an error. :func:`read_dataset` is the library's own
picker for raw inputs, passing each reader its own options.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "v.csv"
>>> _ = path.write_text("a,b,label\\n0.1,0.2,x\\n0.3,0.4,y\\n")
>>> data = read(path, Columns(labels="label"), need_labels=True)
>>> data.items.shape, data.labels.tolist()
((2, 2), ['x', 'y'])
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erasable.io.arrays import load_npy, npz_dataset, read_npy, read_npz
from erasable.io.columns import Columns
from erasable.io.dataset import Dataset, check_lengths
from erasable.io.errors import InputError
from erasable.io.idx import labels_beside, read_idx, read_idx_dataset
from erasable.io.images import IMAGE_SUFFIXES, read_image_folder
from erasable.io.tables import TABLE_SUFFIXES, read_table, table_texts, table_vectors
from erasable.io.values import labels_from, labels_from_text, vectors_from

__all__ = ["read", "read_dataset", "read_labels_file"]

#: The arrays of an NPZ file of vectors or raw inputs that :func:`read` looks for.
NPZ_COLUMNS = Columns("X", "y", "ids", "subjects")


def read(
    path: str | Path,
    columns: Columns,
    *,
    raw: bool = False,
    split: str | None = None,
    labels_path: Path | None = None,
    need_labels: bool = False,
) -> Dataset[Any]:
    """DATA as a model reads it: vectors (a float64 matrix), or with ``raw`` raw inputs for its encoder."""
    path = Path(path)
    suffix = path.suffix.lower()
    if split is not None and suffix != ".npz":
        raise InputError("--split applies to NPZ files only.")
    if not path.exists():
        raise InputError(f"No such data file: {path}")
    from_file = need_labels and labels_path is None
    if suffix == ".npz":
        keys = NPZ_COLUMNS.suffixed("" if split is None else f"_{split}")
        optional = [name for name in (keys.ids, keys.subjects, None if from_file else keys.labels) if name]
        data = npz_dataset(path, keys, optional=optional, noun="items" if raw else "vectors")
    elif suffix == ".npy":
        if from_file and not raw:
            raise InputError(f"{path} holds vectors only: give their labels with --labels-file.")
        data = Dataset(load_npy(path))
    elif raw:
        data = _raw(path, suffix, columns, need_labels and labels_path is None)
    elif suffix == ".csv":
        data = table_vectors(path, columns, optional=[] if from_file or columns.labels is None else [columns.labels])
    else:
        raise InputError(f"Unknown data format {path.suffix!r} of {path}: use .npy, .npz or .csv.")
    if labels_path is not None:
        labels = read_labels_file(labels_path)
        check_lengths(len(data), "items" if raw else "vectors", path, labels=labels)
        data = Dataset(data.items, labels, data.ids, data.subjects)
    if need_labels and data.labels is None:
        raise InputError(f"{path} gives no labels (see --label-column / --labels-path).")
    if raw:
        return data
    return Dataset(vectors_from(np.asarray(data.items), path), data.labels, data.ids, data.subjects)


def _raw(path: Path, suffix: str, columns: Columns, labelled: bool) -> Dataset[Any]:
    """Raw inputs of any form but NPZ and NPY (which :func:`read` reads for vectors and raw inputs alike),
    with their labels when ``labelled``."""
    if path.is_dir():
        return read_image_folder(path)
    if suffix in IMAGE_SUFFIXES:
        return Dataset(items=[path], ids=[str(path)])
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        numbered = [(str(n), line) for n, line in enumerate(lines, start=1) if line.strip()]
        return Dataset(items=[line for _, line in numbered], ids=[n for n, _ in numbered])
    if suffix in TABLE_SUFFIXES:
        return table_texts(path, columns if labelled else replace(columns, labels=None))
    if _is_idx(path):
        return read_idx_dataset(path, labels_beside(path) if labelled else None)
    raise _unknown(path)


def _is_idx(path: Path) -> bool:
    return "idx" in path.name.lower()


def read_labels_file(path: Path) -> NDArray[Any]:
    """Labels from an NPY array, an IDX file or a text file with one label per line."""
    if path.suffix.lower() == ".npy":
        return labels_from(load_npy(path), path)
    if _is_idx(path):
        return labels_from(read_idx(path), path)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read labels file {path}: {exc}") from exc
    if "" in lines:
        raise InputError("empty label.", path=path, line=lines.index("") + 1)
    return labels_from_text(lines, path)


def read_dataset(path: str | Path, **options: Any) -> Dataset[Any]:
    """Read ``path`` with the raw-input reader its form calls for; ``options`` go to that reader.

    A folder is an image folder; ``.csv``/``.tsv``/``.jsonl``/``.ndjson``/``.parquet`` a
    table; ``.npz`` and ``.npy`` numpy files; a name containing ``idx`` an IDX file (give
    ``labels_path`` for its labels).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        return read_image_folder(path, **options)
    if suffix in TABLE_SUFFIXES:
        return read_table(path, **options)
    if suffix == ".npz":
        return read_npz(path, **options)
    if suffix == ".npy":
        return read_npy(path, **options)
    if _is_idx(path):
        return read_idx_dataset(path, **options)
    raise _unknown(path)


def _unknown(path: Path) -> InputError:
    expected = f"a folder of images, {', '.join(TABLE_SUFFIXES)}, .npz, .npy or IDX"
    return InputError(f"unknown format; expected {expected}.", path=path)

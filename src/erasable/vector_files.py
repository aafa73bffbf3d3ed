"""Files of embedding vectors: NPY, NPZ and CSV, validated, with labels, ids and subjects.

Where :mod:`erasable.datasets` reads raw inputs (texts, images) for an encoder, this module
reads vectors that are already embeddings. Every problem is a :class:`DataError` naming the
file, and for CSV the row (counted from 1), the line and the column; NPZ and NPY files are
never unpickled.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "v.csv"
>>> _ = path.write_text("a,b,label\\n0.1,0.2,x\\n0.3,nan,y\\n")
>>> read_vectors(path, need_labels=True)
Traceback (most recent call last):
...
erasable.vector_files.DataError: ...v.csv: row 2 (line 3), column 'b': value nan is not finite.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erasable.moments import canonical_labels

__all__ = ["Columns", "DataError", "VectorData", "read_labels_file", "read_vectors"]


class DataError(ValueError):
    """A data file that cannot be used: unreadable, malformed, non-numeric or non-finite."""


@dataclass(frozen=True)
class Columns:
    """CSV columns holding the label, the sample id and the subject; all others are features."""

    label: str = "label"
    id: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class VectorData:
    """Vectors (n, d) and, when the file has them, their labels, ids and subjects."""

    vectors: NDArray[np.float64]
    labels: NDArray[np.generic] | None = None
    ids: list[str] | None = None
    subjects: list[str | None] | None = None


def read_vectors(
    path: Path,
    *,
    columns: Columns = Columns(),
    split: str | None = None,
    labels_file: Path | None = None,
    need_labels: bool = False,
) -> VectorData:
    """Read and validate vectors from an NPY, NPZ or CSV file.

    NPZ: arrays ``X``, ``y``, ``ids``, ``subjects`` (``X_<split>``, ``y_<split>``, ... with
    ``split``). NPY: vectors only. CSV: a header row, numeric feature columns and the
    ``columns`` named. ``labels_file`` (NPY, or text with one label per line), when given,
    supplies the labels; with ``need_labels``, data without labels is an error. Rows are
    counted from 1 in error messages.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"No such data file: {path}")
    if split is not None and suffix != ".npz":
        raise DataError("--split applies to NPZ files only.")
    labels_from_data = need_labels and labels_file is None
    if suffix == ".npz":
        data = _read_npz(path, split, labels_from_data)
    elif suffix == ".npy":
        if labels_from_data:
            raise DataError(f"{path} holds vectors only: give their labels with --labels-file.")
        data = VectorData(_numeric_matrix(_load_npy(path), path))
    elif suffix == ".csv":
        data = _read_csv(path, columns, labels_from_data)
    else:
        raise DataError(f"Unknown data format {path.suffix!r} of {path}: use .npy, .npz or .csv.")
    if labels_file is not None:
        data = replace(data, labels=read_labels_file(labels_file))
    _check_lengths(data, path)
    return data


def read_labels_file(path: Path) -> NDArray[np.generic]:
    """Labels from an NPY array or a text file with one label per line."""
    if path.suffix.lower() == ".npy":
        return canonical_labels(_load_npy(path))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read labels file {path}: {exc}") from exc
    return _labels_from_strings([line.strip() for line in lines], lambda r: f"{path}: line {r + 1}")


def _load_npy(path: Path) -> NDArray[Any]:
    """An array from an NPY file, refusing pickled objects."""
    try:
        with path.open("rb") as handle:
            return np.asarray(np.lib.format.read_array(handle, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"Cannot read {path} as NPY: {exc}") from exc


def _read_npz(path: Path, split: str | None, need_labels: bool) -> VectorData:
    """Arrays X, y, ids, subjects (suffixed ``_<split>``) of an NPZ file; only X is required."""
    suffix = "" if split is None else f"_{split}"
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not an NPZ file (not a zip archive).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            found = {key: archive[key + suffix] for key in ("X", "y", "ids", "subjects") if key + suffix in names}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"Cannot read {path} as NPZ: {exc}") from exc
    if "X" not in found:
        raise DataError(
            f"{path} has no array 'X{suffix}' (it has {', '.join(names) or 'none'}); "
            "use --split NAME for arrays named X_NAME, y_NAME."
        )
    if need_labels and "y" not in found:
        raise DataError(f"{path} has no array 'y{suffix}' of labels (it has {', '.join(names)}).")
    return VectorData(
        vectors=_numeric_matrix(found["X"], path),
        labels=canonical_labels(found["y"]) if "y" in found else None,
        ids=_string_list(found["ids"], f"{path}: ids") if "ids" in found else None,
        subjects=_subject_list(found["subjects"], path) if "subjects" in found else None,
    )


def _numeric_matrix(array: NDArray[Any], path: Path) -> NDArray[np.float64]:
    """Check that ``array`` is a non-empty, finite, numeric (n, d) matrix; return it as float64."""
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{path}: expected a non-empty 2-D array of vectors, got shape {array.shape}.")
    if array.dtype.kind not in "iuf":
        raise DataError(f"{path}: vectors must be numeric, got dtype {array.dtype}.")
    vectors = array.astype(np.float64)
    _check_finite(vectors, lambda r: f"{path}: row {r + 1}", [str(c + 1) for c in range(vectors.shape[1])])
    return vectors


def _check_finite(vectors: NDArray[np.float64], where: Callable[[int], str], names: Sequence[str]) -> None:
    """Raise on the first NaN or infinity, naming its row (``where``) and column (``names``)."""
    bad = np.argwhere(~np.isfinite(vectors))
    if bad.size:
        row, col = (int(i) for i in bad[0])
        raise DataError(f"{where(row)}, column {names[col]}: value {vectors[row, col]} is not finite.")


def _string_list(array: NDArray[Any], what: str) -> list[str]:
    """A 1-D array of integers or strings as a list of strings."""
    if array.ndim != 1 or array.dtype.kind not in "iuUS":
        raise DataError(f"{what} must be a 1-D array of integers or strings, got {array.dtype} {array.shape}.")
    return [str(v) for v in array.tolist()]


def _subject_list(array: NDArray[Any], path: Path) -> list[str | None]:
    """Subjects as strings; an empty string means "no subject"."""
    return [s or None for s in _string_list(array, f"{path}: subjects")]


def _labels_from_strings(values: list[str], where: Callable[[int], str]) -> NDArray[np.generic]:
    """Labels read as text: integers if every one is an integer, strings otherwise."""
    for row, value in enumerate(values):
        if not value:
            raise DataError(f"{where(row)}: empty label.")
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        return np.array(values, dtype=str)


def _read_csv(path: Path, columns: Columns, need_labels: bool) -> VectorData:
    """A CSV file with a header row; empty lines are skipped."""
    rows: list[NDArray[np.float64]] = []
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            feature_columns = _feature_columns(header, columns, path, need_labels)
            named = {
                name: header.index(name)
                for name in (columns.label, columns.id, columns.subject)
                if name is not None and name in header
            }
            cells: dict[str, list[str]] = {name: [] for name in named}
            for record in reader:
                if not record:
                    continue
                at = f"{path}: row {len(rows) + 1} (line {reader.line_num})"
                if len(record) != len(header):
                    raise DataError(f"{at}: {len(record)} cells but the header has {len(header)}.")
                rows.append(_parse_row(record, feature_columns, header, at))
                lines.append(reader.line_num)
                for name, column in named.items():
                    cells[name].append(record[column].strip())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Cannot read {path} as CSV: {exc}") from exc
    if not rows:
        raise DataError(f"{path} has no data rows.")

    def where(row: int) -> str:
        return f"{path}: row {row + 1} (line {lines[row]})"

    vectors = np.stack(rows)
    _check_finite(vectors, where, [repr(header[c]) for c in feature_columns])
    return _csv_data(vectors, cells, columns, where)


def _feature_columns(header: list[str], columns: Columns, path: Path, need_labels: bool) -> list[int]:
    """Indices of the feature columns; the label (if needed), id and subject columns named must exist."""
    if not header:
        raise DataError(f"{path} is empty: a header row is expected.")
    required = (
        ("--label-column", columns.label if need_labels else None),
        ("--id-column", columns.id),
        ("--subject-column", columns.subject),
    )
    for option, name in required:
        if name is not None and name not in header:
            raise DataError(f"{path} has no column {name!r} ({option}); columns: {', '.join(header)}.")
    special = {columns.label, columns.id, columns.subject}
    features = [i for i, name in enumerate(header) if name not in special]
    if not features:
        raise DataError(f"{path} has no feature columns.")
    return features


def _parse_row(record: list[str], feature_columns: list[int], header: list[str], where: str) -> NDArray[np.float64]:
    """The feature cells of one CSV record as floats; a bad cell is reported by column."""
    cells = [record[i] for i in feature_columns]
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        return np.array(
            [
                _parse_cell(cell, f"{where}, column {header[i]!r}")
                for i, cell in zip(feature_columns, cells, strict=True)
            ]
        )


def _parse_cell(cell: str, where: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise DataError(f"{where}: {cell!r} is not a number.") from None


def _csv_data(
    vectors: NDArray[np.float64], cells: dict[str, list[str]], columns: Columns, where: Callable[[int], str]
) -> VectorData:
    """Assemble CSV columns into :class:`VectorData`; ids must not be empty."""
    labels = cells.get(columns.label)
    ids = cells.get(columns.id or "")
    subjects = cells.get(columns.subject or "")
    if ids is not None and "" in ids:
        raise DataError(f"{where(ids.index(''))}: empty id.")
    return VectorData(
        vectors=vectors,
        labels=None if labels is None else _labels_from_strings(labels, where),
        ids=ids,
        subjects=None if subjects is None else [s or None for s in subjects],
    )


def _check_lengths(data: VectorData, path: Path) -> None:
    """Labels, ids and subjects, when present, must match the vectors one to one."""
    n = data.vectors.shape[0]
    for what, values in (("labels", data.labels), ("ids", data.ids), ("subjects", data.subjects)):
        if values is not None and len(values) != n:
            raise DataError(f"{path}: {n} vectors but {len(values)} {what}.")

"""Readers for labelled data: text tables, image folders, IDX files and numpy arrays.

Every reader returns a :class:`Dataset` -- items, labels, ids, subjects -- ready for an
encoder and a model. Nothing is skipped silently: a malformed row, a missing value or an
unreadable file raises :class:`DatasetError` naming the file and the line, row or array.

* :func:`read_table` -- CSV / TSV (``line`` = physical line, header is line 1), JSONL
  (``line``) and Parquet (``row``, counting from 1), with text / label / id / subject
  columns. Blank lines are not rows.
* :func:`read_image_folder` -- one subfolder per class; items are :class:`~pathlib.Path`,
  ids the paths relative to the folder.
* :func:`read_idx`, :func:`read_idx_dataset`, :func:`read_mnist_folder` -- the IDX format
  of MNIST and Fashion-MNIST, gzipped or not.
* :func:`read_npy`, :func:`read_npz` -- numpy arrays, never unpickled.
* :func:`read_dataset` -- picks one of the above from the path.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     path = Path(d) / "q.csv"
...     _ = path.write_text("text,category,user\\nlost card,card,u1\\nhello,greeting,\\n")
...     data = read_table(path, label_column="category", subject_column="user")
>>> data.items, data.labels.tolist(), data.subjects
(['lost card', 'hello'], ['card', 'greeting'], ['u1', None])
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "IMAGE_SUFFIXES",
    "TABLE_SUFFIXES",
    "Dataset",
    "DatasetError",
    "read_dataset",
    "read_idx",
    "read_idx_dataset",
    "read_image_folder",
    "read_mnist_folder",
    "read_npy",
    "read_npz",
    "read_table",
]

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetError(ValueError):
    """A file, row or value that cannot be read; the message says where."""


@dataclass(frozen=True)
class Dataset:
    """Items with optional labels (int64 or str array), ids and subjects, all of one length."""

    items: Sequence[Any] | NDArray[Any]
    labels: NDArray[Any] | None = None
    ids: list[str] | None = None
    subjects: list[str | None] | None = None

    def __post_init__(self) -> None:
        for name in ("labels", "ids", "subjects"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.items):
                raise DatasetError(f"{len(self.items)} items but {len(values)} {name}.")

    def __len__(self) -> int:
        return len(self.items)


# -- text tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    text: str
    label: str | None
    id: str | None
    subject: str | None

    def named(self) -> list[str]:
        """The columns to read, each once."""
        return list(dict.fromkeys(c for c in (self.text, self.label, self.id, self.subject) if c is not None))


def read_table(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    id_column: str | None = None,
    subject_column: str | None = None,
) -> Dataset:
    """Texts, labels, ids and subjects from a CSV, TSV, JSONL or Parquet file.

    ``label_column=None`` reads unlabelled texts (to predict). Texts, labels and ids must
    be present in every row, ids unique; an empty or missing subject means none.
    """
    path = Path(path)
    columns = _Columns(text_column, label_column, id_column, subject_column)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = _csv_rows(path, columns, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    elif suffix == ".parquet":
        rows = _parquet_rows(path, columns)
    else:
        raise DatasetError(f"{path}: not a table file; expected one of {TABLE_SUFFIXES}.")
    return _collect(rows, columns)


def _csv_rows(path: Path, columns: _Columns, delimiter: str) -> Iterator[tuple[str, Mapping[str, object]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: empty file, expected a header row.")
            _check_header(path, header, columns)
            for record in reader:
                if not record:
                    continue
                where = f"{path}, line {reader.line_num}"
                if len(record) != len(header):
                    raise DatasetError(f"{where}: {len(record)} fields, but the header has {len(header)}.")
                yield where, dict(zip(header, record, strict=True))
        except csv.Error as exc:
            raise DatasetError(f"{path}, line {reader.line_num}: malformed CSV: {exc}.") from exc
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}, after line {reader.line_num}: not valid UTF-8 ({exc}).") from exc


def _check_header(path: Path, header: Sequence[str], columns: _Columns) -> None:
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise DatasetError(f"{path}: the header repeats the columns {duplicated}.")
    missing = [c for c in columns.named() if c not in header]
    if missing:
        raise DatasetError(f"{path}: no column {missing[0]!r}; the columns are {list(header)}.")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Mapping[str, object]]]:
    with open(path, encoding="utf-8-sig") as handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                where = f"{path}, line {number}"
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno}).") from exc
                if not isinstance(record, dict):
                    raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}.")
                yield where, record
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}, after line {number}: not valid UTF-8 ({exc}).") from exc


def _parquet_rows(path: Path, columns: _Columns) -> Iterator[tuple[str, Mapping[str, object]]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError("Reading Parquet needs pyarrow: pip install 'erasable[text]'.") from exc
    try:
        names = pq.read_schema(path).names
        _check_header(path, names, columns)
        table = pq.read_table(path, columns=columns.named())
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: cannot read Parquet: {exc}") from exc
    values = {name: table.column(name).to_pylist() for name in columns.named()}
    for row in range(table.num_rows):
        yield f"{path}, row {row + 1}", {name: column[row] for name, column in values.items()}


def _collect(rows: Iterator[tuple[str, Mapping[str, object]]], columns: _Columns) -> Dataset:
    texts: list[str] = []
    labels: list[int | str] = []
    ids: list[str] = []
    subjects: list[str | None] = []
    wheres: list[str] = []
    first_at: dict[str, str] = {}
    for where, row in rows:
        wheres.append(where)
        texts.append(_text(row, columns.text, where))
        if columns.label is not None:
            labels.append(_scalar(row, columns.label, where))
        if columns.id is not None:
            sample_id = str(_scalar(row, columns.id, where))
            if sample_id in first_at:
                raise DatasetError(f"{where}: duplicate id {sample_id!r} (first at {first_at[sample_id]}).")
            first_at[sample_id] = where
            ids.append(sample_id)
        if columns.subject is not None:
            blank = row.get(columns.subject) in (None, "")
            subjects.append(None if blank else str(_scalar(row, columns.subject, where)))
    return Dataset(
        items=texts,
        labels=None if columns.label is None else _label_array(labels, wheres),
        ids=None if columns.id is None else ids,
        subjects=None if columns.subject is None else subjects,
    )


def _present(row: Mapping[str, object], column: str, where: str) -> object:
    value = row.get(column)
    if value is None or value == "":
        raise DatasetError(f"{where}: missing value in column {column!r}.")
    return value


def _text(row: Mapping[str, object], column: str, where: str) -> str:
    value = _present(row, column, where)
    if not isinstance(value, str):
        raise DatasetError(f"{where}: column {column!r} must hold text, got {type(value).__name__}.")
    return value


def _scalar(row: Mapping[str, object], column: str, where: str) -> int | str:
    value = _present(row, column, where)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DatasetError(f"{where}: column {column!r} must hold a string or an integer, got {value!r}.")
    return value


def _label_array(labels: list[int | str], wheres: list[str]) -> NDArray[Any]:
    """Labels as int64 or str; a mix of both is refused at the first row of the other kind."""
    integer = [isinstance(value, int) for value in labels]
    if any(kind != integer[0] for kind in integer):
        row = integer.index(not integer[0])
        first = "an integer" if integer[0] else "a string"
        raise DatasetError(f"{wheres[row]}: labels mix integers and strings ({wheres[0]} has {first}).")
    return np.array(labels, dtype=np.int64 if integer and integer[0] else str)


# -- image folders --------------------------------------------------------------------------


def read_image_folder(root: str | Path, *, verify: bool = True) -> Dataset:
    """Images under ``root/<class>/...``: items are paths, labels the class folder names.

    Hidden files and folders (names starting with ".") are ignored; any other file that
    is not an image, a file outside the class folders, or an empty class folder is an
    error. With ``verify`` each image is decoded once, so a corrupt one is named now
    rather than halfway through encoding.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder.")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise DatasetError(f"{stray[0]}: a file outside the class folders (expected {root}/<class>/<image>).")
    if not entries:
        raise DatasetError(f"{root}: no class folders.")
    items: list[Path] = []
    labels: list[str] = []
    for class_dir in entries:
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not files:
            raise DatasetError(f"{class_dir}: the class folder holds no images.")
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f"{path}: not an image file (expected one of {IMAGE_SUFFIXES}).")
            if verify:
                _check_image(path)
        items.extend(files)
        labels.extend([class_dir.name] * len(files))
    ids = [p.relative_to(root).as_posix() for p in items]
    return Dataset(items=items, labels=np.array(labels, dtype=str), ids=ids)


def _check_image(path: Path) -> None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: unreadable image: {exc}") from exc


# -- IDX (MNIST format) ---------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data: {exc}") from exc


def read_idx(path: str | Path) -> NDArray[Any]:
    """The array stored in an IDX file (gzipped or not), in native byte order.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = Path(d) / "labels-idx1-ubyte"
    ...     _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    ...     read_idx(path).tolist()
    [7, 8, 9]
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}).")
    if raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX data type 0x{raw[2]:02x}.")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({ndim} dimensions, {len(raw)} bytes).")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: {len(raw) - header} data bytes, but shape {shape} needs {expected} (truncated or corrupt)."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_dataset(items_path: str | Path, labels_path: str | Path | None = None) -> Dataset:
    """Items from one IDX file, integer labels (one per item) from another."""
    items = read_idx(items_path)
    if labels_path is None:
        return Dataset(items=items)
    labels = read_idx(labels_path)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(f"{labels_path}: labels must be one integer per item, got {labels.dtype} {labels.shape}.")
    if len(labels) != len(items):
        raise DatasetError(f"{items_path} holds {len(items)} items but {labels_path} holds {len(labels)} labels.")
    return Dataset(items=items, labels=labels.astype(np.int64))


def read_mnist_folder(folder: str | Path, split: str = "train") -> Dataset:
    """The ``train`` or ``test`` split of an MNIST-style folder (``t10k-*`` files are the test split)."""
    prefixes = {"train": "train", "test": "t10k"}
    if split not in prefixes:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    folder = Path(folder)

    def find(kind: str) -> Path:
        name = f"{prefixes[split]}-{kind}-ubyte"
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
        raise DatasetError(f"{folder}: no {name}[.gz].")

    return read_idx_dataset(find("images-idx3"), find("labels-idx1"))


# -- numpy arrays -----------------------------------------------------------------------------


def read_npy(path: str | Path, labels_path: str | Path | None = None) -> Dataset:
    """Items from a ``.npy`` file, labels (one per item) from an optional second one."""
    items = _load_array(Path(path))
    if labels_path is None:
        return Dataset(items=items)
    labels = _labels_from_array(_load_array(Path(labels_path)), str(labels_path))
    return _dataset(f"{path} and {labels_path}", items=items, labels=labels)


def read_npz(
    path: str | Path,
    *,
    items_key: str = "X",
    labels_key: str | None = "y",
    ids_key: str | None = None,
    subjects_key: str | None = None,
) -> Dataset:
    """Items, labels, ids and subjects stored under the given keys of a ``.npz`` file.

    ``labels_key=None`` reads unlabelled items; a named key that is missing is an error.
    """
    path = Path(path)
    keys = [k for k in (items_key, labels_key, ids_key, subjects_key) if k is not None]
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DatasetError(f"{path}: no array {missing[0]!r}; it holds {archive.files}.")
            arrays = {key: _array_from(archive, key, path) for key in keys}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if arrays[items_key].ndim == 0:
        raise DatasetError(f"{path}[{items_key!r}]: expected an array of items, got a scalar.")
    return _dataset(
        str(path),
        items=arrays[items_key],
        labels=None if labels_key is None else _labels_from_array(arrays[labels_key], f"{path}[{labels_key!r}]"),
        ids=None if ids_key is None else _ids_from_array(arrays[ids_key], f"{path}[{ids_key!r}]"),
        subjects=None
        if subjects_key is None
        else _subjects_from_array(arrays[subjects_key], f"{path}[{subjects_key!r}]"),
    )


def _dataset(where: str, **fields: Any) -> Dataset:
    """A :class:`Dataset`, its length check naming ``where``."""
    try:
        return Dataset(**fields)
    except DatasetError as exc:
        raise DatasetError(f"{where}: {exc}") from exc


def _array_from(archive: Any, key: str, path: Path) -> NDArray[Any]:
    try:
        return np.asarray(archive[key])
    except ValueError as exc:
        raise DatasetError(f"{path}[{key!r}]: {exc} (object arrays need pickle, which erasable never loads).") from exc


def _load_array(path: Path) -> NDArray[Any]:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc} (object arrays need pickle, which erasable never loads).") from exc
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(array, np.ndarray) or array.ndim == 0:
        raise DatasetError(f"{path}: expected an array of items, got a scalar or an archive.")
    return array


def _labels_from_array(array: NDArray[Any], where: str) -> NDArray[Any]:
    if array.ndim != 1:
        raise DatasetError(f"{where}: labels must be one-dimensional, got shape {array.shape}.")
    if array.dtype.kind in "iub":
        return array.astype(np.int64)
    if array.dtype.kind == "U":
        return array
    raise DatasetError(f"{where}: labels must be integers or strings, got {array.dtype}.")


def _strings_from_array(array: NDArray[Any], where: str) -> list[str]:
    if array.ndim != 1 or array.dtype.kind not in "iuU":
        raise DatasetError(f"{where}: expected a 1-d array of integers or strings, got {array.dtype} {array.shape}.")
    return [str(value) for value in array.tolist()]


def _ids_from_array(array: NDArray[Any], where: str) -> list[str]:
    ids = _strings_from_array(array, where)
    first: dict[str, int] = {}
    for position, sample_id in enumerate(ids):
        if sample_id in first:
            raise DatasetError(f"{where}: duplicate id {sample_id!r} at positions {first[sample_id]} and {position}.")
        first[sample_id] = position
    return ids


def _subjects_from_array(array: NDArray[Any], where: str) -> list[str | None]:
    return [subject or None for subject in _strings_from_array(array, where)]


# -- any of the above -------------------------------------------------------------------------


def read_dataset(path: str | Path, **options: Any) -> Dataset:
    """Read ``path`` with the reader its form calls for; ``options`` go to that reader.

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
    if "idx" in path.name.lower():
        return read_idx_dataset(path, **options)
    raise DatasetError(
        f"{path}: unknown format; expected a folder of images, {', '.join(TABLE_SUFFIXES)}, .npz, .npy or IDX."
    )

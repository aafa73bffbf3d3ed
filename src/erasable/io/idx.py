"""IDX files, the format of MNIST and Fashion-MNIST, gzipped or not.

The header (magic number, data type, shape) is checked against the file's size before any
array is made, so a truncated or corrupt file is refused with what it holds and what its shape
needs.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
>>> _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
>>> read_idx(path).tolist()
[7, 8, 9]
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erasable.io.dataset import Dataset
from erasable.io.errors import InputError

__all__ = ["labels_beside", "read_idx", "read_idx_dataset", "read_mnist_folder"]

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"corrupt gzip data: {exc}", path=path) from exc


def read_idx(path: str | Path) -> NDArray[Any]:
    """The array stored in an IDX file (gzipped or not), in native byte order."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(f"not an IDX file (magic number {raw[:4].hex() or 'missing'}).", path=path)
    if raw[2] not in _IDX_DTYPES:
        raise InputError(f"unknown IDX data type 0x{raw[2]:02x}.", path=path)
    ndim, header = raw[3], 4 + 4 * raw[3]
    if ndim == 0 or len(raw) < header:
        raise InputError(f"truncated IDX header ({ndim} dimensions, {len(raw)} bytes).", path=path)
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        message = f"{len(raw) - header} data bytes, but shape {shape} needs {expected} (truncated or corrupt)."
        raise InputError(message, path=path)
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_dataset(items_path: str | Path, labels_path: str | Path | None = None) -> Dataset[NDArray[Any]]:
    """Items from one IDX file, integer labels (one per item) from another."""
    items = read_idx(items_path)
    if labels_path is None:
        return Dataset(items=items)
    labels = read_idx(labels_path)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        message = f"labels must be one integer per item, got {labels.dtype} {labels.shape}."
        raise InputError(message, path=labels_path)
    if len(labels) != len(items):
        raise InputError(f"{items_path} holds {len(items)} items but {labels_path} holds {len(labels)} labels.")
    return Dataset(items=items, labels=labels.astype(np.int64))


def labels_beside(items_path: Path) -> Path | None:
    """The labels of an IDX file of items named like Fashion-MNIST's (``*-images-idx3-ubyte[.gz]``), if there."""
    beside = items_path.with_name(items_path.name.replace("images-idx3", "labels-idx1"))
    return beside if beside != items_path and beside.is_file() else None


def read_mnist_folder(folder: str | Path, split: str = "train") -> Dataset[NDArray[Any]]:
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
        raise InputError(f"no {name}[.gz].", path=folder)

    return read_idx_dataset(find("images-idx3"), find("labels-idx1"))

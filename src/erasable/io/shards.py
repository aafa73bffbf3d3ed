"""Shards for the Dask fit: files of a directory or a glob, local or any fsspec URL.

A worker reads its shard with the readers every other caller uses, so a shard is validated
as a local file is, and its errors name the shard:

* ``.npz`` -- arrays under the keys of :class:`~erasable.io.columns.Columns` (never unpickled);
* ``.npy`` -- the vectors; labels, ids and subjects in siblings ``<stem>.<key>.npy``;
* ``.parquet`` -- a list column of vectors, label, id and subject columns (needs pyarrow);
* ``.csv`` -- label, id and subject columns; every other column is a vector component.

With ``raw`` the items column of a Parquet or CSV shard holds texts for the model's encoder.
Labels are required; shards without an id column get ids ``"<shard url>:<row>"``, stable and
unique.

>>> import tempfile, pathlib
>>> import numpy as np
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> np.savez(folder / "part.npz", X=np.eye(2), y=np.array(["a", "b"]))
>>> _ = (folder / "notes.txt").write_text("not a shard")
>>> [url.rsplit("/", 1)[1] for url in list_shards(str(folder))]
['part.npz']
>>> shard = read_shard(str(folder / "part.npz"))
>>> shard.labels.tolist(), shard.ids[1].endswith("part.npz:1")
(['a', 'b'], True)
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from erasable.io.arrays import arrays_dataset, load_npy, load_npz
from erasable.io.columns import Columns
from erasable.io.dataset import Dataset
from erasable.io.errors import InputError
from erasable.io.source import StorageOptions
from erasable.io.tables import table_texts, table_vectors
from erasable.io.values import vectors_from

__all__ = ["SHARD_SUFFIXES", "list_shards", "read_shard"]

SHARD_SUFFIXES = (".npz", ".npy", ".parquet", ".csv")


def list_shards(source: str, columns: Columns | None = None, storage_options: StorageOptions = None) -> list[str]:
    """Sorted URLs of the shards of a directory (recursively) or a glob; NPY siblings are not shards."""
    from fsspec.core import url_to_fs

    columns = columns or Columns()
    fs, path = url_to_fs(source, **(storage_options or {}))
    found = fs.find(path) if fs.isdir(path) else fs.glob(path)
    sibling_suffixes = tuple(f".{key}.npy" for key in columns.siblings())
    shards = sorted(
        fs.unstrip_protocol(p) for p in found if p.lower().endswith(SHARD_SUFFIXES) and not p.endswith(sibling_suffixes)
    )
    if not shards:
        raise InputError(f"No shards ({', '.join(SHARD_SUFFIXES)}) found at {source}.")
    return shards


def read_shard(
    url: str, columns: Columns | None = None, storage_options: StorageOptions = None, raw: bool = False
) -> Dataset[Any]:
    """Items (vectors, or with ``raw`` a list of texts), labels, ids and subjects of one shard.

    Every field is filled: ids generated when ``columns.ids`` is ``None``, subjects ``None``
    when ``columns.subjects`` is.
    """
    columns = columns or Columns()
    if columns.labels is None:
        raise InputError("a shard needs labels: name their column.", path=url)
    suffix = url.lower().rsplit(".", 1)[-1]
    if suffix in ("parquet", "csv"):
        read = table_texts if raw else table_vectors
        data: Dataset[Any] = read(url, columns, storage_options=storage_options)
    elif raw:
        raise InputError("raw inputs need a Parquet or CSV shard with a text column.", path=url)
    elif suffix in ("npz", "npy"):
        data = _array_shard(url, suffix, columns, storage_options)
    else:
        raise InputError(f"not a shard; expected one of {SHARD_SUFFIXES}.", path=url)
    count = len(data)
    return Dataset(
        data.items,
        data.labels,
        [f"{url}:{row}" for row in range(count)] if data.ids is None else data.ids,
        [None] * count if data.subjects is None else data.subjects,
    )


def _array_shard(url: str, suffix: str, columns: Columns, storage_options: StorageOptions) -> Dataset[Any]:
    """An NPZ shard, or an NPY shard and its siblings; the vectors checked against the labels first."""
    if suffix == "npz":
        arrays = load_npz(url, columns.named(), storage_options=storage_options)
    else:
        stem = url[: -len(".npy")]
        arrays = {columns.items: load_npy(url, storage_options)}
        arrays.update({key: load_npy(f"{stem}.{key}.npy", storage_options) for key in columns.siblings()})
    vectors: NDArray[Any] = arrays[columns.items]
    labels = arrays[str(columns.labels)]
    if vectors.ndim != 2 or labels.ndim != 1 or vectors.shape[0] != labels.shape[0]:
        raise InputError(f"vectors of shape {vectors.shape} for {labels.size} labels.", path=url)
    data = arrays_dataset(url, arrays, columns, noun="vectors")
    return Dataset(vectors_from(vectors, url, columns.items), data.labels, data.ids, data.subjects)

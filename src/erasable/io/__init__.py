"""Reading data files: arrays, tables, images, IDX and shards, into one :class:`Dataset`.

Every reader returns a :class:`Dataset` -- items, labels, ids, subjects -- and raises one
error, :class:`InputError`, naming the file and, where there is one, the row, line or array.
The fields are named by one :class:`Columns` spec in every format. Nothing is skipped
silently and nothing is unpickled.

* :func:`read` -- what the command line reads as DATA, vectors or raw inputs, in one call;
* :func:`read_table` -- texts from CSV / TSV / JSONL / Parquet (:mod:`erasable.io.tables`);
* :func:`read_npy`, :func:`read_npz` -- numpy arrays (:mod:`erasable.io.arrays`);
* :func:`read_image_folder` -- one subfolder per class (:mod:`erasable.io.images`);
* :func:`read_idx`, :func:`read_idx_dataset`, :func:`read_mnist_folder` -- MNIST's format;
* :func:`list_shards`, :func:`read_shard` -- shards of a Dask fit, over fsspec;
* :func:`read_dataset` -- picks a raw-input reader from the path.

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "q.csv"
>>> _ = path.write_text("text,category\\nlost card,card\\nhello,\\n")
>>> read_table(path, label_column="category")
Traceback (most recent call last):
...
erasable.io.errors.InputError: ...q.csv, line 3: missing value in column 'category'.
"""

from erasable.io.arrays import read_npy, read_npz
from erasable.io.columns import Columns
from erasable.io.dataset import Dataset
from erasable.io.errors import InputError
from erasable.io.idx import read_idx, read_idx_dataset, read_mnist_folder
from erasable.io.images import IMAGE_SUFFIXES, read_image_folder
from erasable.io.reading import read, read_dataset, read_labels_file
from erasable.io.shards import SHARD_SUFFIXES, list_shards, read_shard
from erasable.io.tables import TABLE_SUFFIXES, read_table

__all__ = [
    "IMAGE_SUFFIXES",
    "SHARD_SUFFIXES",
    "TABLE_SUFFIXES",
    "Columns",
    "Dataset",
    "InputError",
    "list_shards",
    "read",
    "read_dataset",
    "read_idx",
    "read_idx_dataset",
    "read_image_folder",
    "read_labels_file",
    "read_mnist_folder",
    "read_npy",
    "read_npz",
    "read_shard",
    "read_table",
]

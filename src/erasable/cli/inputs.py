"""What the commands read: DATA as the vectors a model scores (read and, for raw inputs, embedded), queries
given as DATA or --text, and the ids or subjects of a forget request.

Vectors are read by :mod:`erasable.vector_files`, raw inputs by :mod:`erasable.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from erasable.cli.arguments import CliError
from erasable.datasets import (
    IMAGE_SUFFIXES,
    TABLE_SUFFIXES,
    Dataset,
    read_dataset,
    read_idx_dataset,
    read_image_folder,
    read_npz,
    read_table,
)
from erasable.exact import clipping_message
from erasable.model import Model
from erasable.terminal import progress, warn
from erasable.vector_files import Columns, DataError, VectorData, read_vectors

__all__ = ["Reading", "check_dimension", "forget_request", "limited", "read_for", "read_queries"]


@dataclass(frozen=True)
class Reading:
    """How the commands that take data read it: the options they share."""

    columns: Columns
    split: str | None = None
    text_column: str = "text"
    labels_path: Path | None = None
    cache_dir: Path | None = None
    limit: int | None = None


Data = TypeVar("Data", Dataset, VectorData)


def limited(data: Data, limit: int | None) -> Data:
    """The first ``limit`` samples of ``data``; all of them without a limit."""
    if limit is None:
        return data
    parts = {f.name: getattr(data, f.name) for f in fields(data)}
    first: dict[str, Any] = {name: None if part is None else part[:limit] for name, part in parts.items()}
    return type(data)(**first)


def check_dimension(model: Model, data: VectorData, path: Path) -> None:
    """The data's vectors must have the model's input dimension."""
    if data.vectors.shape[1] != model.config.input_dim:
        raise DataError(
            f"{path} has vectors of dimension {data.vectors.shape[1]}, the model expects {model.config.input_dim}."
        )


def read_for(
    model: Model, path: Path, reading: Reading, need_labels: bool, to_learn: bool = False
) -> tuple[VectorData, list[str] | None]:
    """DATA as the vectors ``model`` scores, and the texts themselves when they are texts.

    Vectors for a model of vectors, raw inputs embedded by its encoder otherwise. Raw inputs of
    the wrong kind (vectors or texts for an image model, arrays for a text model) are refused
    in one line saying what the model takes, before anything is encoded; so are ids the model
    already holds, when learning.
    """
    texts = None
    if model.config.encoder is None:
        data = read_vectors(path, columns=reading.columns, split=reading.split, need_labels=need_labels)
        data = limited(data, reading.limit)
    else:
        raw = limited(_read_raw(path, reading, need_labels), reading.limit)
        holds = _kind_of(raw)
        if holds != model.config.encoder["kind"]:
            raise DataError(f"{path} holds {_KIND_NAMES[holds]}, but this model takes {_expects(model)}.")
        if to_learn and raw.ids is not None:
            model.registry.check_new_ids(raw.ids)
        data = _embedded(model, raw, reading.cache_dir, to_learn=to_learn)
        texts = [str(item) for item in raw.items] if holds == "text" else None
    check_dimension(model, data, path)
    return data, texts


_KIND_NAMES = {"text": "texts", "image": "arrays or image files"}


def _kind_of(data: Dataset) -> str:
    """ "text" when every item is a string, "image" otherwise (arrays, image files)."""
    items = data.items
    strings = items.dtype.kind == "U" if isinstance(items, np.ndarray) else all(isinstance(i, str) for i in items)
    return "text" if strings and len(items) else "image"


def _expects(model: Model) -> str:
    """What ``model`` takes as data, for error messages."""
    if model.config.encoder is None:
        return f"vectors of dimension {model.config.input_dim} (.npz/.npy/.csv)"
    if model.config.encoder["kind"] == "text":
        return "texts: a .csv/.tsv/.jsonl/.parquet table (--text-column), a .txt file (one per line), or --text"
    return "images: a folder of images (one subfolder per class), an image file, an IDX file or an .npz/.npy array"


def _read_raw(path: Path, reading: Reading, need_labels: bool) -> Dataset:
    """Raw inputs: a table of texts, a folder of images, an image file, an IDX file, or NPZ/NPY items.

    An IDX file of items named like Fashion-MNIST's (``*-images-idx3-ubyte[.gz]``) finds its labels beside it;
    a ``.txt`` file holds one text per line (blank lines skipped; ids are line numbers, no labels).
    """
    columns, suffix = reading.columns, path.suffix.lower()
    if reading.split is not None and suffix != ".npz":
        raise DataError("--split applies to NPZ files only.")
    if path.is_dir():
        data = read_image_folder(path)
    elif suffix in IMAGE_SUFFIXES:
        if not path.is_file():
            raise DataError(f"No such image file: {path}")
        data = Dataset(items=[path], ids=[str(path)])
    elif suffix == ".txt":
        if not path.is_file():
            raise DataError(f"No such text file: {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
        numbered = [(str(n), line) for n, line in enumerate(lines, start=1) if line.strip()]
        data = Dataset(items=[line for _, line in numbered], ids=[n for n, _ in numbered])
    elif suffix in TABLE_SUFFIXES:
        label = columns.label if need_labels else None
        data = read_table(
            path,
            text_column=reading.text_column,
            label_column=label,
            id_column=columns.id,
            subject_column=columns.subject,
        )
    elif "idx" in path.name.lower():
        beside = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        labels = reading.labels_path or (beside if need_labels and beside != path and beside.is_file() else None)
        data = read_idx_dataset(path, labels)
    elif suffix == ".npz":
        split = "" if reading.split is None else f"_{reading.split}"
        data = read_npz(path, items_key=f"X{split}", labels_key=f"y{split}" if need_labels else None)
    else:
        data = read_dataset(path)
    if need_labels and data.labels is None:
        raise DataError(f"{path} gives no labels (see --label-column / --labels-path).")
    return data


def read_queries(
    model: Model, data_path: Path | None, texts: list[str] | None, reading: Reading
) -> tuple[VectorData, list[str] | None]:
    """The vectors to predict, and their texts: DATA read for the model (see :func:`read_for`), or --text.

    Prints a warning on stderr when some exceed the model's fixed-point range (they are clipped).
    """
    if (data_path is None) == (texts is None):
        raise CliError("Give either DATA or --text.")
    if texts is not None:
        if model.config.encoder is None or model.config.encoder["kind"] != "text":
            raise CliError(f"--text is for text models; this model takes {_expects(model)}.")
        data = _embedded(model, Dataset(items=list(texts), ids=[str(i) for i in range(len(texts))]), reading.cache_dir)
    else:
        assert data_path is not None
        data, texts = read_for(model, data_path, reading, need_labels=False)
    if clipped := model.clipped(data.vectors):
        warn(clipping_message(clipped, data.vectors.shape[0], model.config.scale_bits))
    return data, texts


def _embedded(model: Model, data: Dataset, cache_dir: Path | None, to_learn: bool = False) -> VectorData:
    """Raw inputs embedded by the model's encoder, with a progress bar on a terminal (see ``Model.embed``)."""
    items = data.items
    with progress("Encoding", len(items)) as advance:
        vectors = model.embed(items, progress=advance, cache_dir=cache_dir, to_learn=to_learn)
    return VectorData(vectors.astype(np.float64), data.labels, data.ids, data.subjects)


def forget_request(
    ids: list[str] | None, ids_file: Path | None, subjects: list[str] | None
) -> tuple[list[str] | None, list[str] | None]:
    """The ids (--id and --ids-file together) or the subjects to forget: one kind of request."""
    if (ids is None and ids_file is None) == (subjects is None):
        raise CliError("Name what to forget: ids (--id, --ids-file) or subjects (--subject), one kind only.")
    if ids_file is not None:
        lines = ids_file.read_text(encoding="utf-8").splitlines()
        listed = [line.strip() for line in lines if line.strip()]
        if not listed:
            raise CliError(f"{ids_file} lists no ids.")
        ids = list(dict.fromkeys([*(ids or []), *listed]))
    return ids, subjects

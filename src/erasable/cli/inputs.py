"""What the commands read: DATA as the vectors a model scores (read and, for raw inputs, embedded), queries
given as DATA or --text, and the ids or subjects of a forget request.

DATA is read, vectors or raw inputs, by one call to :func:`erasable.io.read`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erasable.cli.arguments import CliError
from erasable.exact import clipping_message
from erasable.io import Columns, Dataset, InputError, read
from erasable.model import Model
from erasable.terminal import progress, warn

#: Vectors read or embedded for a model, with their labels, ids and subjects.
Vectors = Dataset[NDArray[np.float64]]

__all__ = ["Reading", "Vectors", "check_dimension", "forget_request", "read_for", "read_queries"]


@dataclass(frozen=True)
class Reading:
    """How the commands that take data read it: the options they share (``columns.items``: the text column)."""

    columns: Columns
    split: str | None = None
    labels_path: Path | None = None
    cache_dir: Path | None = None
    limit: int | None = None


def check_dimension(model: Model, data: Vectors, path: Path) -> None:
    """The data's vectors must have the model's input dimension."""
    if data.items.shape[1] != model.config.input_dim:
        raise InputError(
            f"{path} has vectors of dimension {data.items.shape[1]}, the model expects {model.config.input_dim}."
        )


def read_for(
    model: Model, path: Path, reading: Reading, need_labels: bool, to_learn: bool = False
) -> tuple[Vectors, list[str] | None]:
    """DATA as the vectors ``model`` scores, and the texts themselves when they are texts.

    Vectors for a model of vectors, raw inputs embedded by its encoder otherwise. Raw inputs of
    the wrong kind (vectors or texts for an image model, arrays for a text model) are refused
    in one line saying what the model takes, before anything is encoded; so are ids the model
    already holds, when learning.
    """
    texts = None
    raw = read(
        path,
        reading.columns,
        raw=model.config.encoder is not None,
        split=reading.split,
        labels_path=reading.labels_path,
        need_labels=need_labels,
    ).first(reading.limit)
    if model.config.encoder is None:
        data = raw
    else:
        holds = _kind_of(raw)
        if holds != model.config.encoder["kind"]:
            raise InputError(f"{path} holds {_KIND_NAMES[holds]}, but this model takes {_expects(model)}.")
        if to_learn and raw.ids is not None:
            model.registry.check_new_ids(raw.ids)
        data = _embedded(model, raw, reading.cache_dir, to_learn=to_learn)
        texts = [str(item) for item in raw.items] if holds == "text" else None
    check_dimension(model, data, path)
    return data, texts


_KIND_NAMES = {"text": "texts", "image": "arrays or image files"}


def _kind_of(data: Dataset[Any]) -> str:
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


def read_queries(
    model: Model, data_path: Path | None, texts: list[str] | None, reading: Reading
) -> tuple[Vectors, list[str] | None]:
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
    if clipped := model.clipped(data.items):
        warn(clipping_message(clipped, data.items.shape[0], model.config.scale_bits))
    return data, texts


def _embedded(model: Model, data: Dataset[Any], cache_dir: Path | None, to_learn: bool = False) -> Vectors:
    """Raw inputs embedded by the model's encoder, with a progress bar on a terminal (see ``Model.embed``)."""
    items = data.items
    with progress("Encoding", len(items)) as advance:
        vectors = model.embed(items, progress=advance, cache_dir=cache_dir, to_learn=to_learn)
    return Dataset(vectors.astype(np.float64), data.labels, data.ids, data.subjects)


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

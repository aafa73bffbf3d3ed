"""The arguments and options the commands share, and the errors a command reports as user errors."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from erasable.encoders import EncoderUnavailableError
from erasable.registry import UnknownSampleError
from erasable.terminal import user_errors

__all__ = [
    "DATA_HELP",
    "CacheDir",
    "CliError",
    "DataArg",
    "ForgetIds",
    "ForgetIdsFile",
    "ForgetSubjects",
    "IdColumn",
    "LabelColumn",
    "LabelsPath",
    "LedgerModelArg",
    "LimitOption",
    "ModelArg",
    "QueryData",
    "QueryTexts",
    "SplitOption",
    "SubjectColumn",
    "TextColumnOption",
    "command_errors",
]


class CliError(ValueError):
    """A command's arguments contradict each other or the model."""


#: A command's user errors -- ``ValueError``, ``OSError``, an unknown sample, an encoder not installed -- as one red
#: line and exit code 2.
command_errors = partial(user_errors, UnknownSampleError, EncoderUnavailableError)


ModelArg = Annotated[Path, typer.Argument(metavar="MODEL", help="Model file, e.g. model.erasable.")]
LedgerModelArg = Annotated[
    Path, typer.Argument(metavar="MODEL", help="Model file, or with --store the name of a model in the ledger.")
]
DATA_HELP = (
    "Vectors (.npz/.npy/.csv) for a model of vectors; for a model with an encoder, raw inputs: a table of texts "
    "(.csv/.tsv/.jsonl/.parquet), a folder of images (one subfolder per class), an image file, an IDX file, "
    "or .npz/.npy arrays."
)
DataArg = Annotated[Path, typer.Argument(metavar="DATA", help=DATA_HELP)]
LabelColumn = Annotated[str, typer.Option("--label-column", "--labels", help="CSV column holding the labels.")]
IdColumn = Annotated[str | None, typer.Option(help="CSV column holding sample ids.")]
SubjectColumn = Annotated[str | None, typer.Option(help="CSV column holding subjects.")]
SplitOption = Annotated[str | None, typer.Option(help="NPZ: read X_SPLIT, y_SPLIT, ... instead of X, y, ...")]
TextColumnOption = Annotated[str, typer.Option(help="Raw inputs: the table column holding the texts.")]
LabelsPath = Annotated[Path | None, typer.Option(help="Raw inputs: the IDX file of labels for an IDX file of items.")]
QueryData = Annotated[Path | None, typer.Argument(metavar="[DATA]", help=DATA_HELP)]
QueryTexts = Annotated[list[str] | None, typer.Option("--text", help="A text to query (repeatable; text models).")]
CacheDir = Annotated[Path | None, typer.Option(help="Raw inputs: directory of an on-disk embedding cache.")]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Read only the first N inputs of DATA.")]
ForgetIds = Annotated[list[str] | None, typer.Option("--id", help="Id of a sample to forget (repeatable).")]
ForgetIdsFile = Annotated[Path | None, typer.Option(help="Text file of ids to forget, one per line.")]
ForgetSubjects = Annotated[
    list[str] | None, typer.Option("--subject", help="Forget every sample of this subject (repeatable).")
]

"""The command line: ``erasable learn | forget | predict | explain | prune | steer | certify | info | audit |
evaluate``, and the service's ``serve | keys | ledger`` (see :mod:`erasable.service.commands`).

Every model command works on one model file (see :mod:`erasable.model_file`), which is only
ever replaced whole, after the command succeeded: a failing command leaves it unchanged.
User errors (missing or corrupted files, malformed data, unknown ids) print one red line
on stderr and exit with code 2; ``certify`` exits with 1 when the certificates differ.

Typical session::

    erasable learn model.erasable train.npz --split train --width 2048
    erasable predict model.erasable test.npz --split test --top-k 3 --output predictions.csv
    erasable forget model.erasable --subject alice
    erasable certify model.erasable

Vectors are read by :mod:`erasable.vector_files`, raw inputs by :mod:`erasable.datasets`.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from erasable import __version__
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
from erasable.encoders import EmbeddingCache, EncoderUnavailableError
from erasable.exact import clipping_message
from erasable.ledger import UnknownSampleError
from erasable.model import CHUNK_ROWS, HeadKind, Model
from erasable.model_file import load_model, save_model
from erasable.parameters import DEFAULTS
from erasable.service.commands import keys_app, ledger_app, open_store, serve
from erasable.terminal import (
    Command,
    Group,
    JsonFlag,
    console,
    err_console,
    print_json,
    progress,
    say,
    status,
    user_errors,
    warn,
)
from erasable.vector_files import Columns, DataError, VectorData, read_vectors

__all__ = ["app"]

app = typer.Typer(
    cls=Group,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal, ``code`` is shown as code
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


# -- shared helpers ----------------------------------------------------------------------------


class CliError(ValueError):
    """A command's arguments contradict each other or the model."""


_user_errors = partial(user_errors, UnknownSampleError, EncoderUnavailableError)


def _check_dimension(model: Model, data: VectorData, path: Path) -> None:
    """The data's vectors must have the model's input dimension."""
    if data.vectors.shape[1] != model.config.input_dim:
        raise DataError(
            f"{path} has vectors of dimension {data.vectors.shape[1]}, the model expects {model.config.input_dim}."
        )


def _summary(model: Model) -> None:
    """Print the sample count, the (first 20) classes and the certificate."""
    shown = ", ".join(str(c) for c in model.classes[:20])
    more = f", … ({len(model.classes) - 20} more)" if len(model.classes) > 20 else ""
    say("samples", model.count)
    say("classes", f"{len(model.classes)}: {shown}{more}")
    say("certificate", model.certificate())


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


# -- learn -------------------------------------------------------------------------------------


@app.command(cls=Command)
def learn(
    model_path: ModelArg,
    data_path: DataArg,
    label_column: LabelColumn = "label",
    labels_file: Annotated[
        Path | None, typer.Option(help="Labels: .npy or text, one per line (needed for .npy DATA).")
    ] = None,
    id_column: IdColumn = None,
    subject_column: SubjectColumn = None,
    split: SplitOption = None,
    head: Annotated[
        HeadKind | None, typer.Option(help="Head used for predictions.", show_default=str(DEFAULTS["head"]))
    ] = None,
    feature_map: Annotated[
        Literal["random_relu", "identity"] | None,
        typer.Option(help="Features of the ridge head.", show_default=str(DEFAULTS["feature_map"])),
    ] = None,
    width: Annotated[int | None, typer.Option(help="Random ReLU width.", show_default=str(DEFAULTS["width"]))] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random projection seed.", show_default=str(DEFAULTS["seed"]))
    ] = None,
    scale_bits: Annotated[
        int | None,
        typer.Option(
            help="Fixed-point scale: |x| must stay below 2**(15-bits).", show_default=str(DEFAULTS["scale_bits"])
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Ridge penalty; chosen by GCV when omitted.")] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            metavar="text|text-mpnet|image|text:PATH",
            help="Learn raw inputs embedded by this encoder: text is all-MiniLM-L6-v2, text-mpnet "
            "all-mpnet-base-v2 (more accurate, about 5x slower; extra text-mpnet), text:PATH a "
            "sentence-transformers model saved in PATH.",
            show_default="vectors",
        ),
    ] = None,
    text_column: TextColumnOption = "text",
    labels_path: LabelsPath = None,
    cache_dir: CacheDir = None,
    limit: LimitOption = None,
) -> None:
    """Learn labelled vectors, or raw texts and images, into MODEL, creating it if it does not exist.

    Vectors: NPZ/NPY/CSV. Raw inputs (with --encoder, or into a model that has one): a
    CSV/TSV/JSONL/Parquet table (--text-column, --label-column), a folder of images with one
    subfolder per class, an NPZ of texts or images (--split), or an IDX file (--labels-path;
    found beside it when named like Fashion-MNIST's). predict, explain and audit read data
    the same way. Ids are checked before anything is encoded. Ids come from the data (NPZ array
    ids, --id-column, image paths) or are consecutive integers continuing the model's. The
    configuration options apply when MODEL is created; when it exists they may be omitted,
    or must match it.

    Example: erasable learn model.erasable train.csv --encoder text --text-column text --label-column category
    """
    with _user_errors():
        columns = Columns(label_column, id_column, subject_column)
        reading = Reading(columns, split, text_column, labels_path, cache_dir, limit)
        existing = load_model(model_path) if model_path.exists() else None
        options = {
            "encoder": encoder,
            "head": head,
            "feature_map": feature_map,
            "width": width,
            "seed": seed,
            "scale_bits": scale_bits,
            "alpha": alpha,
        }
        given = {k: v for k, v in options.items() if v is not None}
        if encoder is not None or (existing is not None and existing.config.encoder is not None):
            model = _open_or_create(model_path, existing, given, None)
            data, _ = _read_for(model, data_path, reading, need_labels=True, to_learn=True)
        else:
            data = read_vectors(
                data_path, columns=reading.columns, split=split, labels_file=labels_file, need_labels=True
            )
            data = _limited(data, limit)
            model = _open_or_create(model_path, existing, given, data.vectors.shape[1])
            _check_dimension(model, data, data_path)
        _learn_in_chunks(model, data)
        _save(model, model_path)
    console.print(f"Learned {data.vectors.shape[0]} samples into {escape(str(model_path))}.", soft_wrap=True)
    _summary(model)


def _save(model: Model, path: Path) -> None:
    """Save ``model``; a ridge model first has its penalty chosen by GCV (seconds at D = 4096).

    The file keeps that penalty, so no later ``predict`` has to choose it again.
    """
    ridge = model.config.head == "ridge" and model.config.alpha is None
    with status("Saving the model" + (" (choosing the ridge penalty by GCV)…" if ridge else "…")):
        save_model(model, path)


def _open_or_create(path: Path, existing: Model | None, options: dict[str, Any], dim: int | None) -> Model:
    """The ``existing`` model at ``path``, or a new one configured by ``options`` for ``dim``-d inputs."""
    from erasable.estimator import ErasableClassifier  # here: scikit-learn costs every other command 1.7 s

    if existing is None:
        model = Model(ErasableClassifier(**options).model_config(dim))
    else:
        model = existing
        if options:
            params = {**ErasableClassifier.from_model(model).get_params(), **options}
            wanted = ErasableClassifier(**params).model_config(model.config.input_dim).to_dict()
            differing = [f"{k} is {v}, not {wanted[k]}" for k, v in model.config.to_dict().items() if wanted[k] != v]
            if differing:
                raise CliError(
                    f"{path} exists with another configuration ({'; '.join(differing)}); "
                    "omit the configuration options to add to it."
                )
    return model


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


def _limited(data: Data, limit: int | None) -> Data:
    """The first ``limit`` samples of ``data``; all of them without a limit."""
    if limit is None:
        return data
    parts = {f.name: getattr(data, f.name) for f in fields(data)}
    first: dict[str, Any] = {name: None if part is None else part[:limit] for name, part in parts.items()}
    return type(data)(**first)


def _read_for(
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
        data = _limited(data, reading.limit)
    else:
        raw = _limited(_read_raw(path, reading, need_labels), reading.limit)
        holds = _kind_of(raw)
        if holds != model.config.encoder["kind"]:
            raise DataError(f"{path} holds {_KIND_NAMES[holds]}, but this model takes {_expects(model)}.")
        if to_learn and raw.ids is not None:
            model.registry.check_new_ids(raw.ids)
        data = _embedded(model, raw, reading.cache_dir, to_learn=to_learn)
        texts = [str(item) for item in raw.items] if holds == "text" else None
    _check_dimension(model, data, path)
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


def _queries(
    model: Model, data_path: Path | None, texts: list[str] | None, reading: Reading
) -> tuple[VectorData, list[str] | None]:
    """The vectors to predict, and their texts: DATA read for the model (see :func:`_read_for`), or --text.

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
        data, texts = _read_for(model, data_path, reading, need_labels=False)
    if clipped := model.clipped(data.vectors):
        warn(clipping_message(clipped, data.vectors.shape[0], model.config.scale_bits))
    return data, texts


def _embedded(model: Model, data: Dataset, cache_dir: Path | None, to_learn: bool = False) -> VectorData:
    """Raw inputs embedded by the model's encoder, with a progress bar on a terminal (see ``Model.embed``)."""
    items = data.items
    with progress("Encoding", len(items)) as advance:
        vectors = model.embed(items, progress=advance, cache_dir=cache_dir, to_learn=to_learn)
    return VectorData(vectors.astype(np.float64), data.labels, data.ids, data.subjects)


def _learn_in_chunks(model: Model, data: VectorData) -> None:
    """``model.learn`` on consecutive chunks of the data, with a progress bar on a terminal.

    The ids and the fixed-point range of all the data are checked first, to fail before
    any long computation.
    """
    labels = data.labels
    assert labels is not None, "read with need_labels=True"
    n = data.vectors.shape[0]
    if data.ids is not None:
        model.registry.check_new_ids(data.ids)
    model.quantize(data.vectors)
    with progress("Learning", n) as advance:
        for start in range(0, n, CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            model.learn(
                data.vectors[rows],
                labels[rows],
                ids=None if data.ids is None else data.ids[rows],
                subjects=None if data.subjects is None else data.subjects[rows],
                progress=advance,
            )


# -- forget ------------------------------------------------------------------------------------


@app.command(cls=Command)
def forget(
    model_path: ModelArg,
    ids: ForgetIds = None,
    ids_file: ForgetIdsFile = None,
    subjects: ForgetSubjects = None,
    classes: Annotated[
        list[str] | None, typer.Option("--class", help="Forget every sample of this class (repeatable).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Embedding cache to empty as well: it may hold embeddings of the forgotten inputs."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Forget samples by id, by subject or by class, exactly: the result equals learning only the rest.

    --id and --ids-file may be combined; subjects and classes are requests of their own.
    Prints the receipt: the number of samples removed and the certificates before and after.

    Example: erasable forget model.erasable --id 17 --id 42
    """
    with _user_errors():
        model = load_model(model_path)
        if classes is not None:
            if any(x is not None for x in (ids, ids_file, subjects)):
                raise CliError("Forget by class alone: --class cannot be combined with --id, --ids-file or --subject.")
            by_name = {str(c): c for c in model.classes}
            unknown = [c for c in classes if c not in by_name]
            if unknown:
                raise CliError(f"No class {unknown[0]!r} in {model_path}.")
            receipt = model.forget(classes=[by_name[c] for c in classes])
        else:
            id_list, subject_list = _forget_request(ids, ids_file, subjects)
            receipt = model.forget(ids=id_list, subjects=subject_list)
        _save(model, model_path)
        purged = EmbeddingCache(cache_dir).clear() if cache_dir is not None else None
    if as_json:
        print_json(
            {
                "model": str(model_path),
                "forgot": len(receipt.ids),
                "ids": list(receipt.ids),
                "certificate_before": receipt.certificate_before,
                "certificate_after": receipt.certificate_after,
                "samples_left": model.count,
                "cache_files_removed": purged,
            }
        )
        return
    console.print(f"Forgot {len(receipt.ids)} samples from {escape(str(model_path))}.", soft_wrap=True)
    say("certificate before", receipt.certificate_before)
    say("certificate after", receipt.certificate_after)
    say("samples left", model.count)
    if purged is not None:
        say("cache files removed", purged)


def _forget_request(
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


# -- predict -----------------------------------------------------------------------------------


@app.command(cls=Command)
def predict(
    model_path: ModelArg,
    data_path: QueryData = None,
    texts: QueryTexts = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the predictions to this CSV file; '-' writes the CSV to stdout.")
    ] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Add the probability of each predicted label.")] = False,
    head: Annotated[HeadKind | None, typer.Option(help="Head to use.", show_default="the model's")] = None,
    top_k: Annotated[int, typer.Option(min=1, help="Number of labels per row, best first.")] = 1,
    label_column: LabelColumn = "label",
    id_column: IdColumn = None,
    subject_column: SubjectColumn = None,
    split: SplitOption = None,
    text_column: TextColumnOption = "text",
    cache_dir: CacheDir = None,
    limit: LimitOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Predict labels for the vectors in DATA, or raw inputs, with an out-of-distribution score.

    A model with an encoder takes raw inputs: a table of texts (--text-column), a .txt file
    (one text per line), texts given with --text, an image file, a folder of images, or an IDX
    file. Columns: id; input (texts only: the text itself); prediction, prediction_2, ... up to
    --top-k, each followed by its probability with --proba (probability, probability_2, ...);
    ood_score, 1 minus the top probability (higher: unlike every class). Label and subject
    columns are ignored. With --json: one document, {"predictions": [{"id", "input", "labels",
    "probabilities", "ood_score"}, ...], "clipped": N}.

    Example: erasable predict model.erasable --text "my card was declined" --top-k 3 --proba
    """
    with _user_errors():
        model = load_model(model_path)
        reading = Reading(Columns(label_column, id_column, subject_column), split, text_column, None, cache_dir, limit)
        data, inputs = _queries(model, data_path, texts, reading)
        if 0 < len(model.classes) < top_k:
            raise CliError(f"--top-k {top_k} but the model has {len(model.classes)} classes.")
        records = _predictions(model, data, inputs, head, proba, top_k)
        if as_json:
            print_json({"model": str(model_path), "clipped": model.clipped(data.vectors), "predictions": records})
            return
        header, rows = _prediction_table(records, inputs is not None, proba, top_k)
        if output == Path("-"):
            csv.writer(sys.stdout).writerows([header, *rows])
            return
        if output is not None:
            with output.open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows([header, *rows])
    if output is not None:
        console.print(f"Wrote {len(rows)} predictions to {escape(str(output))}.", soft_wrap=True)
        return
    table = Table(*header)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else escape(str(v)) for v in row))
    console.print(table)


def _predictions(
    model: Model, data: VectorData, inputs: list[str] | None, head: HeadKind | None, proba: bool, top_k: int
) -> list[dict[str, Any]]:
    """One record per input -- id, the text (for texts), the top-k labels, their probabilities (with ``proba``),
    the OOD score -- computed chunk by chunk."""
    ids = data.ids if data.ids is not None else [str(i) for i in range(data.vectors.shape[0])]
    classes = model.classes
    records: list[dict[str, Any]] = []
    for start in range(0, data.vectors.shape[0], CHUNK_ROWS):
        chunk = data.vectors[start : start + CHUNK_ROWS]
        scores = model.predict_proba(chunk, head) if proba else model.decision_function(chunk, head)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        for i, (ranked, ood) in enumerate(zip(best, model.ood_score(chunk), strict=True)):
            record: dict[str, Any] = {"id": ids[start + i]}
            if inputs is not None:
                record["input"] = inputs[start + i]
            record["labels"] = [classes[c] for c in ranked]
            if proba:
                record["probabilities"] = [float(scores[i, c]) for c in ranked]
            records.append({**record, "ood_score": float(ood)})
    return records


def _prediction_table(
    records: list[dict[str, Any]], with_inputs: bool, proba: bool, top_k: int
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the prediction table (and CSV) of :func:`_predictions`' records."""
    header = ["id", "input"] if with_inputs else ["id"]
    for rank in range(1, top_k + 1):
        suffix = "" if rank == 1 else f"_{rank}"
        header += [f"prediction{suffix}", f"probability{suffix}"] if proba else [f"prediction{suffix}"]
    header.append("ood_score")
    rows = []
    for record in records:
        row = [record["id"], record["input"]] if with_inputs else [record["id"]]
        for rank, label in enumerate(record["labels"]):
            row += [label, record["probabilities"][rank]] if proba else [label]
        rows.append([*row, record["ood_score"]])
    return header, rows


# -- explain ---------------------------------------------------------------------------------


@app.command(cls=Command)
def explain(
    model_path: ModelArg,
    data_path: QueryData = None,
    texts: QueryTexts = None,
    k: Annotated[int, typer.Option(min=1, help="Neighbours shown per input.")] = 10,
    id_column: IdColumn = None,
    split: SplitOption = None,
    text_column: TextColumnOption = "text",
    cache_dir: CacheDir = None,
) -> None:
    """Show why: the memory's prediction for each input and the learned samples that voted for it.

    For each input: the predicted label, then its k nearest learned samples (ledger id,
    label, cosine similarity, voting weight). Needs the extra ``memory`` (faiss).

    Example: erasable explain model.erasable --text "my card was declined" --k 5
    """
    with _user_errors():
        model = load_model(model_path)
        data, _ = _queries(model, data_path, texts, Reading(Columns(id=id_column), split, text_column, None, cache_dir))
        memory = model.memory()
        vectors = model.head_inputs(data.vectors, "memory")
        predictions = memory.predict(vectors)
        evidence = memory.explain(vectors, k)
    ids = data.ids if data.ids is not None else [str(i) for i in range(len(predictions))]
    for query, prediction, neighbours in zip(ids, predictions, evidence, strict=True):
        table = Table("rank", "id", "label", "similarity", "weight", title=f"{query}: predicted {prediction}")
        for rank, n in enumerate(neighbours, start=1):
            table.add_row(str(rank), escape(n.id), escape(str(n.label)), f"{n.similarity:.4f}", f"{n.weight:.4f}")
        console.print(table)


# -- prune -----------------------------------------------------------------------------------


@app.command(cls=Command)
def prune(
    model_path: ModelArg,
    criterion: Annotated[
        Literal["wrong", "misleading"],
        typer.Option(help="Remove samples their neighbours outvote (wrong), or that mislead more than they help."),
    ] = "wrong",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the samples; change nothing.")] = False,
) -> None:
    """Hard-prune the memory: forget the samples its leave-one-out votes single out.

    "wrong": samples whose own leave-one-out vote is wrong (Wilson's editing); "misleading":
    samples more of whose vote went to wrong decisions than to right ones. The samples are
    forgotten exactly, like any forget (the receipt is printed). Needs the extra ``memory``.

    Example: erasable prune model.erasable --criterion misleading --dry-run
    """
    from erasable.memory_analysis import hard_prune  # faiss is optional

    with _user_errors():
        model = load_model(model_path)
        total = model.count
        if not total:
            raise CliError(f"{model_path} has no samples to prune.")
        with status("Leave-one-out votes of every sample…"):
            ids = hard_prune(model.memory(), criterion)
        receipt = model.forget(ids=ids) if ids and not dry_run else None
        if receipt is not None:
            _save(model, model_path)
    console.print(f"{'Would forget' if dry_run else 'Forgot'} {len(ids)} of {total} samples ({criterion}).")
    if ids:
        say("ids", ", ".join(ids[:20]) + (f", … ({len(ids) - 20} more)" if len(ids) > 20 else ""))
    if receipt is not None:
        say("certificate before", receipt.certificate_before)
        say("certificate after", receipt.certificate_after)


# -- steer -----------------------------------------------------------------------------------

SteerPairs = list[str] | None


@app.command(cls=Command)
def steer(
    model_path: ModelArg,
    classes: Annotated[
        SteerPairs, typer.Option("--class", metavar="LABEL=WEIGHT", help="Weigh a class's votes (repeatable).")
    ] = None,
    subjects: Annotated[
        SteerPairs,
        typer.Option(
            "--subject", metavar="SUBJECT=WEIGHT", help="Weigh the votes of a subject's samples (repeatable)."
        ),
    ] = None,
    ids: Annotated[
        SteerPairs, typer.Option("--id", metavar="ID=WEIGHT", help="Weigh one sample's votes (repeatable).")
    ] = None,
) -> None:
    """Steer the memory head: multiply the votes of a class, a subject (a source) or a sample.

    0 silences, 1 restores the default, 0.5 halves. The weights are stored in the model file;
    the statistics and the certificate do not change, and forgetting a sample or subject drops
    its weight. Without options, prints the current weights.

    Example: erasable steer model.erasable --subject crawler=0.25 --class refund=1.5
    """
    with _user_errors():
        model = load_model(model_path)
        if classes or subjects or ids:
            by_name = {str(c): c for c in model.classes}
            class_weights = {by_name.get(name, name): weight for name, weight in _weight_pairs(classes, "--class")}
            model.steer(
                classes=class_weights,
                subjects=dict(_weight_pairs(subjects, "--subject")),
                ids=dict(_weight_pairs(ids, "--id")),
            )
            save_model(model, model_path)
    table = Table("kind", "name", "weight", title=f"steering of {escape(str(model_path))}")
    for kind, entries in (
        ("class", model.steering.classes),
        ("subject", model.steering.subjects),
        ("id", model.steering.samples),
    ):
        for name, weight in entries.items():
            table.add_row(kind, escape(str(name)), f"{weight:g}")
    console.print(table if table.row_count else "No steering: every vote has weight 1.")


def _weight_pairs(pairs: SteerPairs, option: str) -> list[tuple[str, float]]:
    """``NAME=WEIGHT`` strings as (name, weight); the name may itself contain '='."""
    out = []
    for pair in pairs or []:
        name, _, weight = pair.rpartition("=")
        try:
            if not name:
                raise ValueError
            out.append((name, float(weight)))
        except ValueError:
            raise CliError(f"{option} takes NAME=WEIGHT, got {pair!r}.") from None
    return out


# -- certify and info --------------------------------------------------------------------------


@app.command(cls=Command)
def certify(model_path: ModelArg, as_json: JsonFlag = False) -> None:
    """Recompute the statistics from the live samples and compare certificates.

    For a ridge model with automatic alpha, also recompute the penalty GCV chooses and
    compare it with the one the file keeps. Exits with 0 when both match a refit from
    scratch, 1 if not.

    Example: erasable certify model.erasable
    """
    with _user_errors():
        model = load_model(model_path)
        refit = model.refit()
        alphas = (model.gcv_alpha(), refit.gcv_alpha()) if model.config.head == "ridge" else (None, None)
    stored, recomputed = model.certificate(), refit.certificate()
    if as_json:
        ok = stored == recomputed and alphas[0] == alphas[1]
        print_json(
            {
                "model": str(model_path),
                "ok": ok,
                "samples": model.count,
                "model_certificate": stored,
                "refit_certificate": recomputed,
                "ridge_penalty": alphas[0],
                "ridge_penalty_of_refit": alphas[1],
            }
        )
        raise typer.Exit(0 if ok else 1)
    say("model certificate", stored)
    say("refit certificate", recomputed)
    if stored != recomputed:
        err_console.print("[bold red]MISMATCH:[/] the statistics are not those of the live samples.")
        raise typer.Exit(1)
    if alphas[0] is not None:
        say("ridge penalty (file / GCV of the refit)", f"{alphas[0]:.6g} / {alphas[1]:.6g}")
        if alphas[0] != alphas[1]:
            err_console.print("[bold red]MISMATCH:[/] the file's ridge penalty is not the one GCV chooses.")
            raise typer.Exit(1)
    console.print(f"[bold green]OK:[/] the statistics are exactly those of the {model.count} live samples.")


@app.command(cls=Command)
def info(
    model_path: ModelArg,
    top: Annotated[int, typer.Option(min=0, help="Number of classes listed, largest first.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Show a model's configuration, class counts, certificate and sizes.

    Example: erasable info model.erasable --top 20
    """
    with _user_errors():
        model = load_model(model_path)
        file_size = model_path.stat().st_size
    chosen = model.gcv_alpha() if model.config.head == "ridge" else None
    class_counts = model.embedding_moments.class_counts.tolist()
    largest = sorted(range(len(class_counts)), key=lambda i: -class_counts[i])
    statistics = [model.embedding_moments] + ([model.feature_moments] if model.feature_moments is not None else [])
    steering = model.steering
    facts: dict[str, Any] = {
        "samples": model.count,
        "subjects": len({s for s in model.registry.subjects if s is not None}),
        "certificate": model.certificate(),
        "steering": {
            "classes": len(steering.classes),
            "subjects": len(steering.subjects),
            "ids": len(steering.samples),
        },
        "file_bytes": file_size,
        "statistics_bytes": sum(a.nbytes for m in statistics for a in m.arrays().values()),
        "samples_bytes": model.registry.embeddings.nbytes,
    }
    if as_json:
        classes = [{"label": model.classes[i], "samples": class_counts[i]} for i in largest]
        print_json({"model": str(model_path), "config": model.config.to_dict(), "alpha_chosen_by_gcv": chosen,
                    "classes": classes, **facts})  # fmt: skip
        return
    config = Table("setting", "value", title="configuration")
    for key, value in model.config.to_dict().items():
        config.add_row(key, escape(str(value)))
    if chosen is not None:
        config.add_row("alpha chosen by GCV", f"{chosen:.6g}")
    console.print(config)
    say("classes", f"{len(model.classes)}, the {min(top, len(model.classes))} largest:")
    counts = Table("class", "samples")
    for index in largest[:top]:
        counts.add_row(escape(str(model.classes[index])), str(class_counts[index]))
    console.print(counts)
    for name in ("samples", "subjects", "certificate"):
        say(name, facts[name])
    say("steering", f"{len(steering.classes)} classes, {len(steering.subjects)} subjects, {len(steering.samples)} ids")
    say("file size", _bytes(file_size))
    say("statistics memory", _bytes(facts["statistics_bytes"]))
    say("samples memory", _bytes(facts["samples_bytes"]))


def _bytes(n: int) -> str:
    """``n`` bytes in a human unit."""
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{size:.1f} {unit}"


# -- audit -------------------------------------------------------------------------------------


@app.command(cls=Command)
def audit(
    model_path: LedgerModelArg,
    test_path: Annotated[Path, typer.Option("--test", help="Labelled test data (read like DATA of learn).")],
    out: Annotated[Path, typer.Option(help="Directory to write report.md, report.html and the PNG plots to.")],
    ids: ForgetIds = None,
    ids_file: ForgetIdsFile = None,
    subjects: ForgetSubjects = None,
    forgotten: Annotated[
        Path | None,
        typer.Option(help="Labelled data of samples MODEL has already forgotten: audit that forget request."),
    ] = None,
    heldout: Annotated[
        Path | None, typer.Option(help="Labelled held-out data for the membership attack (default: --test).")
    ] = None,
    label_column: LabelColumn = "label",
    split: SplitOption = None,
    text_column: TextColumnOption = "text",
    cache_dir: CacheDir = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out and retained samples drawn.")] = 0,
    as_json: JsonFlag = False,
    store: Annotated[
        str | None,
        typer.Option(help="A ledger (SQLite path or PostgreSQL URL): MODEL is then the name of a model in it."),
    ] = None,
) -> None:
    """Audit a forget request against a refit from scratch; MODEL itself is not changed.

    Serves the request (--id, --ids-file or --subject) on a copy of MODEL, or, with
    --forgotten, takes MODEL as already having forgotten those samples. Then refits from
    scratch and reports: forget-, retained- and test-set accuracy, the membership-inference
    AUC of the forgotten samples against held-out ones, the divergence of the predictions,
    the certificates and the times. With --store, MODEL is read from the ledger and the
    ledger is verified too (hash chain, statistics, refit, live ids against the log).
    Exits with 1 when the certificates differ or the ledger does not verify.

    Example: erasable audit model.erasable --subject alice --test test.npz --split test --out audit/

    Example: erasable audit bank --store models.db --forgotten forgotten.npz --test test.npz --out audit/
    """
    from erasable.audit.report import audit_forget, audit_forgotten  # here: scikit-learn costs other commands 1.7 s
    from erasable.audit.unlearning import LabelledSet

    with _user_errors():
        ledger = None if store is None else open_store(store)
        model = load_model(model_path) if ledger is None else ledger.load_model(str(model_path))
        reading = Reading(Columns(label_column), split, text_column, None, cache_dir)

        def labelled(path: Path) -> LabelledSet:
            data, _ = _read_for(model, path, reading, need_labels=True)
            assert data.labels is not None, "read with need_labels=True"
            return LabelledSet(data.vectors, data.labels)

        test, pool = labelled(test_path), None if heldout is None else labelled(heldout)
        if forgotten is not None:
            if any(x is not None for x in (ids, ids_file, subjects)):
                raise CliError("Give either a forget request (--id, --ids-file, --subject) or --forgotten, not both.")
            report = audit_forgotten(model, labelled(forgotten), test=test, heldout=pool, seed=seed)
        else:
            id_list, subject_list = _forget_request(ids, ids_file, subjects)
            report = audit_forget(model, ids=id_list, subjects=subject_list, test=test, heldout=pool, seed=seed)
        if ledger is not None:
            verification = ledger.verify(str(model_path))
            report = replace(report, chain_verified=verification.ok, chain_events=verification.chain.events)
        paths = report.write(out)
    failed = not report.certificates_equal or report.chain_verified is False
    if as_json:
        summary = {"certificates_equal": report.certificates_equal, "verdict": report.verdict()}
        print_json({**asdict(report), **summary, "files": [str(p) for p in paths]})
        raise typer.Exit(1 if failed else 0)
    table = Table("metric", "served model", "refit from scratch")
    for row in report.metric_rows():
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    say("divergence (served vs refit)", f"{report.divergence.disagreement:.4%} of test labels differ")
    say("verdict", report.verdict())
    say("report", ", ".join(str(p) for p in paths))
    if failed:
        raise typer.Exit(1)


# -- evaluate --------------------------------------------------------------------------------


@app.command(cls=Command)
def evaluate(
    model_path: ModelArg,
    data_path: DataArg,
    out: Annotated[Path, typer.Option(help="Directory to write evaluation.md and the PNG plots to.")],
    ood_label: Annotated[
        str | None, typer.Option(help="Label that marks out-of-scope samples: scored by the OOD AUROC.")
    ] = None,
    label_column: LabelColumn = "label",
    split: SplitOption = None,
    text_column: TextColumnOption = "text",
    labels_path: LabelsPath = None,
    cache_dir: CacheDir = None,
    limit: LimitOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Score MODEL on labelled DATA: accuracy, macro-F1, per-class precision and recall, calibration.

    Also the most frequent confusions of the worst classes, and with --ood-label the AUROC of
    the OOD score separating the samples of that label (out of scope) from the rest. DATA is
    read like learn's. Writes evaluation.md, reliability.png and worst_classes.png to --out.

    Example: erasable evaluate model.erasable test.csv --label-column category --out evaluation/
    """
    from erasable.audit.evaluation import evaluate as score

    with _user_errors():
        model = load_model(model_path)
        reading = Reading(Columns(label_column), split, text_column, labels_path, cache_dir, limit)
        data, _ = _read_for(model, data_path, reading, need_labels=True)
        assert data.labels is not None, "read with need_labels=True"
        result = score(model, data.vectors, data.labels, ood_label=ood_label)
        paths = result.write(out)
    if as_json:
        print_json({**asdict(result), "files": [str(p) for p in paths]})
        return
    table = Table("measure", "value", title=f"{result.samples} in-scope samples")
    table.add_row("accuracy", f"{result.accuracy:.4f}")
    table.add_row("macro-F1", f"{result.macro_f1:.4f}")
    table.add_row("expected calibration error", f"{result.ece:.4f}")
    auroc = "n/a (no --ood-label samples)" if result.ood_auroc is None else f"{result.ood_auroc:.4f}"
    table.add_row(f"OOD AUROC ({result.out_of_scope} out of scope)", auroc)
    console.print(table)
    worst = ", ".join(f"{c.label} ({c.recall:.2f})" for c in result.worst()[:5])
    say("lowest recall", worst)
    say("report", ", ".join(str(p) for p in paths))


# -- the service: serve, keys, ledger (defined in erasable.service.commands) -------------------

app.command(cls=Command)(serve)
app.add_typer(keys_app, name="keys")
app.add_typer(ledger_app, name="ledger")


# -- version -----------------------------------------------------------------------------------


def _print_version(value: bool) -> None:
    """Eager ``--version`` callback: print the version and stop."""
    if value:
        console.print(f"erasable {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Classification whose knowledge can be added and removed exactly.

    Learning adds integer statistics, forgetting subtracts them: the model after any
    sequence of learn and forget is bit-identical to one learned from scratch on what
    remains, and its certificate (SHA-256) proves it.
    """

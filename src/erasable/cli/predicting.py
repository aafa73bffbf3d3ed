"""``erasable predict`` and ``erasable explain``: labels, probabilities and OOD scores, and the votes behind them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from erasable.cli.arguments import (
    CacheDir,
    CliError,
    IdColumn,
    LabelColumn,
    LimitOption,
    ModelArg,
    QueryData,
    QueryTexts,
    SplitOption,
    SubjectColumn,
    TextColumnOption,
    command_errors,
)
from erasable.cli.inputs import Reading, Vectors, read_queries
from erasable.cli.rendering import rows_table, write_csv
from erasable.io import Columns
from erasable.model import CHUNK_ROWS, HeadKind, Model
from erasable.model_file import load_model
from erasable.terminal import JsonFlag, console, print_json

__all__ = ["explain", "predict"]


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
    ood_score (higher: unlike every class; see Model.ood_score). Label and subject
    columns are ignored. On a terminal the predictions are a table; piped, or with --output -,
    the same columns are CSV on stdout. With --json: one document, {"predictions": [{"id", "input", "labels",
    "probabilities", "ood_score"}, ...], "clipped": N}.

    Example: erasable predict model.erasable --text "my card was declined" --top-k 3 --proba
    """
    with command_errors():
        model = load_model(model_path)
        reading = Reading(Columns(text_column, label_column, id_column, subject_column), split, None, cache_dir, limit)
        data, inputs = read_queries(model, data_path, texts, reading)
        if 0 < len(model.classes) < top_k:
            raise CliError(f"--top-k {top_k} but the model has {len(model.classes)} classes.")
        records = _predictions(model, data, inputs, head, proba, top_k)
        if as_json:
            print_json({"model": str(model_path), "clipped": model.clipped(data.items), "predictions": records})
            return
        header, rows = _prediction_table(records, inputs is not None, proba, top_k)
        if output is None and not console.is_terminal:
            output = Path("-")  # piped: the CSV, which rich would take seconds to lay out as a table
        if output is not None:
            write_csv(output, header, rows)
            if output == Path("-"):
                return
    if output is not None:
        console.print(f"Wrote {len(rows)} predictions to {escape(str(output))}.", soft_wrap=True)
        return
    console.print(rows_table(header, rows))


def _predictions(
    model: Model, data: Vectors, inputs: list[str] | None, head: HeadKind | None, proba: bool, top_k: int
) -> list[dict[str, Any]]:
    """One record per input -- id, the text (for texts), the top-k labels, their probabilities (with ``proba``),
    the OOD score -- computed chunk by chunk."""
    ids = data.ids if data.ids is not None else [str(i) for i in range(data.items.shape[0])]
    classes = model.classes
    records: list[dict[str, Any]] = []
    for start in range(0, data.items.shape[0], CHUNK_ROWS):
        chunk = data.items[start : start + CHUNK_ROWS]
        decision, probabilities, ood_scores = model.predictions(chunk)  # the configured head's: the OOD score's
        if head not in (None, model.config.head):
            decision, probabilities = model.decision_and_proba(chunk, head)
        scores = probabilities if proba else decision
        best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        for i, (ranked, ood) in enumerate(zip(best, ood_scores, strict=True)):
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
    with command_errors():
        model = load_model(model_path)
        reading = Reading(Columns(text_column, "label", id_column), split, None, cache_dir)
        data, _ = read_queries(model, data_path, texts, reading)
        memory = model.memory()
        vectors = model.head_inputs(data.items, "memory")
        predictions = memory.predict(vectors)
        evidence = memory.explain(vectors, k)
    ids = data.ids if data.ids is not None else [str(i) for i in range(len(predictions))]
    for query, prediction, neighbours in zip(ids, predictions, evidence, strict=True):
        table = Table("rank", "id", "label", "similarity", "weight", title=f"{query}: predicted {prediction}")
        for rank, n in enumerate(neighbours, start=1):
            table.add_row(str(rank), escape(n.id), escape(str(n.label)), f"{n.similarity:.4f}", f"{n.weight:.4f}")
        console.print(table)

"""``erasable prune`` and ``erasable steer``: curate the memory head, by forgetting the samples that mislead it
or by weighing the votes of classes, subjects and samples."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from erasable.cli.arguments import CliError, ModelArg, command_errors
from erasable.cli.learning import save_changed
from erasable.cli.rendering import say_certificates
from erasable.model_file import load_model, save_model
from erasable.terminal import console, say, status

__all__ = ["prune", "steer"]


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

    with command_errors():
        model = load_model(model_path)
        total = model.count
        if not total:
            raise CliError(f"{model_path} has no samples to prune.")
        with status("Leave-one-out votes of every sample…"):
            ids = hard_prune(model.memory(), criterion)
        receipt = model.forget(ids=ids) if ids and not dry_run else None
        if receipt is not None:
            save_changed(model, model_path)
    console.print(f"{'Would forget' if dry_run else 'Forgot'} {len(ids)} of {total} samples ({criterion}).")
    if ids:
        say("ids", ", ".join(ids[:20]) + (f", … ({len(ids) - 20} more)" if len(ids) > 20 else ""))
    if receipt is not None:
        say_certificates(receipt)


SteerPairs = list[str] | None


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
    with command_errors():
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

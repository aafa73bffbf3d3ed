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

This module holds the ``erasable`` app and registers the commands, which live by group:
:mod:`~erasable.cli.learning` (learn, forget), :mod:`~erasable.cli.predicting` (predict,
explain), :mod:`~erasable.cli.curating` (prune, steer) and :mod:`~erasable.cli.inspecting`
(certify, info, audit, evaluate). They share their options (:mod:`~erasable.cli.arguments`),
how they read data (:mod:`~erasable.cli.inputs`) and how they show results
(:mod:`~erasable.cli.rendering`). Heavy modules (scikit-learn, faiss, the encoders' models)
are imported by the commands that need them, when they run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from erasable import __version__
from erasable.cli.curating import prune, steer
from erasable.cli.inspecting import audit, certify, evaluate, info
from erasable.cli.learning import forget, learn
from erasable.cli.predicting import explain, predict
from erasable.service.commands import keys_app, ledger_app, serve
from erasable.terminal import Command, Group, console

__all__ = ["app"]

app = typer.Typer(
    cls=Group,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal, ``code`` is shown as code
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# In the order ``erasable --help`` lists them; the service's serve, keys and ledger are defined in
# erasable.service.commands.
for command in (learn, forget, predict, explain, prune, steer, certify, info, audit, evaluate, serve):
    app.command(cls=Command)(command)
app.add_typer(keys_app, name="keys")
app.add_typer(ledger_app, name="ledger")


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

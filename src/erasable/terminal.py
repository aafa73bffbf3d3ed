"""What the command lines print: results on stdout, errors, warnings and progress on stderr.

A user error is one line, ``Error: <what is wrong>``, and exit code 2 (no traceback); a
warning is one line ``Warning: ...``. Progress is a bar on a terminal; elsewhere (a pipe, a
log file, CI) work that lasts beyond :data:`PLAIN_EVERY` seconds prints plain lines instead,
so a long run is never silent, and a short one prints nothing.

>>> import typer
>>> try:
...     with user_errors():
...         raise ValueError("no such   file")
... except typer.Exit as stop:
...     stop.exit_code
2
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Annotated, Any, NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = [
    "PLAIN_EVERY",
    "Command",
    "Group",
    "JsonFlag",
    "console",
    "err_console",
    "fail",
    "print_json",
    "progress",
    "say",
    "status",
    "user_errors",
    "warn",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

#: The ``--json`` flag of every command that can answer in JSON.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document (for scripts) instead of tables.")]

#: Seconds between plain progress lines off a terminal (and before the first one).
PLAIN_EVERY = 10.0


def _untyped_flags(params: Any) -> Any:
    """``params`` with flags shown without a value type (typer's own options and click's --help alike)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(typer.core.TyperCommand):
    """A command whose help shows no value type for flags: ``--proba``, not ``--proba <bool>`` (as if it took one)."""

    def get_params(self, ctx: Any) -> Any:
        return _untyped_flags(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    """A group of commands whose help shows flags like :class:`Command`'s (``--version``, ``--help``)."""

    def get_params(self, ctx: Any) -> Any:
        return _untyped_flags(super().get_params(ctx))


def fail(message: str) -> NoReturn:
    """Print ``Error: message`` on stderr (one line) and exit with code 2."""
    err_console.print(f"[bold red]Error:[/] {escape(' '.join(message.split()))}", soft_wrap=True)
    raise typer.Exit(2)


def warn(message: str) -> None:
    """Print ``Warning: message`` on stderr (one line)."""
    err_console.print(f"[bold yellow]Warning:[/] {escape(' '.join(message.split()))}", soft_wrap=True)


@contextmanager
def user_errors(*errors: type[Exception]) -> Iterator[None]:
    """Turn user errors (``ValueError``, ``OSError`` and ``errors``) into :func:`fail`."""
    caught: tuple[type[Exception], ...] = (ValueError, OSError, *errors)
    try:
        yield
    except caught as exc:
        fail(str(exc) or type(exc).__name__)


def print_json(document: Any) -> None:
    """Print ``document`` on stdout as one line of JSON: numpy values as numbers, NaN and infinities as null.

    >>> print_json({"n": np.int64(3), "auc": float("nan"), "labels": ("a", 1)})
    {"n": 3, "auc": null, "labels": ["a", 1]}
    """
    sys.stdout.write(json.dumps(_plain(document), ensure_ascii=False, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """``value`` with only what JSON holds: dicts, lists, strings, finite numbers, booleans, null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def say(name: str, value: object) -> None:
    """Print ``name: value`` on stdout with the value taken literally (no markup), never wrapped."""
    console.print(f"[bold]{name}:[/] {escape(str(value))}", soft_wrap=True)


@contextmanager
def progress(what: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield the callback that advances ``what`` by a number of the ``total`` steps.

    On a terminal: a bar. Elsewhere: a line ``what: done/total (percent), elapsed`` at most
    every :data:`PLAIN_EVERY` seconds once that long has passed, and a last one if any was printed.
    """
    if err_console.is_terminal:
        bar = Progress(
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        with bar:
            yield partial(bar.advance, bar.add_task(what, total=total))
        return
    start = last = time.monotonic()
    done = 0
    printed = False

    def line() -> None:
        share = f" ({done / total:.0%})" if total else ""
        err_console.print(f"{what}: {done}/{total}{share}, {time.monotonic() - start:.0f} s", soft_wrap=True)

    def advance(steps: int) -> None:
        nonlocal done, last, printed
        done += steps
        if time.monotonic() - last >= PLAIN_EVERY:
            last, printed = time.monotonic(), True
            line()

    yield advance
    if printed:
        line()


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with ``message`` on a terminal; elsewhere the message as a line if the work outlasts PLAIN_EVERY."""
    if err_console.is_terminal:
        with err_console.status(message):
            yield
        return
    start, announced = time.monotonic(), threading.Event()

    def announce() -> None:
        announced.set()
        err_console.print(message, soft_wrap=True)

    timer = threading.Timer(PLAIN_EVERY, announce)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if announced.is_set():
            err_console.print(f"{message} done in {time.monotonic() - start:.0f} s", soft_wrap=True)

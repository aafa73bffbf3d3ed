"""How the commands show what they did: a model's summary, certificates, sizes, and rows as a table or CSV."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from erasable.model import ForgetReceipt, Model
from erasable.terminal import say

__all__ = ["human_bytes", "print_summary", "rows_table", "say_certificates", "write_csv"]


def print_summary(model: Model) -> None:
    """Print the sample count, the (first 20) classes and the certificate."""
    shown = ", ".join(str(c) for c in model.classes[:20])
    more = f", … ({len(model.classes) - 20} more)" if len(model.classes) > 20 else ""
    say("samples", model.count)
    say("classes", f"{len(model.classes)}: {shown}{more}")
    say("certificate", model.certificate())


def say_certificates(receipt: ForgetReceipt) -> None:
    """Print a forget's receipt: the certificates before and after."""
    say("certificate before", receipt.certificate_before)
    say("certificate after", receipt.certificate_after)


def rows_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """``rows`` under ``header`` as a table: floats to four decimals, everything else as text."""
    table = Table(*header)
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else escape(str(v)) for v in row))
    return table


def write_csv(output: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``header`` and ``rows`` as CSV into ``output``; ``-`` is stdout."""
    if output == Path("-"):
        csv.writer(sys.stdout).writerows([header, *rows])
        return
    with output.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])


def human_bytes(n: int) -> str:
    """``n`` bytes in a human unit."""
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{size:.1f} {unit}"

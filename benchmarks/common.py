"""What every benchmark script shares: robust timing and Markdown tables.

The scripts run as ``python benchmarks/<name>.py``, so this module is imported as ``common``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BANKING77 = SHARED_DATA / "banking77" / "all-MiniLM-L6-v2.npz"


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls: robust to the noise of a shared machine."""
    return statistics.median(timed(fn) for _ in range(repeats))


def median_times(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each function over ``repeats`` rounds that call them in turn.

    Taking turns, rather than timing one function's repeats and then the other's, exposes
    them alike to drifts in the load of a shared machine: the fair way to compute a ratio.
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times, strict=True):
            record.append(timed(fn))
    return [statistics.median(record) for record in times]


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with a level-3 title."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"

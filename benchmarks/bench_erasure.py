"""What physical erasure costs, and where a forgotten sample's bytes remain, on SQLite and on PostgreSQL.

On a ledger of BANKING77's size (10,003 samples of 384 dimensions, identity features) it
forgets one sample and then runs ``LedgerStore.compact()``; it times both and, after each,
searches every file of the store (SQLite: its directory; PostgreSQL: the server's data
directory, heap files and WAL segments apart) for the forgotten sample's id and int16 row.

Run: ``python benchmarks/bench_erasure.py`` (PostgreSQL's binaries are needed for its half).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from erasable.ledger.store import LedgerStore
from erasable.model import ModelConfig

DIM = 384
VICTIM = "id-victim-5f0c2e9a"


def ledger_with_samples(store: LedgerStore, n: int) -> bytes:
    """A model with ``n`` samples in batches of 1,000; returns the int16 bytes of the victim's row."""
    model = store.create_model("bank", ModelConfig(input_dim=DIM, scale_bits=13, head="prototype"))
    rng = np.random.default_rng(0)
    for start in range(0, n, 1000):
        rows = rng.standard_normal((min(1000, n - start), DIM))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        ids = [VICTIM if start + i == 17 else f"s{start + i}" for i in range(len(rows))]
        labels = [f"class-{(start + i) % 77}" for i in range(len(rows))]
        change = model.plan_learn(rows, labels, ids=ids, subjects=[f"u{i % 50}" for i in range(len(rows))])
        store.commit("bank", change)
        model.apply(change)
    return model.registry.embeddings[model.registry.rows_for_ids([VICTIM])].astype("<i2").tobytes()


def where(directory: Path, needles: dict[str, bytes]) -> str:
    """Which kinds of file under ``directory`` hold which needle, e.g. ``id: heap, wal``."""
    found: dict[str, set[str]] = {}
    for path in (p for p in directory.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        kind = "wal" if "wal" in path.name or "pg_wal" in path.parts else "other" if "pg_" in str(path) else "table"
        for name, needle in needles.items():
            if needle in data:
                found.setdefault(name, set()).add(kind)
    return "; ".join(f"{name} in {', '.join(sorted(kinds))}" for name, kinds in sorted(found.items())) or "nowhere"


def checkpoint(store: LedgerStore, *statements: str) -> None:
    """PostgreSQL: write what its buffers hold to the data files (``CHECKPOINT``), as it does every few minutes."""
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for statement in (*statements, "CHECKPOINT"):
                connection.exec_driver_sql(statement)


def measure(title: str, location: str, directory: Path, n: int) -> list[list[str]]:
    store = LedgerStore(location)
    row = ledger_with_samples(store, n)
    needles = {"id": VICTIM.encode(), "int16 row": row}
    checkpoint(store)
    before = where(directory, needles)
    model = store.load_model("bank")
    change = model.plan_forget(ids=[VICTIM])
    started = time.perf_counter()
    store.commit("bank", change)  # the delete, its event, the statistics and the erasure (truncation or VACUUM)
    forget_seconds = time.perf_counter() - started
    checkpoint(store)
    after_forget = where(directory, needles)
    started = time.perf_counter()
    store.compact()
    compact_seconds = time.perf_counter() - started
    after_compact = where(directory, needles)
    checkpoint(store, "SELECT pg_switch_wal()", "CHECKPOINT", "SELECT pg_switch_wal()")
    after_recycling = where(directory, needles)
    store.close()
    return [
        [f"**{title}**, {n:,} samples of {DIM} dimensions: the victim's bytes before its forget", before],
        ["forget one sample (commit + erasure), s", f"{forget_seconds:.2f}"],
        ["... its bytes after the forget (PostgreSQL: and a CHECKPOINT)", after_forget],
        ["compact (SQLite VACUUM; PostgreSQL VACUUM FULL + CHECKPOINT), s", f"{compact_seconds:.2f}"],
        ["... its bytes after compact", after_compact],
        ["... after two more WAL segments and checkpoints (PostgreSQL)", after_recycling],
    ]


def main(argv: list[str] | None = None) -> None:
    from common import ROOT, table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_003)
    args = parser.parse_args(argv)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as directory:
        rows += measure("SQLite", str(Path(directory) / "ledger.db"), Path(directory), args.samples)
    sys.path.insert(0, str(ROOT))
    from tests.postgres_server import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer().start()
    except PostgresUnavailable as error:
        rows.append(["PostgreSQL", f"not measured: {error}"])
    else:
        try:
            rows += measure("PostgreSQL", server.url(), server.data_dir, args.samples)
        finally:
            server.stop()
    report = table("Physical erasure: cost and residue", ["measure", "result"], rows)
    print(report)
    (ROOT / "benchmarks" / "results" / "erasure.md").write_text(report)


if __name__ == "__main__":
    main()

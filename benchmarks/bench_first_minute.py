"""A user's first minute on BANKING77, on the defaults, as whole commands (issue 16's targets).

Each line is the wall time of a fresh process or request, median of ``--repeats``:

* ``erasable learn`` of the 10,003 training vectors, then ``erasable predict MODEL test.npz``
  (target <= 2 s) and ``erasable forget MODEL --id X`` (target <= 5 s), process start included;
* ``erasable serve`` on a ledger holding that model: its first prediction after the server
  answers ``/health`` (target <= 2 s), and a second one;
* a text model (all-MiniLM-L6-v2): ``erasable predict --text`` against what importing torch
  and loading the encoder alone costs (target: <= 2 s beyond it), when the extra ``text`` is
  installed;
* ``python -c "import erasable.cli"``: the floor every command pays.

Writes ``benchmarks/results/first_minute.md``.

    python benchmarks/bench_first_minute.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import BANKING77, ROOT, SHARED_DATA, table
from erasable.client import Client

BIN = Path(sys.executable).parent
ERASABLE = str(BIN / "erasable")


def wall(*command: str | Path) -> float:
    """Seconds one command takes, start to exit; fails loudly if it fails."""
    start = time.perf_counter()
    subprocess.run([str(c) for c in command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_first_prediction(model: Path, folder: Path, probe: list[float]) -> tuple[float, float]:
    """(first, second) prediction latency of a server freshly started on a ledger holding ``model``."""
    store = folder / f"ledger-{time.monotonic_ns()}.db"
    subprocess.run(
        [ERASABLE, "ledger", "import", str(model), "--store", str(store), "--name", "bank"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    created = subprocess.run(
        [ERASABLE, "keys", "create", "--store", str(store), "--scope", "admin"],
        check=True,
        capture_output=True,
        text=True,
    )
    token = created.stdout.strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [ERASABLE, "serve", "--store", str(store), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Client(f"http://127.0.0.1:{port}", token, timeout=600.0) as client:
            for _ in range(600):
                try:
                    client.health()
                    break
                except Exception:  # not up yet
                    time.sleep(0.1)
            start = time.perf_counter()
            client.predict("bank", vectors=[probe])
            first = time.perf_counter() - start
            start = time.perf_counter()
            client.predict("bank", vectors=[probe])
            return first, time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not BANKING77.exists():
        sys.exit(f"BANKING77 embeddings not found at {BANKING77}.")
    data = np.load(BANKING77)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train, test = folder / "train.npz", folder / "test.npz"
        np.savez(train, X=data["X_train"], y=data["y_train"])
        np.savez(test, X=data["X_test"], y=data["y_test"])
        model = folder / "bank.erasable"
        floor = statistics.median(wall(sys.executable, "-c", "import erasable.cli") for _ in range(args.repeats))
        rows.append(["python -c 'import erasable.cli' (every command's floor)", f"{floor:.2f} s", "-"])
        rows.append(
            [
                "erasable learn bank.erasable train.npz (10,003 vectors)",
                f"{wall(ERASABLE, 'learn', model, train):.2f} s",
                "-",
            ]
        )
        predict = statistics.median(wall(ERASABLE, "predict", model, test) for _ in range(args.repeats))
        rows.append(["erasable predict bank.erasable test.npz (3,080 vectors)", f"{predict:.2f} s", "<= 2 s"])
        forgets = [wall(ERASABLE, "forget", model, "--id", str(i)) for i in range(args.repeats)]
        rows.append(["erasable forget bank.erasable --id X", f"{statistics.median(forgets):.2f} s", "<= 5 s"])
        served = [server_first_prediction(model, folder, data["X_test"][0].tolist()) for _ in range(args.repeats)]
        rows.append(
            [
                "server: first prediction after /health answers",
                f"{statistics.median(s[0] for s in served):.2f} s",
                "<= 2 s",
            ]
        )
        rows.append(["server: the next prediction", f"{statistics.median(s[1] for s in served) * 1000:.0f} ms", "-"])
        texts = SHARED_DATA / "banking77" / "train.csv"
        if importlib.util.find_spec("sentence_transformers") and texts.exists():
            startup = statistics.median(
                wall(
                    sys.executable,
                    "-c",
                    "from erasable.encoders import load_encoder; load_encoder('text').encode(['x'])",
                )
                for _ in range(args.repeats)
            )
            text_model = folder / "text.erasable"
            head = folder / "head.csv"
            head.write_text(
                "".join(texts.read_text().splitlines(keepends=True)[:2001])
            )  # 2,000 texts: seconds to encode
            wall(
                ERASABLE,
                "learn",
                text_model,
                head,
                "--encoder",
                "text",
                "--text-column",
                "text",
                "--label-column",
                "category",
            )
            text = statistics.median(
                wall(ERASABLE, "predict", text_model, "--text", "my card was declined") for _ in range(args.repeats)
            )
            rows.append(
                ["import torch + load all-MiniLM-L6-v2 + encode one text", f"{startup:.2f} s", "(measured apart)"]
            )
            rows.append(
                [
                    "erasable predict TEXT_MODEL --text '...' (2,000-text model)",
                    f"{text:.2f} s",
                    f"{text - startup:+.2f} s beyond the encoder's start-up (<= 2 s)",
                ]
            )
    report = table(
        f"First minute on BANKING77, defaults, median of {args.repeats} (cpus: {os.cpu_count()})",
        ["what", "wall time", "target"],
        rows,
    )
    print(report)
    (ROOT / "benchmarks" / "results" / "first_minute.md").write_text(report)


if __name__ == "__main__":
    main()

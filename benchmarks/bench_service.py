"""The HTTP service on this machine: predict throughput and latency, learn throughput, forget latency.

A local ``erasable serve`` (SQLite ledger, one uvicorn process) answers clients running
as asyncio tasks in this process; everything shares the machine's 2 cores, so the client's
own work is part of every number. In the same run the library calls are timed for the same
work, so the table reports what the HTTP layer and the ledger cost as ratios.

Run: ``python benchmarks/bench_service.py`` (``--quick`` for a short check). Results go to
``benchmarks/results/service.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from common import BANKING77, ROOT, SHARED_DATA, median_time, table, timed
from crash_test import crash_iterations
from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.model import Model, ModelConfig
from erasable.service.process import ServerProcess

BATCH = 500


def load_data(quick: bool) -> tuple[np.ndarray, list[str], list[str]]:
    """BANKING77 embeddings, labels and texts (a subset with ``quick``)."""
    import csv

    with np.load(BANKING77) as data:
        x, y = data["X_train"].astype(np.float64), [str(v) for v in data["y_train"]]
    with (SHARED_DATA / "banking77" / "train.csv").open() as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    n = 2000 if quick else len(y)
    return x[:n], y[:n], texts[:n]


async def _clients(url: str, headers: dict[str, str], bodies: list[dict[str, Any]], concurrency: int) -> list[float]:
    """Send ``bodies`` as predict requests from ``concurrency`` clients; the latency of each, in seconds."""
    latencies: list[float] = []
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as http:

        async def client() -> None:
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                response = await http.post(url, json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


def predict_rows(url: str, headers: dict[str, str], bodies: list[dict[str, Any]], label: str) -> list[list[str]]:
    rows = []
    for concurrency in (1, 8, 32):
        asyncio.run(_clients(url, headers, bodies[:concurrency], concurrency))  # warm up connections and caches
        start = time.perf_counter()
        latencies = asyncio.run(_clients(url, headers, bodies, concurrency))
        elapsed = time.perf_counter() - start
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        rows.append([label, str(concurrency), f"{len(bodies) / elapsed:.0f}", f"{p50:.1f}", f"{p99:.1f}"])
    return rows


def packed(vector: np.ndarray) -> str:
    """A vector as the API's ``vector_base64``: base64 of its little-endian float32 values."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.0f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def ratio(api: float, library: float) -> str:
    return f"{api / library:.1f}×"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples and requests")
    parser.add_argument("--crash-iterations", type=int, default=20)
    args = parser.parse_args(argv)
    x, y, texts = load_data(args.quick)
    requests = 200 if args.quick else 1000
    report = []
    with tempfile.TemporaryDirectory() as directory:
        store = LedgerStore(Path(directory) / "ledger.db")
        token, _ = KeyRing(store).create(scopes=["admin"])
        store.close()
        headers = {"Authorization": f"Bearer {token}"}
        with ServerProcess(Path(directory) / "ledger.db") as server:
            http = httpx.Client(base_url=server.url, headers=headers, timeout=600)
            http.post("/v1/models", json={"name": "vectors", "input_dim": x.shape[1]}).raise_for_status()

            # learn: the API (JSON + ledger transaction + apply) vs the library call on the same batches
            batches = [range(s, min(s + BATCH, len(y))) for s in range(0, len(y), BATCH)]
            bodies = [
                {"samples": [{"id": str(i), "label": y[i], "vector": x[i].tolist()} for i in rows]} for rows in batches
            ]
            api_learn = sum(timed(lambda b=b: http.post("/v1/models/vectors/learn", json=b)) for b in bodies)
            library = Model(ModelConfig.from_dict(http.get("/v1/models/vectors").json()["config"]))
            lib_learn = sum(
                timed(lambda r=r: library.learn(x[r.start : r.stop], y[r.start : r.stop], ids=[str(i) for i in r]))
                for r in batches
            )
            assert http.get("/v1/models/vectors").json()["certificate"] == library.certificate()

            # the same batches with packed vectors (base64 of float32: no decimals to parse)
            http.post("/v1/models", json={"name": "packed", "input_dim": x.shape[1]}).raise_for_status()
            packed_bodies = [
                {"samples": [{"id": str(i), "label": y[i], "vector_base64": packed(x[i])} for i in rows]}
                for rows in batches
            ]
            api_packed = sum(timed(lambda b=b: http.post("/v1/models/packed/learn", json=b)) for b in packed_bodies)
            assert http.get("/v1/models/packed").json()["certificate"] == library.certificate()

            # forget one sample: the API (plan + transaction + WAL checkpoint + apply) vs the library
            doomed = [str(i) for i in range(40)]
            api_forget = statistics.median(
                timed(lambda i=i: http.post("/v1/models/vectors/forget", json={"ids": [i]}).raise_for_status())
                for i in doomed[:20]
            )
            lib_forget = statistics.median(timed(lambda i=i: library.forget(ids=[i])) for i in doomed[:20])
            api_predict_one = median_time(
                lambda: http.post("/v1/models/vectors/predict", json={"vectors": [x[100].tolist()]}), 20
            )
            query = x[100:101]
            lib_predict_one = median_time(lambda: (library.predict_proba(query), library.ood_score(query)), 20)

            vector_bodies = [{"vectors": [x[i % len(y)].tolist()]} for i in range(requests)]
            rows = predict_rows(f"{server.url}/v1/models/vectors/predict", headers, vector_bodies, "vectors (384-d)")

            http.post("/v1/models", json={"name": "texts", "encoder": "text"}).raise_for_status()
            n_text = 500 if args.quick else 2000
            for start in range(0, n_text, BATCH):
                samples = [{"id": str(i), "label": y[i], "text": texts[i]} for i in range(start, start + BATCH)]
                http.post("/v1/models/texts/learn", json={"samples": samples}).raise_for_status()
            text_bodies = [{"texts": [texts[-1 - (i % 500)]]} for i in range(requests // 4)]
            rows += predict_rows(f"{server.url}/v1/models/texts/predict", headers, text_bodies, "raw text (MiniLM)")
            http.close()

    report.append(
        table(
            "Predict through the API (one input per request, local server, clients on the same 2 cores)",
            ["inputs", "concurrent clients", "requests/s", "p50 ms", "p99 ms"],
            rows,
        )
    )
    report.append(
        table(
            f"API vs library, same run ({len(y)} BANKING77 embeddings, batches of {BATCH})",
            ["operation", "API", "library", "API / library"],
            [
                ["learn, samples/s", rate(len(y), api_learn), rate(len(y), lib_learn), ratio(api_learn, lib_learn)],
                [
                    "learn, samples/s, packed vectors (vector_base64)",
                    rate(len(y), api_packed),
                    rate(len(y), lib_learn),
                    ratio(api_packed, lib_learn),
                ],
                ["forget 1 sample, ms (median of 20)", ms(api_forget), ms(lib_forget), ratio(api_forget, lib_forget)],
                [
                    "predict 1 input, ms (median of 20)",
                    ms(api_predict_one),
                    ms(lib_predict_one),
                    ratio(api_predict_one, lib_predict_one),
                ],
            ],
        )
    )
    if args.crash_iterations:
        with tempfile.TemporaryDirectory() as directory:
            outcomes = crash_iterations(Path(directory), args.crash_iterations)
        survived = sum(o.verified and o.nothing_lost for o in outcomes)
        report.append(
            table(
                "Crash test (SIGKILL at a random point, restart, verify)",
                [
                    "iterations",
                    "survived (chain verified, nothing acknowledged lost)",
                    "requests acknowledged",
                    "kills with a request in flight",
                ],
                [
                    [
                        str(len(outcomes)),
                        f"{survived} / {len(outcomes)}",
                        str(sum(o.requests_acknowledged for o in outcomes)),
                        str(sum(o.in_flight != "none" for o in outcomes)),
                    ]
                ],
            )
        )
    text = "\n".join(report)
    print(text)
    (ROOT / "benchmarks" / "results" / "service.md").write_text(text)


if __name__ == "__main__":
    main()

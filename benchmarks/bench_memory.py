"""Visual-memory benchmarks (issue 4), all in one run.

* accuracy -- memory (voting chosen by leave-one-out), ridge (random ReLU features, GCV
              alpha) and their hybrid (mixing weight chosen on a 10% validation split of
              the training set) on BANKING77 (shared MiniLM embeddings), Fashion-MNIST
              (raw pixels, unit-normalized) and the first 6,000 / 1,000 Fashion-MNIST
              images embedded by EfficientNet-Lite0 (cached under ``--cache-dir``);
* pruning  -- test accuracy of the memory after hard pruning (leave-one-out wrong, or
              misleading samples removed) and soft pruning (reliability weights);
* scale    -- erasable's memory against raw FAISS in the same run, on 384-d vectors made
              by replicating BANKING77 embeddings with small noise: add throughput, search
              queries/s (k=10), delete latency, memory footprint per vector. Flat index at
              100k vectors, IVF (the automatic choice) at 1M.

Timings are medians over repeats (the machine is shared and noisy). Prints Markdown tables
and writes them to ``benchmarks/results/memory.md``.

    python benchmarks/bench_memory.py [--repeats 3] [--sizes 100000 1000000] [--skip-accuracy]
        [--image-subset 6000 1000] [--cache-dir /tmp/erasable-bench-cache]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from common import BANKING77, ROOT, SHARED_DATA, median_time, median_times, table
from erasable.encoders import ImageEncoder, encode_batched
from erasable.estimator import ErasableClassifier
from erasable.exact import quantize
from erasable.heads.hybrid import align, choose_weight, mix
from erasable.heads.memory import IVF_THRESHOLD, MemoryHead, unit_rows
from erasable.io import Dataset, read_mnist_folder
from erasable.memory_analysis import hard_prune, soft_prune
from erasable.model import Model

SCALE_BITS = 13
DELETE_SIZES = (1, 100, 10_000)
#: FAISS's bundled stubs cover little of its SWIG API.
faiss: Any = _faiss


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------------


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def load_banking77() -> dict[str, np.ndarray]:
    with np.load(BANKING77) as data:
        return {key: data[key] for key in ("X_train", "y_train", "X_test", "y_test")}


def fashion_mnist() -> tuple[Dataset, Dataset]:
    folder = SHARED_DATA / "fashion-mnist"
    return read_mnist_folder(folder, "train"), read_mnist_folder(folder, "test")


def load_fashion_mnist() -> dict[str, np.ndarray]:
    """All 60,000 / 10,000 images as unit-norm pixel vectors."""
    train, test = fashion_mnist()
    return {
        "X_train": unit(np.asarray(train.items)),
        "y_train": np.asarray(train.labels, dtype=np.int64),
        "X_test": unit(np.asarray(test.items)),
        "y_test": np.asarray(test.labels, dtype=np.int64),
    }


def load_fashion_mnist_encoded(cache_dir: Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """EfficientNet-Lite0 embeddings of the first images (~34 s per 1,000 on 2 cores; cached in ``cache_dir``)."""
    train, test = fashion_mnist()
    encoder = ImageEncoder()
    embed = partial(encode_batched, encoder, cache_dir=cache_dir)
    return {
        "X_train": unit(embed(np.asarray(train.items)[:n_train])),
        "y_train": np.asarray(train.labels, dtype=np.int64)[:n_train],
        "X_test": unit(embed(np.asarray(test.items)[:n_test])),
        "y_test": np.asarray(test.labels, dtype=np.int64)[:n_test],
    }


# -- accuracy, hybrid, pruning -------------------------------------------------------------------------


class Heads:
    """A memory and a ridge model on the same training samples."""

    def __init__(self, x: np.ndarray, y: np.ndarray, width: int) -> None:
        self.model = Model(ErasableClassifier(width=width, scale_bits=SCALE_BITS).model_config(x.shape[1]))
        self.model.learn(x, y)
        self.memory = MemoryHead.from_registry(self.model.registry)

    def probabilities(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Memory and ridge probabilities, both over the model's classes."""
        queries = self.model.quantize(x, saturate=True).astype(np.float64)
        p_memory = align(self.memory.predict_proba(queries), self.memory.classes, self.model.classes)
        return p_memory, self.model.predict_proba(x, "ridge")


def accuracy(p: np.ndarray, classes: tuple, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(classes)[p.argmax(axis=1)] == y))


def bench_accuracy(name: str, data: dict[str, np.ndarray], width: int) -> tuple[str, Heads]:
    x, y = data["X_train"], data["y_train"]
    order = np.random.default_rng(0).permutation(len(y))
    validation, fit = order[: len(y) // 10], order[len(y) // 10 :]
    log(f"{name}: hybrid weight on a validation split")
    split = Heads(x[fit], y[fit], width)
    p_memory, p_ridge = split.probabilities(x[validation])
    truth = np.searchsorted(np.asarray(split.model.classes), y[validation])
    weight, _ = choose_weight(p_memory, p_ridge, truth)
    log(f"{name}: full training set")
    heads = Heads(x, y, width)
    p_memory, p_ridge = heads.probabilities(data["X_test"])
    classes = heads.model.classes
    results = {
        "memory": accuracy(p_memory, classes, data["y_test"]),
        "ridge": accuracy(p_ridge, classes, data["y_test"]),
        "hybrid": accuracy(mix(p_memory, p_ridge, weight), classes, data["y_test"]),
    }
    best_single = max(results["memory"], results["ridge"])
    rows = [[head, f"{acc:.4f}"] for head, acc in results.items()]
    title = (
        f"{name}: test accuracy (n_train={len(y)}, memory voting {heads.memory.voting}, "
        f"ridge D={width}, hybrid weight on memory {weight:.2f}: "
        f"{'beats' if results['hybrid'] > best_single else 'does not beat'} both)"
    )
    return table(title, ["head", "accuracy"], rows), heads


def bench_pruning(name: str, heads: Heads, data: dict[str, np.ndarray]) -> str:
    registry = heads.model.registry
    queries = heads.model.quantize(data["X_test"], saturate=True).astype(np.float64)

    def test_accuracy(memory: MemoryHead) -> float:
        return float(np.mean(memory.predict(queries) == data["y_test"]))

    base = test_accuracy(heads.memory)
    rows = [["none", str(len(registry)), heads.memory.voting.aggregation, f"{base:.4f}", "-"]]
    for criterion in ("wrong", "misleading"):
        log(f"{name}: hard pruning ({criterion})")
        memory = MemoryHead.from_registry(registry)
        memory.remove(hard_prune(memory, criterion))
        acc = test_accuracy(memory)
        rows.append([f"hard ({criterion})", str(len(memory)), str(memory.voting), f"{acc:.4f}", f"{acc - base:+.4f}"])
    log(f"{name}: soft pruning")
    memory = MemoryHead.from_registry(registry)
    soft_prune(memory)
    acc = test_accuracy(memory)
    rows.append(["soft (reliability)", str(len(memory)), str(memory.voting), f"{acc:.4f}", f"{acc - base:+.4f}"])
    rows[0][2] = str(heads.memory.voting)
    return table(f"{name}: memory pruning", ["pruning", "memory size", "voting (LOO)", "test accuracy", "change"], rows)


# -- scale against raw FAISS ---------------------------------------------------------------------------


def replicated(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` unit vectors: real embeddings plus Gaussian noise (sigma 0.02 per coordinate)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        block = base[rng.integers(0, len(base), stop - start)] + rng.normal(0, 0.02, (stop - start, base.shape[1]))
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def raw_index(e_q: np.ndarray, kind: str) -> Any:
    """What a FAISS user would build for cosine search over the same stored embeddings: convert and
    normalize (``faiss.normalize_L2``), then a flat index, or an IVF with erasable's parameters."""
    vectors = e_q.astype(np.float32)
    faiss.normalize_L2(vectors)
    if kind == "flat":
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return index
    nlist = int(np.clip(2 ** round(np.log2(np.sqrt(len(vectors)))), 1, 4096))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    sample = np.unique(np.linspace(0, len(vectors) - 1, min(len(vectors), 40 * nlist)).astype(np.int64))
    index.train(vectors[sample])
    index.nprobe = 16
    index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    return index


def timed_builds(builds: Sequence[Callable[[], Any]], repeats: int) -> tuple[list[Any], list[float]]:
    """The last of ``repeats`` builds of each, and their median times.

    The builds take turns (see ``common.median_times``); each replaces its previous one,
    which is freed first.
    """
    built: list[Any] = [None] * len(builds)
    times: list[list[float]] = [[] for _ in builds]
    for _ in range(repeats):
        for i, build in enumerate(builds):
            built[i] = None
            start = time.perf_counter()
            built[i] = build()
            times[i].append(time.perf_counter() - start)
    return built, [statistics.median(record) for record in times]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def footprint(memory: MemoryHead) -> float:
    """Bytes per vector held by the memory: index, arrays, id strings, list and dictionary."""
    ids = memory._ids
    strings = sum(sys.getsizeof(i) for i in ids.tolist()) + ids.nbytes + sys.getsizeof(memory._key_of)
    return (memory.nbytes() + strings) / len(memory)


def delete_latencies(memory: MemoryHead, raw: Any, repeats: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Median seconds to delete 1, 100 and 10,000 samples from the memory and from raw FAISS, in turn."""
    results = []
    trained = set(memory._store.trained_on.tolist()) if memory.index_type == "ivf" else set()
    for size in DELETE_SIZES:
        ours, theirs = [], []
        for _ in range(repeats):
            rows = rng.choice(len(memory), size, replace=False)
            rows = np.array([r for r in rows if int(memory._keys[r]) not in trained])
            ids = [memory._ids[r] for r in rows]
            # raw FAISS ids: positions (flat: which vectors go does not change the cost of its
            # compaction) or the original numbers (IVF: the memory's keys stay with their vectors)
            positions = rows.astype(np.int64) if memory.index_type == "flat" else memory._keys[rows]
            start = time.perf_counter()
            memory.remove(ids)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw.remove_ids(positions)
            theirs.append(time.perf_counter() - start)
        results.append((statistics.median(ours), statistics.median(theirs)))
    return results


def retrain_latency(memory: MemoryHead) -> float:
    """Seconds to forget one sample the IVF centroids were computed from (the index is rebuilt)."""
    key = int(memory._store.trained_on[len(memory._store.trained_on) // 2])
    row = int(memory._row_of_key[key])
    start = time.perf_counter()
    memory.remove([memory._ids[row]])
    return time.perf_counter() - start


def bench_scale_one(base: np.ndarray, n: int, repeats: int) -> tuple[list[str], list[str]]:
    kind = "ivf" if n > IVF_THRESHOLD else "flat"
    log(f"scale n={n} ({kind})")
    vectors = replicated(base, n, seed=n)
    e_q = quantize(vectors, SCALE_BITS)
    del vectors
    ids = [f"id{i}" for i in range(n)]
    labels = np.random.default_rng(1).integers(0, 77, n)
    queries_q = quantize(replicated(base, 1000, seed=7), SCALE_BITS).astype(np.float64)
    queries = unit_rows(queries_q)
    add_repeats = repeats if n <= IVF_THRESHOLD else 1

    before = rss_bytes()
    memory = MemoryHead.from_samples(ids, e_q, labels)
    rss_ours = (rss_bytes() - before) / n
    del memory
    (memory, raw), (ours_add, raw_add) = timed_builds(
        [lambda: MemoryHead.from_samples(ids, e_q, labels), lambda: raw_index(e_q, kind)], add_repeats
    )
    ours_search, raw_search = median_times(
        [lambda: memory.search(queries_q, 10), lambda: raw.search(queries, 10)], repeats
    )
    voting_time = median_time(lambda: memory.voting, 1)
    ours_predict = median_time(lambda: memory.predict(queries_q), repeats)
    recall = float(
        np.mean(
            [
                len(set(a) & set(b)) / 10
                for a, b in zip(raw.search(queries, 10)[1], memory.search(queries_q, 10)[1], strict=True)
            ]
        )
    )
    per_vector = footprint(memory)
    raw_bytes = (raw.ntotal * raw.code_size + (8 * raw.ntotal if kind == "ivf" else 0)) / n
    deletes = delete_latencies(memory, raw, repeats, np.random.default_rng(2))
    retrain = f"{retrain_latency(memory):.2f} s" if kind == "ivf" else "-"
    row = [
        f"{n:,}",
        kind,
        f"{n / ours_add:,.0f} / {n / raw_add:,.0f} ({ours_add / raw_add:.2f}x)",
        f"{1000 / ours_search:,.0f} / {1000 / raw_search:,.0f} ({ours_search / raw_search:.2f}x)",
        f"{1000 / ours_predict:,.0f}",
        *(f"{ours * 1e3:.2f} / {theirs * 1e3:.2f} ms ({ours / theirs:.2f}x)" for ours, theirs in deletes),
        retrain,
    ]
    memory_row = [
        f"{n:,}",
        kind,
        f"{per_vector:,.0f}",
        f"{raw_bytes:,.0f}",
        f"{rss_ours:,.0f}",
        f"{recall:.3f}",
        f"{voting_time:.1f} s",
    ]
    return row, memory_row


def bench_scale(base: np.ndarray, sizes: list[int], repeats: int) -> str:
    rows, memory_rows = [], []
    for n in sizes:
        row, memory_row = bench_scale_one(base, n, repeats)
        rows.append(row)
        memory_rows.append(memory_row)
    speed = table(
        "Scale: erasable memory / raw FAISS (384-d; ratio = erasable time / FAISS time, target <= 1.2)",
        [
            "vectors",
            "index",
            "add vectors/s",
            "search q/s (k=10)",
            "predict q/s",
            *(f"delete {size:,}" for size in DELETE_SIZES),
            "forget a centroid sample",
        ],
        rows,
    )
    space = table(
        "Memory per vector (bytes) and search agreement",
        [
            "vectors",
            "index",
            "erasable (accounted)",
            "raw FAISS index",
            "erasable (RSS growth)",
            "top-10 agreement with raw",
            "voting selection (LOO)",
        ],
        memory_rows,
    )
    return speed + "\n" + space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=2048, help="random ReLU features of the ridge head")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--image-subset",
        type=int,
        nargs=2,
        default=[6000, 1000],
        metavar=("TRAIN", "TEST"),
        help="Fashion-MNIST images embedded by EfficientNet-Lite0 (0 0 to skip)",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/erasable-bench-cache"), help="embedding cache")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory.md")
    args = parser.parse_args()

    sections = []
    banking77 = load_banking77()
    if not args.skip_accuracy:
        n_train, n_test = args.image_subset
        datasets: list[tuple[str, Callable[[], dict[str, np.ndarray]]]] = [
            ("BANKING77", lambda: banking77),
            ("Fashion-MNIST pixels", load_fashion_mnist),
        ]
        if n_train:
            datasets.append(
                (
                    f"Fashion-MNIST EfficientNet-Lite0 (first {n_train:,} / {n_test:,})",
                    partial(load_fashion_mnist_encoded, args.cache_dir, n_train, n_test),
                )
            )
        for name, loader in datasets:
            log(f"{name}: data")
            data = loader()
            accuracy_table, heads = bench_accuracy(name, data, args.width)
            sections += [accuracy_table, bench_pruning(name, heads, data)]
            print("\n".join(sections[-2:]), flush=True)
    sections.append(bench_scale(banking77["X_train"].astype(np.float32), args.sizes, args.repeats))
    print(sections[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = f"## Visual memory (faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads)\n\n"
    args.out.write_text(header + "\n".join(sections))


if __name__ == "__main__":
    main()

"""erasable's default against what a user would pick instead, on the same inputs, in one run (issue 16).

Datasets: BANKING77 and HWU64 (the shared all-MiniLM-L6-v2 embeddings) and Fashion-MNIST
(pixels scaled to unit norm; the first ``--fm-train`` training images, all 10,000 test
images). Methods, each with its defaults unless named:

* ``erasable`` -- ``ErasableClassifier()``: what the library, ``erasable learn`` and the
  service build from nothing;
* ``erasable, head="kernel"`` -- the arc-cosine kernel head (the features' infinite-width
  limit, solved from the samples: :mod:`erasable.heads.kernel`);
* ``LogisticRegression(C=10)`` -- a fixed C, the issue's reference;
* ``LogisticRegression, C by CV`` -- C chosen by 3-fold cross-validation on the training set
  among 1, 3, 10, 30, 100 (the search is timed separately; its refit is the model);
* ``RidgeClassifierCV`` -- on the embeddings themselves, alpha by efficient leave-one-out;
* ``kNN`` -- ``KNeighborsClassifier(10, metric="cosine", weights="distance")``.

Measured: test accuracy; time to the first prediction (fit + ``predict`` of one sample) in
process (median of ``--repeats``) and as a fresh ``python`` process (imports and data
loading included; median of 2, with its peak RSS); fit + predict of the test set on a
100-sample subset; predict throughput on the test set; the size of the fitted model (its
saved file for erasable, its fitted arrays for the others). Ratios are the other method
over erasable (> 1: erasable is faster or smaller). Writes ``benchmarks/results/vs_sklearn.md``.

    python benchmarks/bench_vs_sklearn.py [--repeats 3] [--fm-train 20000] [--datasets banking77,hwu64,fashion-mnist]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier

from common import ROOT, SHARED_DATA, table
from erasable.estimator import ErasableClassifier
from erasable.io import read_idx

C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
METHODS: dict[str, Callable[[], Any]] = {
    "erasable": ErasableClassifier,
    'erasable, head="kernel"': lambda: ErasableClassifier(head="kernel"),
    "LogisticRegression(C=10)": lambda: LogisticRegression(C=10.0, max_iter=2000),
    "RidgeClassifierCV": RidgeClassifierCV,
    "kNN (k=10, cosine)": lambda: KNeighborsClassifier(10, metric="cosine", weights="distance"),
}
CV_METHOD = "LogisticRegression, C by CV"


def load(name: str, fm_train: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)`` of a shared dataset."""
    if name == "fashion-mnist":
        folder = SHARED_DATA / "fashion-mnist"

        def images(stem: str) -> np.ndarray:
            pixels = read_idx(folder / f"{stem}-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32)
            return pixels / np.linalg.norm(pixels, axis=1, keepdims=True)

        x, y = images("train")[:fm_train], read_idx(folder / "train-labels-idx1-ubyte.gz")[:fm_train]
        return x, y.astype(np.int64), images("t10k"), read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    data = np.load(SHARED_DATA / name / "all-MiniLM-L6-v2.npz")
    return data["X_train"], data["y_train"], data["X_test"], data["y_test"]


def model_bytes(model: Any) -> int:
    """Bytes of a fitted model: erasable's saved file, the others' fitted arrays (what a file must hold)."""
    if isinstance(model, ErasableClassifier):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.erasable"
            model.save(path)
            return path.stat().st_size
    if isinstance(model, GridSearchCV):
        model = model.best_estimator_
    return sum(v.nbytes for v in vars(model).values() if isinstance(v, np.ndarray))


def first_prediction(method: str, x: np.ndarray, y: np.ndarray, probe: np.ndarray) -> tuple[float, Any]:
    """Seconds from nothing to one prediction in this process, and the fitted model."""
    start = time.perf_counter()
    model = METHODS[method]().fit(x, y)
    model.predict(probe[:1])
    return time.perf_counter() - start, model


def fresh_process(method: str, dataset: str, fm_train: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a new ``python`` that loads the data, fits and predicts once."""
    command = [sys.executable, __file__, "--one", method, "--datasets", dataset, "--fm-train", str(fm_train)]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, cwd=ROOT / "benchmarks", capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, int(done.stdout.split()[-1]) / 1024  # the child's own high-water mark, in kB


def high_water_kb() -> int:
    """This process's peak resident memory (``VmHWM``: reset by exec, unlike ``ru_maxrss``), in kB."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def subset(y: np.ndarray, size: int) -> np.ndarray:
    """Indices of ``size`` training samples, round-robin over the classes (every class present if it can be)."""
    rng = np.random.default_rng(0)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    order = [rows[i] for i in range(max(map(len, per_class))) for rows in per_class if i < len(rows)]
    return np.array(order[:size])


def bench_dataset(name: str, repeats: int, fm_train: int) -> str:
    x, y, xt, yt = load(name, fm_train)
    rows: dict[str, dict[str, float]] = {}
    small = subset(y, 100)
    for method in METHODS:
        times, fitted = zip(*(first_prediction(method, x, y, xt) for _ in range(repeats)), strict=True)
        model = fitted[-1]
        predict_time = statistics.median(_timed(lambda m=model: m.predict(xt)) for _ in range(repeats))
        small_time = statistics.median(
            _timed(lambda m=method: METHODS[m]().fit(x[small], y[small]).predict(xt)) for _ in range(repeats)
        )
        fresh = [fresh_process(method, name, fm_train) for _ in range(2)]
        rows[method] = {
            "accuracy": float(np.mean(model.predict(xt) == yt)),
            "first": statistics.median(times),
            "fresh": statistics.median(f[0] for f in fresh),
            "rss": max(f[1] for f in fresh),
            "small": small_time,
            "throughput": len(xt) / predict_time,
            "bytes": model_bytes(model),
        }
    search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(C_GRID)}, cv=3, n_jobs=1)
    search_time = _timed(lambda: search.fit(x, y))
    best_c = search.best_params_["C"]
    rows[CV_METHOD] = {
        "accuracy": float(np.mean(search.predict(xt) == yt)),
        "first": search_time,
        "bytes": model_bytes(search),
    }
    ours = rows["erasable"]

    def ratio(value: float | None, base: float) -> str:
        return "—" if value is None else f"{value / base:.2f}×"

    out = []
    for method, r in rows.items():
        label = f"{method} (C={best_c:g}; the search)" if method == CV_METHOD else method
        out.append(
            [
                label,
                f"{r['accuracy']:.2%}",
                f"{(r['accuracy'] - ours['accuracy']) * 100:+.2f}",
                f"{r['first']:.2f} s ({ratio(r['first'], ours['first'])})",
                f"{r['fresh']:.2f} s ({ratio(r['fresh'], ours['fresh'])})" if "fresh" in r else "—",
                f"{r['rss']:.0f} MB" if "rss" in r else "—",
                f"{r['small']:.3f} s ({ratio(r['small'], ours['small'])})" if "small" in r else "—",
                f"{r['throughput']:,.0f}/s ({ratio(ours['throughput'], r['throughput'])})"
                if "throughput" in r
                else "—",
                f"{r['bytes'] / 1e6:.1f} MB",
            ]
        )
    return table(
        f"{name}: {len(y):,} train / {len(yt):,} test, d={x.shape[1]} (repeats {repeats})",
        [
            "method",
            "test accuracy",
            "points vs erasable",
            "fit + first predict (ratio to erasable)",
            "fresh process",
            "peak RSS",
            "100 samples: fit + predict test",
            "predict throughput (erasable's / this)",
            "model size",
        ],
        out,
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fm-train", type=int, default=20000, help="Fashion-MNIST training images used.")
    parser.add_argument("--datasets", default="banking77,hwu64,fashion-mnist")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a fresh process's single first prediction
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # clipping warnings of Fashion-MNIST's bright pixels
    names = args.datasets.split(",")
    if args.one:
        x, y, xt, _ = load(names[0], args.fm_train)
        first_prediction(args.one, x, y, xt)
        print(high_water_kb())
        return
    missing = [n for n in names if not (SHARED_DATA / n).exists()]
    if missing:
        sys.exit(f"Missing shared data: {missing} (expected under {SHARED_DATA}).")
    report = [
        "Same machine, same run, 2 cores shared with other work: read the ratios. "
        f"numpy threads: {os.environ.get('OMP_NUM_THREADS', 'default')}.\n"
    ]
    for name in names:
        report.append(bench_dataset(name, args.repeats, args.fm_train))
        print(report[-1], flush=True)
    (ROOT / "benchmarks" / "results" / "vs_sklearn.md").write_text("\n".join(report))


if __name__ == "__main__":
    main()

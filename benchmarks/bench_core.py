"""Core engine benchmarks on the shared BANKING77 embeddings (issue 2), all in one run.

* ingest   -- learn throughput vs the roofline of its largest product (the int8 Gram of the same
              features by ONNX Runtime), with float32 and float64 SYRK of them, the default's learn
              with the int8 Gram switched off and the int16 features of before beside;
* derive   -- the canonical ridge head (penalty by GCV + solve) against the derivation before
              issue 16 (eigendecomposition with vectors, Cholesky, D x D inverse), same statistics;
* forget   -- latency of forgetting 1 and 100 samples vs a refit from scratch; canonical refresh;
* accuracy -- the three heads; 7 class-incremental phases vs joint fitting (certificates);
* baseline -- recursive least squares with Woodbury updates (ACIL's formulation, batch 4096)
              vs erasable's accumulate-then-solve: time ratio and agreement of predictions.

Timings are medians over repeats (the machine is shared and noisy). Prints Markdown tables
and writes them to ``benchmarks/results/core.md``.

    python benchmarks/bench_core.py [--data PATH] [--repeats 5] [--width 4096]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from common import BANKING77, ROOT, median_time, median_times, table
from erasable.estimator import ErasableClassifier
from erasable.heads import RidgeHead
from erasable.heads.gcv import gcv_alpha
from erasable.heads.ridge import _target_energy, centered_moments
from erasable.integer_gram import integer_gram
from erasable.model import Model
from erasable.moments import Moments


def without_integer_gram(fn: Callable[[], object]) -> object:
    """``fn()`` with the int8 Gram switched off, as ``ERASABLE_INTEGER_GRAM=0`` does for a process."""
    before = os.environ.get("ERASABLE_INTEGER_GRAM")
    os.environ["ERASABLE_INTEGER_GRAM"] = "0"
    try:
        return fn()
    finally:
        if before is None:
            del os.environ["ERASABLE_INTEGER_GRAM"]
        else:
            os.environ["ERASABLE_INTEGER_GRAM"] = before


def bench_ingest(x: np.ndarray, y: np.ndarray, width: int, repeats: int) -> str:
    configs = {
        "erasable learn, 6-bit features (default)": ErasableClassifier(width=width).model_config(x.shape[1]),
        "erasable learn, int16 features (before)": ErasableClassifier(width=width, feature_bits=15).model_config(
            x.shape[1]
        ),
    }
    default = Model(configs["erasable learn, 6-bit features (default)"])
    features = default.features(default.quantize(x)).astype(np.float32)  # the rows the default's Gram sees
    features64 = features.astype(np.float64)
    features8 = features.astype(np.int8)
    limit_name = "int8 Gram of the features, ONNX Runtime (the limit)"
    rooflines = {
        limit_name: lambda: integer_gram(features8),
        "float32 SYRK of the feature Gram": lambda: blas.ssyrk(1.0, features.T, trans=0, lower=0),
        "float64 SYRK of the feature Gram": lambda: blas.dsyrk(1.0, features64.T, trans=0, lower=0),
    }
    paths = {**rooflines, **{name: (lambda c=c: Model(c).learn(x, y)) for name, c in configs.items()}}
    default_config = configs["erasable learn, 6-bit features (default)"]
    paths["erasable learn, 6-bit features, ERASABLE_INTEGER_GRAM=0 (float32 SYRK)"] = lambda: without_integer_gram(
        lambda: Model(default_config).learn(x, y)
    )
    times = dict(zip(paths, median_times(list(paths.values()), repeats), strict=True))
    limit = times[limit_name]
    n = x.shape[0]
    return table(
        f"Ingest: {n} samples, d={x.shape[1]} -> D={width} random ReLU features",
        ["path", "seconds", "samples/s", "limit / path"],
        [[name, f"{t:.3f}", f"{n / t:,.0f}", f"{limit / t:.2f}"] for name, t in times.items()],
    )


@dataclass(frozen=True)
class EigenSpectrum:
    """GCV's inputs from the eigen-system of ``A``: eigenvalues ``w`` and energies ``e_i = ||v_i^T B||^2``."""

    eigenvalues: np.ndarray
    energies: np.ndarray
    dim: int

    def residual(self, lambdas: np.ndarray, target_energy: float) -> np.ndarray:
        """``||Y_c||^2 - sum_i e_i (w_i + 2 lambda) / (w_i + lambda)^2``."""
        shifted = self.eigenvalues + lambdas[:, None]
        fit = self.energies * (self.eigenvalues + 2 * lambdas[:, None]) / shifted**2
        return np.asarray(target_energy - fit.sum(axis=1))


def eigendecomposition_head(moments: Moments, unit: float) -> tuple[float, np.ndarray]:
    """The derivation before issue 16: GCV on all features from ``eigh`` with vectors, Cholesky, ``dpotri``."""
    gram, cross, _ = centered_moments(moments)
    gram = np.triu(gram) + np.triu(gram, 1).T
    eigenvalues, vectors = scipy.linalg.eigh(gram, lower=False, driver="evd")
    spectrum = EigenSpectrum(np.clip(eigenvalues, 0.0, None), ((vectors.T @ cross) ** 2).sum(axis=1), moments.dim)
    alpha = gcv_alpha(spectrum, _target_energy(moments), moments.count, unit)
    gram[np.diag_indices_from(gram)] += alpha * unit
    factor = scipy.linalg.cho_factor(gram, lower=False, overwrite_a=True, check_finite=False)
    weights = scipy.linalg.cho_solve(factor, cross, check_finite=False)
    _, info = scipy.linalg.lapack.dpotri(factor[0], lower=0)  # the inverse its Woodbury updates read
    assert info == 0
    return alpha, weights


def bench_derive(x: np.ndarray, y: np.ndarray, width: int, repeats: int) -> str:
    model = ErasableClassifier(width=width).fit(x, y).model_
    moments, unit = model.ridge_moments, model.ridge_unit
    heads: list[RidgeHead] = []
    before: list[tuple[float, np.ndarray]] = []
    t_new, t_old = median_times(
        [
            lambda: heads.append(RidgeHead.from_moments(moments, alpha=None, unit=unit)),
            lambda: before.append(eigendecomposition_head(moments, unit)),
        ],
        repeats,
    )
    t_known = median_time(lambda: RidgeHead.from_moments(moments, alpha=heads[-1].alpha, unit=unit), repeats)
    same_alpha = RidgeHead.from_moments(moments, alpha=before[-1][0], unit=unit).weights  # the solves, compared
    difference = np.abs(same_alpha - before[-1][1]).max() / np.abs(before[-1][1]).max()
    return table(
        f"Deriving the canonical ridge head (D={width}, n={len(y)}): GCV penalty + weights",
        ["derivation", "seconds", "speed-up", "alpha", "max rel. weight difference at the same alpha"],
        [
            [
                "before: eigh with vectors + Cholesky + D x D inverse",
                f"{t_old:.2f}",
                "1.0x",
                f"{before[-1][0]:.4g}",
                "-",
            ],
            [
                "now: GCV on the leading 1024 features + Cholesky, the solve refined once",
                f"{t_new:.2f}",
                f"{t_old / t_new:.1f}x",
                f"{heads[-1].alpha:.4g}",
                f"{difference:.1e}",
            ],
            ["now, alpha known (a loaded file): the solve alone", f"{t_known:.2f}", f"{t_old / t_known:.1f}x", "", ""],
        ],
    )


def bench_forget(x: np.ndarray, y: np.ndarray, width: int, repeats: int) -> str:
    ids = np.arange(len(y))
    clf = ErasableClassifier(width=width).fit(x, y, ids=ids)
    clf.predict(x[:1])  # derive the served head
    rng = np.random.default_rng(0)
    clf.certificate()
    rows = []
    for k in (1, 100):
        latencies = []
        for _ in range(repeats):
            doomed = rng.choice(ids, size=k, replace=False)
            start = time.perf_counter()
            clf.forget(ids=doomed)
            clf.predict(x[:1])  # served head ready
            latencies.append(time.perf_counter() - start)
            clf.partial_fit(x[doomed], y[doomed], ids=doomed)  # put them back for the next repeat
            clf.certificate()  # steady state: the certificate before the next request is known
        rows.append((k, statistics.median(latencies)))

    keep = np.ones(len(y), dtype=bool)
    keep[:100] = False

    def refit() -> None:
        ErasableClassifier(width=width).fit(x[keep], y[keep]).predict(x[:1])

    t_refit = median_time(refit, max(2, repeats // 2))
    t_refresh = median_time(lambda: clf.refresh(), max(2, repeats // 2))
    out = [[f"forget {k} (served, Woodbury)", f"{t * 1000:.1f} ms", f"{t_refit / t:,.0f}x"] for k, t in rows]
    out.append(["refit from scratch (learn + automatic alpha)", f"{t_refit * 1000:.0f} ms", "1x"])
    out.append(["canonical refresh from the Moments", f"{t_refresh * 1000:.0f} ms", f"{t_refit / t_refresh:.1f}x"])
    return table(f"Forget latency (D={width}, n={len(y)})", ["operation", "median", "speed-up vs refit"], out)


def bench_accuracy(data: dict[str, np.ndarray], width: int) -> str:
    x, y, xt, yt = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
    joint = ErasableClassifier(width=width).fit(x, y)
    rows = []
    for head in ("ridge", "prototype", "gaussian"):
        predictions = joint.model_.decision_function(xt, head).argmax(axis=1)
        accuracy = np.mean(np.asarray(joint.model_.classes)[predictions] == yt)
        rows.append([head, f"{accuracy:.2%}"])
    alpha = joint.model_.head("ridge").alpha
    incremental = ErasableClassifier(width=width)
    for group in np.array_split(np.unique(y), 7):
        mask = np.isin(y, group)
        incremental.partial_fit(x[mask], y[mask], ids=np.flatnonzero(mask))
    same = incremental.certificate() == joint.certificate()
    rows.append(["ridge after 7 class-incremental phases", f"{incremental.score(xt, yt):.2%}"])
    return table(
        f"Accuracy on BANKING77 test (D={width}, automatic alpha={alpha:.3g}); "
        f"7-phase certificate == joint: {'yes' if same else 'NO'}",
        ["head", "test accuracy"],
        rows,
    )


def recursive_least_squares(features: np.ndarray, targets: np.ndarray, lam: float, batch: int) -> np.ndarray:
    """ACIL's recursive ridge: R = (F1^T F1 + lam I)^-1, then a Woodbury step per batch."""
    first = features[:batch]
    r = np.linalg.inv(first.T @ first + lam * np.eye(features.shape[1]))
    w = r @ first.T @ targets[:batch]
    for start in range(batch, features.shape[0], batch):
        f, t = features[start : start + batch], targets[start : start + batch]
        rf = r @ f.T
        r -= rf @ np.linalg.solve(np.eye(f.shape[0]) + f @ rf, rf.T)
        w += r @ f.T @ (t - f @ w)
    return w


def bench_baseline(data: dict[str, np.ndarray], width: int, repeats: int) -> str:
    x, y, xt = data["X_train"], data["y_train"], data["X_test"]
    clf = ErasableClassifier(width=width).fit(x, y)
    model = clf.model_
    alpha = model.head("ridge").alpha

    def accumulate_then_solve() -> RidgeHead:
        fresh = Model(model.config)
        fresh.learn(x, y)
        return RidgeHead.from_moments(fresh.ridge_moments, alpha=alpha, unit=model.ridge_unit)

    head = accumulate_then_solve()
    features = model.features(model.quantize(x))
    classes = np.asarray(model.classes)
    targets = (y[:, None] == classes[None, :]).astype(np.float64)
    # The RLS stream has no intercept: give it globally centered rows, which is the same problem.
    mean, prior = features.mean(axis=0), targets.mean(axis=0)
    centered, centered_targets = features - mean, targets - prior
    lam = alpha * model.ridge_unit
    w_rls = recursive_least_squares(centered, centered_targets, lam, 4096)
    probe = model.features(model.quantize(xt))
    agree = np.mean(((probe - mean) @ w_rls + prior).argmax(axis=1) == head.decision_function(probe).argmax(axis=1))
    relative = np.abs(w_rls - head.weights).max() / np.abs(head.weights).max()
    t_ours = median_time(accumulate_then_solve, repeats)
    t_rls = median_time(lambda: recursive_least_squares(centered, centered_targets, lam, 4096), repeats)
    return table(
        f"Baseline: recursive least squares (Woodbury, batch 4096) vs accumulate-then-solve (D={width})",
        ["method", "seconds", "time ratio", "same test predictions", "max rel. weight difference"],
        [
            ["erasable: accumulate Moments, then Cholesky", f"{t_ours:.2f}", "1.00", "-", "-"],
            [
                "RLS with Woodbury updates (ACIL)",
                f"{t_rls:.2f}",
                f"{t_rls / t_ours:.2f}",
                f"{agree:.2%}",
                f"{relative:.1e}",
            ],
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=BANKING77)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=4096)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"BANKING77 embeddings not found at {args.data}; pass --data.")
    with np.load(args.data) as archive:
        data = {k: archive[k] for k in archive.files}
    data["X_train"] = data["X_train"].astype(np.float64)
    data["X_test"] = data["X_test"].astype(np.float64)
    sections = [
        bench_ingest(data["X_train"], data["y_train"], args.width, args.repeats),
        bench_derive(data["X_train"], data["y_train"], args.width, max(3, args.repeats // 2)),
        bench_forget(data["X_train"], data["y_train"], args.width, args.repeats),
        bench_accuracy(data, args.width),
        bench_baseline(data, args.width, max(1, args.repeats // 2)),
    ]
    report = "\n".join(sections)
    print(report)
    out = ROOT / "benchmarks" / "results" / "core.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)


if __name__ == "__main__":
    main()

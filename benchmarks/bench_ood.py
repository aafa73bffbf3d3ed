"""Out-of-distribution scores on held-out classes (issue 16): which score tells unknown intents apart.

Protocol, per dataset (BANKING77, HWU64; the shared MiniLM embeddings) and per seed: 15% of
the classes are drawn as *unknown*; erasable's default is fitted on the training samples of
the other classes; the test samples of the known classes are in-distribution and those of
the unknown classes out-of-distribution. Reported: AUROC and the false-positive rate at
95% true-positive rate (the share of unknowns a threshold keeping 95% of the knowns lets
through), mean over seeds. ``--split validation`` runs the same protocol inside the
training set (80/20), which is where the default was chosen. Writes
``benchmarks/results/ood_<split>.md``.

    python benchmarks/bench_ood.py [--seeds 3] [--split test|validation]
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg
from sklearn.metrics import roc_auc_score

from common import ROOT, SHARED_DATA, table
from erasable.estimator import ErasableClassifier
from erasable.heads.ridge import _centered_moments
from erasable.model import Model

UNKNOWN_SHARE = 0.15
KNN = (1, 10)


def scores(model: Model, train: np.ndarray, queries: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate score of ``queries`` (higher: more out-of-distribution)."""
    ridge = model.decision_function(queries, "ridge")
    shifted = (ridge - ridge.max(axis=1, keepdims=True)) / model.config.temperature
    out = {
        "1 - top probability (the default)": model.ood_score(queries),
        "energy (T = 0.07)": -ridge.max(axis=1) - model.config.temperature * np.log(np.exp(shifted).sum(axis=1)),
        "1 - top ridge score": 1.0 - ridge.max(axis=1),
        "Mahalanobis to the nearest class mean (embeddings)": model.head("gaussian").ood_score(  # type: ignore[attr-defined]
            model.head_inputs(queries, "gaussian")
        ),
    }
    out["Mahalanobis in feature space (ridge leverage)"] = leverage(model, queries)
    unit = model.head_inputs(train, "gaussian")
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    probe = model.head_inputs(queries, "gaussian")
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    similarity = probe @ unit.T
    for k in KNN:
        kth = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
        out[f"cosine distance to the {k}-th neighbour"] = 1.0 - kth
    out["1 - top probability + 10-NN distance"] = (
        out["1 - top probability (the default)"] + (out["cosine distance to the 10-th neighbour"])
    )
    return out


def leverage(model: Model, queries: np.ndarray) -> np.ndarray:
    """``(f - mu)^T (A + lambda I)^-1 (f - mu)`` of the ridge features: the Mahalanobis distance the head's own
    penalized scatter defines (a ridge fit's leverage, its predictive variance up to a constant)."""
    gram, _, mean = _centered_moments(model.ridge_moments)
    gram[np.diag_indices_from(gram)] += model.canonical_ridge().lam
    factor = scipy.linalg.cholesky(gram, lower=True, overwrite_a=True, check_finite=False)
    whitened = scipy.linalg.solve_triangular(factor, (model.head_inputs(queries, "ridge") - mean).T, lower=True)
    return np.asarray((whitened**2).sum(axis=0))


def fpr_at_95_tpr(score: np.ndarray, is_ood: np.ndarray) -> float:
    threshold = np.quantile(score[~is_ood], 0.95)
    return float(np.mean(score[is_ood] <= threshold))


def run(name: str, seed: int, split: str) -> dict[str, tuple[float, float]]:
    data = np.load(SHARED_DATA / name / "all-MiniLM-L6-v2.npz")
    x, y = data["X_train"], data["y_train"]
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    unknown = rng.choice(classes, round(UNKNOWN_SHARE * len(classes)), replace=False)
    if split == "test":
        xt, yt = data["X_test"], data["y_test"]
        train = ~np.isin(y, unknown)
    else:  # inside the training set: 80% of the known classes' samples to fit, the rest and the unknowns to score
        order = rng.permutation(len(y))
        fit_part = np.zeros(len(y), dtype=bool)
        fit_part[order[: int(0.8 * len(y))]] = True
        xt, yt = x[~fit_part], y[~fit_part]
        train = fit_part & ~np.isin(y, unknown)
    model = ErasableClassifier().fit(x[train], y[train]).model_
    is_ood = np.isin(yt, unknown)
    return {k: (roc_auc_score(is_ood, s), fpr_at_95_tpr(s, is_ood)) for k, s in scores(model, x[train], xt).items()}


def _mean(runs: list[dict[str, tuple[float, float]]], key: str, index: int) -> float:
    return float(np.mean([r[key][index] for r in runs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    args = parser.parse_args()
    report = []
    for name in ("banking77", "hwu64"):
        runs = [run(name, seed, args.split) for seed in range(args.seeds)]
        rows = [[key, f"{_mean(runs, key, 0):.4f}", f"{_mean(runs, key, 1):.3f}"] for key in runs[0]]
        report.append(
            table(
                f"{name}: {UNKNOWN_SHARE:.0%} of the classes unknown, {args.split} split, mean of {args.seeds} seeds",
                ["score", "AUROC", "FPR at 95% TPR"],
                rows,
            )
        )
        print(report[-1], flush=True)
    (ROOT / "benchmarks" / "results" / f"ood_{args.split}.md").write_text("\n".join(report))


if __name__ == "__main__":
    main()

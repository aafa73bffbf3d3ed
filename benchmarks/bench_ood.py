"""Out-of-distribution scores (issue 16): which score tells inputs unlike the training classes apart.

Two protocols, per dataset (BANKING77, HWU64; the shared MiniLM embeddings) and per seed:

* **held-out classes** (near: unknown intents of the same domain): 15% of the classes are
  drawn as *unknown*; erasable's default is fitted on the training samples of the other
  classes; the test samples of the known classes are in-distribution and those of the
  unknown classes out-of-distribution;
* **out of scope** (a query for another assistant): the default is fitted on every class;
  the dataset's test samples are in-distribution and the *other* dataset's test queries
  (a banking assistant asked HWU64's home-assistant queries, and the reverse) are
  out-of-distribution.

Reported: AUROC and the false-positive rate at 95% true-positive rate (the share of
unknowns a threshold keeping 95% of the knowns lets through), mean over seeds. The scores
are those of the default's ridge head, plus the kernel head's own (``head="kernel"``, solved
from the same samples at the same penalty), for a user choosing between them.
``--split validation`` runs the same protocols inside the training sets (80/20; the other
dataset's *training* queries as out-of-scope, as many as the held-in part), which is where
the default was chosen. Writes ``benchmarks/results/ood_<split>.md``.

    python benchmarks/bench_ood.py [--seeds 3] [--split test|validation]
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg
from sklearn.metrics import roc_auc_score

from common import ROOT, SHARED_DATA, table
from erasable.estimator import ErasableClassifier
from erasable.heads.base import full_symmetric
from erasable.heads.ridge import centered_moments
from erasable.model import Model

UNKNOWN_SHARE = 0.15
KNN = (1, 10)
DATASETS = ("banking77", "hwu64")
PROTOCOLS = ("held-out classes", "out of scope")


def scores(model: Model, train: np.ndarray, queries: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate score of ``queries`` (higher: more out-of-distribution)."""
    ridge = model.decision_function(queries, "ridge")
    shifted = (ridge - ridge.max(axis=1, keepdims=True)) / model.config.temperature
    probabilities = model.predict_proba(queries, "ridge")
    out = {
        "1 - top probability, softened by leverage (the default)": model.ood_score(queries),
        "1 - top probability": 1.0 - probabilities.max(axis=1),
        '1 - top probability of head="kernel" (its ood_score)': model.predictions(queries, "kernel").ood_scores,
        "energy (T = 0.07)": -ridge.max(axis=1) - model.config.temperature * np.log(np.exp(shifted).sum(axis=1)),
        "1 - top ridge score": 1.0 - ridge.max(axis=1),
        "Mahalanobis to the nearest class mean (embeddings)": model.head("gaussian").ood_score(  # type: ignore[attr-defined]
            model.head_inputs(queries, "gaussian")
        ),
    }
    out["relative Mahalanobis (embeddings; Ren et al. 2021)"] = relative_mahalanobis(model, queries)
    out["Mahalanobis in feature space (ridge leverage)"] = leverage(model, queries)
    unit = model.head_inputs(train, "gaussian")
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    probe = model.head_inputs(queries, "gaussian")
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    similarity = probe @ unit.T
    for k in KNN:
        kth = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
        out[f"cosine distance to the {k}-th neighbour"] = 1.0 - kth
    nearest = out["cosine distance to the 10-th neighbour"]
    out["1 - top probability + 10-NN distance"] = out["1 - top probability"] + nearest
    return out


def relative_mahalanobis(model: Model, queries: np.ndarray) -> np.ndarray:
    """The Mahalanobis distance to the nearest class mean minus the one to a single Gaussian of all the training
    embeddings: what sets an input apart from the classes rather than from the data's bulk."""
    gaussian = model.head("gaussian")
    vectors = model.head_inputs(queries, "gaussian")
    moments = model.embedding_moments
    mean = moments.class_sums.sum(axis=0) / moments.count
    scatter = full_symmetric(moments.gram) / moments.count - np.outer(mean, mean)
    shrinkage = model.config.shrinkage
    level = float(np.trace(scatter)) / len(mean)
    background = (1.0 - shrinkage) * scatter + shrinkage * level * np.eye(len(mean))
    centred = vectors - mean
    distance = (centred * scipy.linalg.solve(background, centred.T, assume_a="pos").T).sum(axis=1)
    return np.asarray(gaussian.ood_score(vectors) - distance)  # type: ignore[attr-defined]


def leverage(model: Model, queries: np.ndarray) -> np.ndarray:
    """``(f - mu)^T (A + lambda I)^-1 (f - mu)`` of the ridge features: the Mahalanobis distance the head's own
    penalized scatter defines (a ridge fit's leverage, its predictive variance up to a constant)."""
    gram, _, mean = centered_moments(model.ridge_moments)
    gram[np.diag_indices_from(gram)] += model.canonical_ridge().lam
    factor = scipy.linalg.cholesky(gram, lower=True, overwrite_a=True, check_finite=False)
    whitened = scipy.linalg.solve_triangular(factor, (model.head_inputs(queries, "ridge") - mean).T, lower=True)
    return np.asarray((whitened**2).sum(axis=0))


def fpr_at_95_tpr(score: np.ndarray, is_ood: np.ndarray) -> float:
    threshold = np.quantile(score[~is_ood], 0.95)
    return float(np.mean(score[is_ood] <= threshold))


def _embeddings(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(SHARED_DATA / name / "all-MiniLM-L6-v2.npz"))


def run(name: str, protocol: str, seed: int, split: str) -> dict[str, tuple[float, float]]:
    data = _embeddings(name)
    x, y = data["X_train"], data["y_train"]
    rng = np.random.default_rng(seed)
    if split == "test":
        held_in, xt, yt = np.ones(len(y), dtype=bool), data["X_test"], data["y_test"]
    else:  # inside the training set: 80% of the samples to fit, the rest to score
        held_in = np.zeros(len(y), dtype=bool)
        held_in[rng.permutation(len(y))[: int(0.8 * len(y))]] = True
        xt, yt = x[~held_in], y[~held_in]
    if protocol == "held-out classes":
        classes = np.unique(y)
        unknown = rng.choice(classes, round(UNKNOWN_SHARE * len(classes)), replace=False)
        train, is_ood = held_in & ~np.isin(y, unknown), np.isin(yt, unknown)
    else:
        other = _embeddings(next(d for d in DATASETS if d != name))
        foreign = other["X_test"] if split == "test" else other["X_train"][rng.permutation(len(other["X_train"]))]
        foreign = foreign[: len(xt)] if split == "validation" else foreign
        train, is_ood = held_in, np.r_[np.zeros(len(xt), dtype=bool), np.ones(len(foreign), dtype=bool)]
        xt = np.concatenate([xt, foreign])
    model = ErasableClassifier().fit(x[train], y[train]).model_
    return {k: (roc_auc_score(is_ood, s), fpr_at_95_tpr(s, is_ood)) for k, s in scores(model, x[train], xt).items()}


def _mean(runs: list[dict[str, tuple[float, float]]], key: str, index: int) -> float:
    return float(np.mean([r[key][index] for r in runs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    args = parser.parse_args()
    report = []
    for protocol in PROTOCOLS:
        for name in DATASETS:
            runs = [run(name, protocol, seed, args.split) for seed in range(args.seeds)]
            rows = [[key, f"{_mean(runs, key, 0):.4f}", f"{_mean(runs, key, 1):.3f}"] for key in runs[0]]
            what = (
                f"{UNKNOWN_SHARE:.0%} of the classes unknown"
                if protocol == "held-out classes"
                else f"out of scope: {next(d for d in DATASETS if d != name)}'s queries"
            )
            title = f"{name}: {what}, {args.split} split, mean of {args.seeds} seeds"
            report.append(table(title, ["score", "AUROC", "FPR at 95% TPR"], rows))
            print(report[-1], flush=True)
    (ROOT / "benchmarks" / "results" / f"ood_{args.split}.md").write_text("\n".join(report))


if __name__ == "__main__":
    main()

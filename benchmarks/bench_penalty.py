"""Choosing the ridge penalty: GCV on all D features against GCV on the leading block (the default).

On validation splits of the training sets only (stratified 80/20, seed 0; the test sets are not
read), at the default width 4096, for training sets of several sizes, as drawn and with 5% of
the samples repeated (a duplicate of another training sample, as real data has). For each: the
alpha each rule chooses, its validation accuracy, and the time of each rule's GCV alone (the
tridiagonal reduction and the lattice search; the solve that follows is the same).

With fewer samples than features, repeated samples make GCV over all features choose the
smallest penalty of its lattice (a fit that interpolates); the block of ``min(D, 1024, n // 2)``
features keeps fewer features than half the samples, so it cannot. Writes
``benchmarks/results/penalty.md``.

    python benchmarks/bench_penalty.py [--sizes 300,1000,2000,4000,0] [--datasets banking77,hwu64,fashion-mnist]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.model_selection import train_test_split

from bench_vs_sklearn import load
from common import ROOT, table
from erasable.estimator import ErasableClassifier
from erasable.heads.gcv import TridiagonalSpectrum, gcv_alpha, gcv_width
from erasable.heads.penalized import PenalizedGram
from erasable.heads.ridge import _target_energy, centered_moments
from erasable.model import Model
from erasable.moments import Moments

REPEATED_FRACTION = 0.05


def gcv_on(moments: Moments, unit: float, width: int) -> tuple[float, float]:
    """``(alpha, seconds)`` of GCV on the first ``width`` features."""
    start = time.perf_counter()
    gram, cross, _ = centered_moments(moments, width)
    alpha = gcv_alpha(TridiagonalSpectrum.of(gram, cross), _target_energy(moments), moments.count, unit)
    return alpha, time.perf_counter() - start


def validation_accuracy(model: Model, alpha: float, x_val: np.ndarray, y_val: np.ndarray) -> float:
    """Validation accuracy (%) of the model's ridge head at ``alpha``."""
    moments = model.ridge_moments
    gram, cross, mean = centered_moments(moments)
    weights = PenalizedGram.cholesky(gram, alpha * model.ridge_unit).solve(cross)
    scores = (model.features(model.quantize(x_val)) - mean) @ weights
    return 100.0 * float((np.array(moments.classes)[scores.argmax(axis=1)] == y_val).mean())


def rows_for(name: str, sizes: list[int], rng: np.random.Generator) -> list[list[str]]:
    x, y, _, _ = load(name, 10000)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    rows = []
    for size in sizes:
        for repeated in (0, int(REPEATED_FRACTION * (size or len(y_train)))):
            index = rng.choice(len(y_train), size, replace=False) if size else np.arange(len(y_train))
            index[:repeated] = index[repeated : 2 * repeated]  # the first samples become copies of others
            model = Model(ErasableClassifier().model_config(x.shape[1]))
            model.learn(x_train[index], y_train[index])
            moments, unit = model.ridge_moments, model.ridge_unit
            width = gcv_width(moments.count, moments.dim)
            (every, t_every), (block, t_block) = gcv_on(moments, unit, moments.dim), gcv_on(moments, unit, width)
            a_every, a_block = (validation_accuracy(model, alpha, x_val, y_val) for alpha in (every, block))
            rows.append(
                [
                    name,
                    f"{moments.count:,}",
                    f"{repeated:,}",
                    f"{every:.3g} / {block:.3g} (block {width})",
                    f"{a_every:.2f} / {a_block:.2f}",
                    f"{a_block - a_every:+.2f}",
                    f"{t_every:.2f} / {t_block:.2f} s ({t_every / t_block:.0f}×)",
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,1000,2000,4000,0", help="Training samples drawn; 0: all of them.")
    parser.add_argument("--datasets", default="banking77,hwu64,fashion-mnist")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    rows = [row for name in args.datasets.split(",") for row in rows_for(name, sizes, rng)]
    report = table(
        "GCV on all 4096 features / on the leading block (the default): validation splits of the training sets",
        [
            "dataset",
            "samples",
            "of them repeats",
            "alpha: all / block",
            "validation accuracy, %: all / block",
            "points",
            "GCV time: all / block",
        ],
        rows,
    )
    print(report)
    out = ROOT / "benchmarks" / "results" / "penalty.md"
    out.write_text(report)


if __name__ == "__main__":
    main()

"""Hybrid head: interpolate the memory's and the ridge head's class probabilities.

``p = w * p_memory + (1 - w) * p_ridge`` (cf. Jia et al., "Rethinking nearest neighbors for
visual classification", 2021). The two heads read different inputs -- the ridge head the
integer features, the memory the quantized embeddings -- so the hybrid is given the ridge
probabilities as a function of the quantized embeddings. The weight ``w`` is chosen on a
validation split by :func:`choose_weight`.

>>> import numpy as np
>>> p_memory = np.array([[0.9, 0.1], [0.4, 0.6]])
>>> p_ridge = np.array([[0.2, 0.8], [0.1, 0.9]])
>>> mix(p_memory, p_ridge, 0.5).tolist()
[[0.55, 0.45], [0.25, 0.75]]
>>> choose_weight(p_memory, p_ridge, np.array([0, 1]))
(1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from erasable.heads.memory import MemoryHead
from erasable.moments import Label

#: Candidate weights of the memory's probabilities.
WEIGHT_GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2).tolist())

__all__ = ["WEIGHT_GRID", "HybridHead", "align", "choose_weight", "mix"]


def mix(p_memory: NDArray[np.float64], p_ridge: NDArray[np.float64], weight: float) -> NDArray[np.float64]:
    """``weight * p_memory + (1 - weight) * p_ridge``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}.")
    return weight * p_memory + (1.0 - weight) * p_ridge


def align(proba: NDArray[np.float64], classes: Sequence[Label], target: Sequence[Label]) -> NDArray[np.float64]:
    """Columns of ``proba`` (for ``classes``) rearranged for ``target``; absent classes get 0.

    >>> align(np.array([[0.3, 0.7]]), ["b", "c"], ["a", "b", "c"]).tolist()
    [[0.0, 0.3, 0.7]]
    """
    column = {label: i for i, label in enumerate(classes)}
    out = np.zeros((proba.shape[0], len(target)))
    for j, label in enumerate(target):
        if label in column:
            out[:, j] = proba[:, column[label]]
    return out


def choose_weight(
    p_memory: NDArray[np.float64],
    p_ridge: NDArray[np.float64],
    truth: NDArray[np.integer],
    grid: Sequence[float] = WEIGHT_GRID,
) -> tuple[float, float]:
    """The weight with the best validation accuracy (ties: the best log-likelihood, then the
    middle of the tied range), and that accuracy. ``truth`` holds class indices."""
    rows = np.arange(len(truth))
    results = []
    for weight in grid:
        p = mix(p_memory, p_ridge, weight)
        accuracy = float(np.mean(p.argmax(axis=1) == truth))
        likelihood = float(np.mean(np.log(np.clip(p[rows, truth], 1e-12, None))))
        results.append((accuracy, likelihood, weight))
    best = max(results, key=lambda r: (r[0], r[1]))
    tied = [w for a, ll, w in results if (a, ll) == best[:2]]
    return float(tied[len(tied) // 2]), best[0]


@dataclass(frozen=True)
class HybridHead:
    """Memory and ridge probabilities mixed with weight ``weight`` (on the memory).

    ``ridge_proba`` maps quantized embeddings (float64) to ridge probabilities over
    ``classes``, the ridge head's (sorted) classes; the memory's are aligned to them.
    """

    memory: MemoryHead
    ridge_proba: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    classes: tuple[Label, ...]
    weight: float

    def predict_proba(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        p_memory = align(self.memory.predict_proba(vectors), self.memory.classes, self.classes)
        return mix(p_memory, self.ridge_proba(vectors), self.weight)

    def decision_function(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        """The mixed probabilities (they are the scores)."""
        return self.predict_proba(vectors)

"""Continual-learning metrics from an accuracy matrix.

``acc[i, j]`` is the accuracy on the test samples of the classes introduced in phase ``j``,
measured after training phase ``i`` (``j <= i``; entries above the diagonal are ignored, by
convention they may be NaN). Given the number of test samples of each phase's classes, the
accuracy on everything seen after phase ``i`` is their weighted mean, and from it follow:

* :func:`average_incremental_accuracy` -- mean over phases of the accuracy on all classes seen
  so far (Rebuffi et al., iCaRL, 2017);
* :func:`last_accuracy` -- that accuracy after the last phase;
* :func:`forgetting` -- average drop from the best accuracy a phase ever had to its final one
  (Chaudhry et al., Riemannian Walk, 2018);
* :func:`backward_transfer` -- average change of a phase's accuracy between just after it was
  learned and the end (Lopez-Paz & Ranzato, GEM, 2017); negative means forgetting.

Phases are numbered from 0 here; the papers number them from 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "average_incremental_accuracy",
    "backward_transfer",
    "forgetting",
    "last_accuracy",
    "seen_accuracy",
]


def _matrix(acc: ArrayLike) -> NDArray[np.float64]:
    matrix = np.asarray(acc, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"acc must be a non-empty square matrix (phases x phases), got shape {matrix.shape}.")
    lower = np.tril(np.ones(matrix.shape, dtype=bool))
    if np.isnan(matrix[lower]).any():
        raise ValueError("acc has NaN on or below the diagonal.")
    return matrix


def seen_accuracy(acc: ArrayLike, weights: ArrayLike | None = None) -> NDArray[np.float64]:
    """Accuracy on all classes seen so far, after each phase: the ``weights``-weighted mean of ``acc[i, :i+1]``.

    ``weights[j]`` is the number of test samples of phase ``j``'s classes (default: equal), so the
    result is exactly the accuracy on the union of those test samples.

    >>> seen_accuracy([[0.9, np.nan], [0.6, 0.8]], weights=[100, 300])
    array([0.9 , 0.75])
    """
    matrix = _matrix(acc)
    n = matrix.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or (w <= 0).any():
        raise ValueError(f"weights must be {n} positive numbers.")
    lower = np.tril(np.ones((n, n), dtype=bool))
    weighted = np.where(lower, matrix, 0.0) @ w
    return weighted / np.cumsum(w)


def average_incremental_accuracy(acc: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Mean over phases of :func:`seen_accuracy` (Rebuffi et al. 2017).

    >>> average_incremental_accuracy([[0.9, np.nan], [0.6, 0.8]], weights=[100, 300])
    0.825
    """
    return float(np.mean(seen_accuracy(acc, weights)))


def last_accuracy(acc: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Accuracy on all classes after the last phase.

    >>> last_accuracy([[0.9, np.nan], [0.6, 0.8]])
    0.7
    """
    return float(seen_accuracy(acc, weights)[-1])


def forgetting(acc: ArrayLike) -> float:
    """Average forgetting after the last phase (Chaudhry et al. 2018).

    For each earlier phase ``j < T-1``: ``max_{l < T-1} acc[l, j] - acc[T-1, j]``, the drop from
    the best accuracy it had before the last phase; the mean over ``j``. 0 for a single phase.

    >>> forgetting([[0.9, np.nan, np.nan], [0.95, 0.8, np.nan], [0.5, 0.7, 0.9]])
    0.275
    """
    matrix = _matrix(acc)
    last = matrix.shape[0] - 1
    if last == 0:
        return 0.0
    best = np.array([matrix[j:last, j].max() for j in range(last)])
    return float(np.mean(best - matrix[last, :last]))


def backward_transfer(acc: ArrayLike) -> float:
    """Backward transfer after the last phase (Lopez-Paz & Ranzato 2017).

    ``mean_{j < T-1} (acc[T-1, j] - acc[j, j])``; 0 for a single phase. Unlike forgetting it is
    measured from the accuracy just after learning, not from the best one, and keeps its sign.

    >>> round(backward_transfer([[0.9, np.nan, np.nan], [0.95, 0.8, np.nan], [0.5, 0.7, 0.9]]), 12)
    -0.25
    """
    matrix = _matrix(acc)
    last = matrix.shape[0] - 1
    if last == 0:
        return 0.0
    return float(np.mean(matrix[last, :last] - np.diag(matrix)[:last]))

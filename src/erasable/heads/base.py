"""What every head offers, and the helpers they share."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from erasable.moments import Label, Moments

__all__ = ["Head", "class_means", "full_symmetric", "softmax", "within_class_scatter"]


class Head(Protocol):
    """Class scores for integer-valued vectors (float64), in the sorted class order."""

    @property
    def classes(self) -> tuple[Label, ...]: ...

    def decision_function(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]: ...

    def predict_proba(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]: ...


def softmax(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax, stable for large scores.

    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(3)
    array([[0.25, 0.75]])
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def full_symmetric(upper: NDArray[np.int64], block: int = 256) -> NDArray[np.float64]:
    """The full symmetric float64 matrix from erasable's upper-triangular Gram layout.

    The lower triangle is copied in blocks of ``block`` rows: no temporary of the matrix's size
    (at D = 4096 each is 134 MB of fresh pages).

    >>> full_symmetric(np.array([[1, 2, 3], [0, 4, 5], [0, 0, 6]]), block=2)
    array([[1., 2., 3.],
           [2., 4., 5.],
           [3., 5., 6.]])
    """
    full = upper.astype(np.float64)
    for start in range(0, full.shape[0], block):
        stop = min(start + block, full.shape[0])
        full[start:stop, :start] = full[:start, start:stop].T
        square = full[start:stop, start:stop]
        square += np.triu(square, 1).T
    return full


def class_means(moments: Moments) -> NDArray[np.float64]:
    """Per-class means (K, dim) in the scale of the stored vectors."""
    return moments.class_sums / moments.class_counts[:, None].astype(np.float64)


def within_class_scatter(moments: Moments) -> NDArray[np.float64]:
    """``sum_i (v_i - mu_{y_i})(v_i - mu_{y_i})^T`` from the statistics (full, float64)."""
    sums = moments.class_sums.astype(np.float64)
    between = (sums / moments.class_counts[:, None]).T @ sums
    return full_symmetric(moments.gram) - between

"""Nearest class mean: the prototype classifier (NCM), also the federated-averaging head.

Each class is represented by the mean of its embeddings. Probabilities treat every class as
an isotropic Gaussian around its mean with the pooled within-class variance, estimated from
the same statistics -- so they are as exact and recomputable as the means.

>>> import numpy as np
>>> from erasable.moments import Moments
>>> m = Moments.from_samples(np.array([[10, 0], [12, 2], [0, 10], [2, 12]]), [0, 0, 1, 1])
>>> head = PrototypeHead.from_moments(m, metric="euclidean")
>>> head.decision_function(np.array([[11.0, 1.0]])).argmax(axis=1)
array([0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from erasable.heads.base import class_means, softmax, within_class_scatter
from erasable.moments import Label, Moments

Metric = Literal["cosine", "euclidean"]

__all__ = ["Metric", "PrototypeHead"]


def _normalize(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class PrototypeHead:
    """Class means and a pooled variance; ``metric`` is ``"cosine"`` or ``"euclidean"``."""

    classes: tuple[Label, ...]
    means: NDArray[np.float64]
    variance: float
    metric: Metric

    @classmethod
    def from_moments(cls, moments: Moments, metric: Metric = "cosine") -> PrototypeHead:
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")
        n, k, dim = moments.count, len(moments.classes), moments.dim
        means = class_means(moments)
        within = float(np.trace(within_class_scatter(moments)))
        variance = within / ((n - k) * dim) if n > k and within > 0 else 1.0
        if metric == "cosine":
            mean_square_norm = float(np.trace(moments.gram)) / n
            variance = variance / mean_square_norm if mean_square_norm > 0 else 1.0
            means = _normalize(means)
        return cls(classes=moments.classes, means=means, variance=variance, metric=metric)

    def decision_function(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        """Cosine similarity to each class mean, or minus the squared Euclidean distance."""
        if self.metric == "cosine":
            return _normalize(vectors) @ self.means.T
        cross = vectors @ self.means.T
        return 2.0 * cross - (vectors**2).sum(axis=1, keepdims=True) - (self.means**2).sum(axis=1)

    def predict_proba(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        """Posterior of an isotropic Gaussian per class (equal priors), pooled variance."""
        scale = 1.0 / self.variance if self.metric == "cosine" else 0.5 / self.variance
        return softmax(self.decision_function(vectors) * scale)

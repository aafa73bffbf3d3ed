"""Shared-covariance Gaussian head (LDA) with a Mahalanobis out-of-distribution score.

The class means and the pooled within-class covariance come from the statistics; the
covariance is shrunk towards a multiple of the identity (``shrinkage`` in [0, 1]) so that
it stays invertible with few samples. ``ood_score`` is the squared Mahalanobis distance to
the nearest class mean (Lee et al., 2018): large for inputs unlike anything learned.

>>> import numpy as np
>>> from erasable.moments import Moments
>>> m = Moments.from_samples(np.array([[10, 0], [12, 2], [0, 10], [2, 12]]), ["a", "a", "b", "b"])
>>> head = GaussianHead.from_moments(m)
>>> head.predict_proba(np.array([[11.0, 1.0]])).argmax(axis=1)
array([0])
>>> bool(head.ood_score(np.array([[90.0, -90.0]]))[0] > head.ood_score(np.array([[11.0, 1.0]]))[0])
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from erasable.heads.base import class_means, softmax, within_class_scatter
from erasable.moments import Label, Moments

__all__ = ["GaussianHead"]


@dataclass(frozen=True)
class GaussianHead:
    """Linear discriminant: ``x^T P mu_c - mu_c^T P mu_c / 2 + log prior_c`` with P = Sigma^-1."""

    classes: tuple[Label, ...]
    means: NDArray[np.float64]
    precision: NDArray[np.float64]
    log_priors: NDArray[np.float64]

    @classmethod
    def from_moments(cls, moments: Moments, shrinkage: float = 0.05) -> GaussianHead:
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}.")
        n, k, dim = moments.count, len(moments.classes), moments.dim
        means = class_means(moments)
        covariance = within_class_scatter(moments) / max(n - k, 1)
        level = float(np.trace(covariance)) / dim
        if level <= 0.0:  # a single sample per class: no spread to estimate
            level = 1.0
        shrunk = (1.0 - shrinkage) * covariance + shrinkage * level * np.eye(dim)
        precision = scipy.linalg.cho_solve(scipy.linalg.cho_factor(shrunk), np.eye(dim))
        log_priors = np.log(moments.class_counts / n)
        return cls(classes=moments.classes, means=means, precision=precision, log_priors=log_priors)

    def decision_function(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        """Log posterior up to a per-row constant."""
        projected = self.means @ self.precision  # (K, dim)
        offsets = -0.5 * np.einsum("kd,kd->k", projected, self.means) + self.log_priors
        return vectors @ projected.T + offsets

    def predict_proba(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        return softmax(self.decision_function(vectors))

    def ood_score(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        """Squared Mahalanobis distance to the nearest class mean."""
        quad = ((vectors @ self.precision) * vectors).sum(axis=1)
        projected = self.means @ self.precision
        mean_quad = np.einsum("kd,kd->k", projected, self.means)
        distances = quad[:, None] - 2.0 * vectors @ projected.T + mean_quad
        return np.maximum(distances.min(axis=1), 0.0)

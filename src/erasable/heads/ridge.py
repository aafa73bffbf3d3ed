"""Ridge regression onto one-hot targets: the analytic-learning head (ACIL, G-ACIL, ACU).

With features ``f`` (n, D), one-hot targets ``Y`` (n, K) and an unpenalized intercept, the
weights are ``W = (A + lambda I)^-1 B`` where ``A = sum (f - mu)(f - mu)^T`` and
``B = sum (f - mu) y^T`` -- both follow from the Moments (``A = G - n mu mu^T``,
``B = S^T - mu n_c^T`` with ``S`` the per-class feature sums), so the head is a function of
the statistics alone. It is computed by Cholesky.

``lambda = alpha * unit``, where ``unit`` is the square of the fixed-point scale of the
features, so ``alpha`` means what scikit-learn's ``Ridge(alpha)`` means for the features in
their natural (float) units -- and, being absolute, it does not move when samples come
and go. With ``alpha=None`` it is chosen by generalized cross-validation (Golub, Heath &
Wahba, 1979) from one eigendecomposition of ``A``, among the points of a fixed
logarithmic lattice (:func:`alpha_lattice`): a deterministic function of the Moments, so
forgetting and refitting from scratch choose the same value, and a small change of the
data rarely moves it.

A rank-k change of the sample set (forgetting or learning k samples) changes ``A`` by a
rank-(k+1) term, so :meth:`RidgeHead.updated` serves it by the Woodbury identity in
O(D^2 k) instead of O(D^3); the result agrees with :meth:`RidgeHead.from_moments` on the
new statistics up to floating-point rounding.

>>> import numpy as np
>>> from erasable.moments import Moments
>>> rows = np.array([[9, 1], [8, 0], [1, 9], [0, 7]])
>>> head = RidgeHead.from_moments(Moments.from_samples(rows, [0, 0, 1, 1]), alpha=0.1)
>>> head.decision_function(np.array([[9.0, 0.0], [0.0, 9.0]])).argmax(axis=1)
array([0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from erasable.heads.base import full_symmetric, softmax
from erasable.moments import Label, Moments

#: Points of the lattice per decade, and the range searched relative to the mean eigenvalue.
LATTICE_STEPS_PER_DECADE = 8
SEARCH_RANGE = (1e-6, 1e2)

__all__ = ["RidgeHead", "alpha_lattice", "gcv_alpha"]


def _centered_moments(moments: Moments) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(A, B, mu)``: centered Gram (full), centered cross moment (D, K) and feature mean."""
    n = moments.count
    sums = moments.class_sums.astype(np.float64)  # (K, D)
    mean = sums.sum(axis=0) / n
    gram = full_symmetric(moments.gram)
    gram -= n * np.outer(mean, mean)
    cross = sums.T - np.outer(mean, moments.class_counts)
    return gram, cross, mean


def _mean_eigenvalue(gram: NDArray[np.float64]) -> float:
    level = float(np.trace(gram)) / gram.shape[0]
    return level if level > 0.0 else 1.0


def _target_energy(moments: Moments) -> float:
    """``||Y - mean(Y)||_F^2`` for one-hot targets."""
    counts = moments.class_counts.astype(np.float64)
    return float(counts.sum() - (counts**2).sum() / counts.sum())


def alpha_lattice(mean_eigenvalue: float, unit: float) -> NDArray[np.float64]:
    """Candidate alphas ``10**(j / 8)`` whose lambda lies in :data:`SEARCH_RANGE` x mean eigenvalue.

    >>> alpha_lattice(100.0, 1.0)[[0, -1]].round(6).tolist()
    [0.0001, 10000.0]
    """
    low, high = (np.log10(bound * mean_eigenvalue / unit) * LATTICE_STEPS_PER_DECADE for bound in SEARCH_RANGE)
    steps = np.arange(np.ceil(low - 1e-9), np.floor(high + 1e-9) + 1)
    return 10.0 ** (steps / LATTICE_STEPS_PER_DECADE)


def gcv_alpha(
    gram: NDArray[np.float64], cross: NDArray[np.float64], target_energy: float, n: int, unit: float
) -> float:
    """The ``alpha`` of :func:`alpha_lattice` minimizing the generalized cross-validation error.

    ``GCV(lambda) = RSS(lambda) / (n - 1 - df(lambda))^2`` with ``df = tr(H)``; both come from
    the eigendecomposition ``A = V diag(w) V^T`` and ``C = V^T B`` without touching samples:
    ``RSS = ||Y_c||^2 - sum_i c_i (2 / (w_i + lambda) - w_i / (w_i + lambda)^2)``,
    ``c_i = ||C_i||^2``. Ties go to the larger alpha (the smoother model).
    """
    eigenvalues, vectors = scipy.linalg.eigh(gram, lower=False, driver="evd")
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    energy = ((vectors.T @ cross) ** 2).sum(axis=1)
    alphas = alpha_lattice(_mean_eigenvalue(gram), unit)
    lambdas = alphas[:, None] * unit
    shrink = 1.0 / (eigenvalues + lambdas)  # (grid, D)
    rss = target_energy - (energy * (2.0 * shrink - eigenvalues * shrink**2)).sum(axis=1)
    dof = (eigenvalues * shrink).sum(axis=1)
    residual_dof = n - 1 - dof
    with np.errstate(divide="ignore", invalid="ignore"):
        gcv = np.where(residual_dof > 0, np.maximum(rss, 0.0) / residual_dof**2, np.inf)
    best = np.flatnonzero(gcv == gcv.min())[-1] if np.isfinite(gcv).any() else len(alphas) - 1
    return float(alphas[best])


@dataclass(frozen=True)
class RidgeHead:
    """Ridge weights with what a Woodbury update needs: the inverse ``(A + lambda I)^-1``.

    ``rank_since_refresh`` counts the rank of the low-rank updates applied since the head
    was last computed from the Moments (0 for a canonical head).
    """

    classes: tuple[Label, ...]
    weights: NDArray[np.float64]  # (D, K)
    mean: NDArray[np.float64]  # (D,)
    priors: NDArray[np.float64]  # (K,)
    alpha: float
    lam: float
    count: int
    inverse: NDArray[np.float64]  # (D, D)
    rank_since_refresh: int = 0

    @classmethod
    def from_moments(cls, moments: Moments, alpha: float | None = None, unit: float = 1.0) -> RidgeHead:
        """The canonical head of ``moments``; ``alpha=None`` chooses it by GCV.

        ``unit`` is the square of the integer features' fixed-point scale: ``lambda = alpha * unit``.
        """
        if moments.count == 0:
            raise ValueError("Cannot derive a ridge head from empty statistics.")
        if alpha is not None and not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}.")
        gram, cross, mean = _centered_moments(moments)
        if alpha is None:
            alpha = gcv_alpha(gram, cross, _target_energy(moments), moments.count, unit)
        lam = alpha * unit
        gram[np.diag_indices_from(gram)] += lam
        factor, lower = scipy.linalg.cho_factor(gram, lower=False, overwrite_a=True, check_finite=False)
        weights = scipy.linalg.cho_solve((factor, lower), cross, check_finite=False)
        inverse, info = scipy.linalg.lapack.dpotri(factor, lower=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotri failed with info={info}.")
        inverse = np.triu(inverse) + np.triu(inverse, 1).T
        return cls._assemble(moments, weights, mean, alpha, lam, inverse, 0)

    @classmethod
    def _assemble(
        cls,
        moments: Moments,
        weights: NDArray[np.float64],
        mean: NDArray[np.float64],
        alpha: float,
        lam: float,
        inverse: NDArray[np.float64],
        rank: int,
    ) -> RidgeHead:
        return cls(
            classes=moments.classes,
            weights=weights,
            mean=mean,
            priors=moments.class_counts / moments.count,
            alpha=alpha,
            lam=lam,
            count=moments.count,
            inverse=inverse,
            rank_since_refresh=rank,
        )

    def updated(self, rows: NDArray[np.float64], sign: int, moments: Moments) -> RidgeHead:
        """The head after adding (``sign=+1``) or removing (``-1``) ``rows``, by Woodbury.

        ``moments`` are the statistics *after* the change. ``lambda`` is kept; the result
        matches ``from_moments(moments, alpha=self.alpha, unit)`` up to rounding.
        """
        if sign not in (1, -1):
            raise ValueError("sign must be +1 or -1.")
        n_after = moments.count
        if n_after == 0:
            raise ValueError("No samples left: the head must be dropped, not updated.")
        sums = moments.class_sums.astype(np.float64)
        mean_after = sums.sum(axis=0) / n_after
        # Chan et al.'s combination of centered scatters, with "rest" the samples that are
        # in both sets (the old ones when learning, the remaining ones when forgetting):
        #   A' - A = sign * (sum_i (r_i - r)(r_i - r)^T + k n_rest / n_all (mu_rest - r)(mu_rest - r)^T)
        # Every vector is centered, so no large terms cancel.
        k = rows.shape[0]
        batch_mean = rows.mean(axis=0)
        n_rest, mean_rest = (self.count, self.mean) if sign > 0 else (n_after, mean_after)
        columns = [rows - batch_mean] if k > 1 else []
        basis = np.vstack([*columns, (mean_rest - batch_mean)[None, :]]).T
        weight = k * n_rest / (n_rest + k)
        coefficients = sign * np.concatenate([np.ones(basis.shape[1] - 1), [weight]])
        projected = self.inverse @ basis  # M U
        capacitance = np.diag(1.0 / coefficients) + basis.T @ projected
        correction = np.linalg.solve(capacitance, projected.T)  # S^-1 U^T M
        inverse = self.inverse - projected @ correction
        cross = sums.T - np.outer(mean_after, moments.class_counts)
        weights = inverse @ cross
        rank = self.rank_since_refresh + basis.shape[1]
        return self._assemble(moments, weights, mean_after, self.alpha, self.lam, inverse, rank)

    def decision_function(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        """Predicted one-hot targets: ``(f - mu) W + mean(Y)``."""
        return (vectors - self.mean) @ self.weights + self.priors

    def predict_proba(self, vectors: NDArray[np.float64], temperature: float = 0.07) -> NDArray[np.float64]:
        """``softmax(scores / temperature)``.

        The scores estimate one-hot targets, so they live on a fixed [0, 1] scale and one
        temperature suits most data. 0.07 minimized the negative log-likelihood (0.34) on a
        held-out 2,003 of the BANKING77 training samples; the temperature implied by a
        Gaussian model of the training residuals (about 0.002) was badly overconfident
        (5.8 on the test set). The predicted class does not depend on it.
        """
        return softmax(self.decision_function(vectors) / temperature)

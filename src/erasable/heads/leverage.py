"""How far inputs lie from the training samples, in the ridge head's own metric: its leverage.

For centered features ``f - mu`` and the penalized scatter ``A + lambda I`` of the ridge head,
the leverage ``h(f) = (f - mu)^T (A + lambda I)^-1 (f - mu)`` is the variance of the head's
scores at ``f`` up to the noise level: the weights are known along directions the samples
fill, and not along others. :class:`Leverage` reads it on the leading block of the features
(the one GCV reads, :func:`~erasable.heads.gcv.gcv_width`: at most 1024 of them, so serving
it costs a 1024 x 1024 factor and not a D x D one) and reports it as a *ratio* to the
training samples' own average, ``tr((A + lambda I)^-1 A) / n`` -- about 1 for an input like
the training samples, large for one unlike all of them. The model's out-of-distribution
score softens the ridge probabilities by it (:meth:`~erasable.heads.RidgeHead.ood_score_of`).

Like every head, it is a function of the statistics and the penalty alone.

>>> import numpy as np
>>> from erasable.moments import Moments
>>> rng = np.random.default_rng(0)
>>> rows = rng.integers(-20, 20, size=(200, 6))
>>> leverage = Leverage.from_moments(Moments.from_samples(rows, rng.integers(0, 2, 200)), lam=1.0)
>>> near, far = leverage.ratio(np.array([[0.0] * 6, [400.0] * 6]))
>>> bool(near < 1.0 < far)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from erasable.heads.gcv import gcv_width
from erasable.heads.ridge import centered_moments
from erasable.moments import Moments

__all__ = ["Leverage"]


@dataclass(frozen=True)
class Leverage:
    """The ridge head's leverage of feature rows, over its training average (see the module docstring)."""

    mean: NDArray[np.float64]  # (width,): the leading block's feature mean
    factor: NDArray[np.float64]  # (width, width): lower Cholesky factor of A + lambda I on the block
    average: float  # tr((A + lambda I)^-1 A) / n: the training samples' mean leverage

    @property
    def width(self) -> int:
        return len(self.mean)

    @classmethod
    def from_moments(cls, moments: Moments, lam: float) -> Leverage:
        """The leverage of ``moments``' ridge head with penalty ``lam`` (its ``lambda``, in integer units)."""
        if moments.count == 0:
            raise ValueError("Cannot measure leverage against empty statistics.")
        if not lam > 0:
            raise ValueError(f"The penalty must be positive, got {lam}.")
        gram, _, mean = centered_moments(moments, gcv_width(moments.count, moments.dim))
        shifted = gram.copy()
        shifted[np.diag_indices_from(shifted)] += lam
        factor = scipy.linalg.cholesky(shifted, lower=True, overwrite_a=True, check_finite=False)
        trace = float(np.trace(scipy.linalg.cho_solve((factor, True), gram, check_finite=False)))
        # A single sample, or identical ones, leave A = 0: every input is then as unlike them as the penalty says.
        return cls(mean=mean, factor=factor, average=max(trace, np.finfo(np.float64).tiny) / moments.count)

    def ratio(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """``h(f) / average`` for each row of ``features`` (n, D), read on the leading block; D >= the block."""
        block = np.asarray(features, dtype=np.float64)[:, : self.width] - self.mean
        whitened = scipy.linalg.solve_triangular(self.factor, block.T, lower=True, check_finite=False)
        return np.asarray(np.einsum("ij,ij->j", whitened, whitened) / self.average)

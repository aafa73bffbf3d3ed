"""Kernel ridge on the arc-cosine kernel: the random ReLU features' infinite-width limit, solved from the samples.

The default head regresses one-hot targets on ``D`` random ReLU features ``ReLU(w . x)``.
For Gaussian ``w`` their Gram estimates ``D`` times the order-1 arc-cosine kernel (Cho & Saul
2009) of the inputs -- for erasable's ±1 projections approximately, ``w . x`` being close to
Gaussian for dense, high-dimensional inputs such as sentence embeddings --

    k(x, y) = D / (2 pi) * |x| |y| * (sin t + (pi - t) cos t),   t the angle between x and y,

with a variance that shrinks only as ``1 / D``: on validation splits of HWU64 six seeds of
the projection spread 89.7-90.7%, and the head with the kernel itself scored 91.01 / 91.82%
on two splits where LogisticRegression scored 90.61 / 89.91% and the default 90.26 / 90.21%
(BANKING77: 92.40 / 93.20% against 91.50 / 91.85% and 92.35 / 92.75%;
``benchmarks/results/vs_sklearn.md`` has the test sets). :class:`KernelHead` is that
limit at the same scale, so the same ``alpha`` means the same penalty: the ridge head's
(fixed, or chosen by GCV on the feature statistics), so the penalty is still a function of
the statistics. Inputs are normalized first when the feature map is scale-free (the default).

It is solved in the dual from the live samples: ``(K_c + lambda I) C = Y_c`` with the kernel
centred for an unpenalized intercept (computed from the uncentred kernel's factor, see
:meth:`KernelHead.from_samples`), by one Cholesky factor and a refined solve
(:class:`~erasable.heads.penalized.PenalizedGram`, the ridge head's): O(n^2 d + n^3 / 3) time and
``8 n^2`` bytes, whatever ``D``. Where the ridge head's cost is fixed by ``D`` (a 4096 x
4096 system), this one grows with the samples: about as fast as the ridge head at a few
thousand samples; at 10,000 (BANKING77, HWU64) 7-10 s to a first prediction and a 1.4 GB peak,
3-4x the ridge head's time and 2-3x LogisticRegression's; at 20,000 (Fashion-MNIST) 43 s and 4.3 GB
(``benchmarks/bench_vs_sklearn.py``, a 2-core AMD EPYC). So it is a choice (``head="kernel"``),
not the default, and it refuses more than :data:`MAX_KERNEL_SAMPLES`. It is exact in
erasable's sense: solved, it is a function of the live samples and the statistics, so after a
forget it is the refit's. A forget is served by the kept factor of ``K + lambda I``
(:meth:`KernelHead.forgotten`: 0.5-1.1 s for 1-100 of BANKING77's 10,003 samples, against 8 s to
solve again), keeping the penalty, as the ridge head's Woodbury update does: it then agrees with
a refit at that penalty up to rounding, and a save or ``refresh()`` solves the head again. A
learn solves again.
So a served head holds its factor, ``8 n^2`` bytes (800 MB at 10,000 samples); one read from a
model file holds only its coefficients.

>>> import numpy as np
>>> rows = np.array([[1.0, 0.1], [0.9, -0.2], [-0.1, 1.0], [0.2, 0.8]])
>>> kernel = ArcCosineKernel(width=64, normalize=True)
>>> head = KernelHead.from_samples(rows, [0, 0, 1, 1], (0, 1), kernel, alpha=0.1)
>>> head.decision_function(np.array([[1.0, 0.0], [0.0, 1.0]])).argmax(axis=1)
array([0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from erasable.blas import matmul
from erasable.heads.base import softmax
from erasable.heads.penalized import PenalizedGram
from erasable.moments import Label

#: Most live samples the kernel head solves: its kernel is 8 n^2 bytes (3.2 GB here) and its factor n^3 / 3 flops.
MAX_KERNEL_SAMPLES = 20_000
#: Rows of the kernel transformed at a time (each block's temporaries stay in cache-sized pieces).
KERNEL_BLOCK = 512

__all__ = ["MAX_KERNEL_SAMPLES", "ArcCosineKernel", "KernelHead"]


@dataclass(frozen=True)
class ArcCosineKernel:
    """``k(x, y) = width / (2 pi) * |x| |y| * (sin t + (pi - t) cos t)``: the ``width``-wide ReLU map's limit.

    With ``normalize`` the rows count as unit vectors (a zero row stays a zero kernel row),
    as the scale-free feature map sees them. ``unit`` is the square of the rows' scale, so
    that a penalty ``alpha`` in natural units is ``alpha * unit`` on them (1 for normalized rows).

    ``k(x, x) = width |x|^2 / 2``, the expected sum of ``ReLU(w . x)^2`` over ``width`` features; at a
    right angle ``width |x| |y| / (2 pi)``:

    >>> x = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> ArcCosineKernel(width=2, normalize=False)(x, x).round(4)
    array([[1.    , 0.6366],
           [0.6366, 4.    ]])
    """

    width: int
    normalize: bool
    unit: float = 1.0

    def __call__(self, left: NDArray[np.float64], right: NDArray[np.float64]) -> NDArray[np.float64]:
        """The kernel of every row of ``left`` with every row of ``right``."""
        return self.between(self.directions(left), self.directions(right))

    def directions(self, rows: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``rows`` as the kernel reads them: unit rows (zero rows stay zero) and the norms it scales by."""
        norms = np.linalg.norm(rows, axis=1)
        unit = rows / np.where(norms > 0, norms, 1.0)[:, None]
        return unit, (norms > 0).astype(np.float64) if self.normalize else norms

    def between(
        self,
        left: tuple[NDArray[np.float64], NDArray[np.float64]],
        right: tuple[NDArray[np.float64], NDArray[np.float64]],
    ) -> NDArray[np.float64]:
        """The kernel of rows given by their :meth:`directions`, computed in place a block of rows at a time:
        the result is the only array of its size."""
        (left_unit, left_norms), (right_unit, right_norms) = left, right
        kernel = matmul(left_unit, right_unit.T)
        scale = self.width / (2.0 * np.pi)
        for start in range(0, kernel.shape[0], KERNEL_BLOCK):
            cosine = kernel[start : start + KERNEL_BLOCK]
            np.clip(cosine, -1.0, 1.0, out=cosine)
            term = np.arccos(cosine)
            np.subtract(np.pi, term, out=term)
            term *= cosine  # (pi - t) cos t
            np.multiply(cosine, cosine, out=cosine)
            np.subtract(1.0, cosine, out=cosine)
            np.sqrt(cosine, out=cosine)  # sin t
            cosine += term
            cosine *= (scale * left_norms[start : start + KERNEL_BLOCK])[:, None]
            cosine *= right_norms
        return kernel


@dataclass(frozen=True)
class KernelHead:
    """Dual coefficients on the live samples: scores ``k(x, support) C + intercept``, estimating one-hot targets.

    ``support`` holds the live samples as the head reads its inputs, in an order that depends on
    their values alone (the model sorts them); ``coefficients`` (n, K) and ``intercept`` (K,)
    come from :meth:`from_samples` at the penalty ``lambda = alpha * kernel.unit``.

    A head solved here keeps its ``system``, the factored ``M = K + lambda I`` of the samples it
    was solved for, so that :meth:`forgotten` serves a forget without a new factor: the live
    samples are a subset of those (``positions``: each live sample's row of ``M``; ``removed``:
    the others'), and ``M_SS^-1`` is ``M^-1`` restricted to them minus the correction
    ``G (G_RR)^-1 G_R^T`` with ``G = M^-1 E_R`` (``correction_basis``). ``pending`` is
    ``M^-1 [Y_S; 0]`` over the solved classes (and a column of ones) before that correction.
    Nothing of a forgotten sample is kept as it was (its row, its label); what the factor and
    ``pending`` carry of it is what the ridge head's kept system carries, until a learn, a save
    or :meth:`~erasable.model.Model.refresh` solves the head again. A head read with its
    coefficients (a model file) has no system, and a change drops it.
    """

    classes: tuple[Label, ...]
    kernel: ArcCosineKernel
    support: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    intercept: NDArray[np.float64]
    alpha: float
    labels: tuple[Label, ...] = ()
    system: PenalizedGram | None = field(default=None, repr=False)
    positions: tuple[int, ...] = ()
    solved_classes: tuple[Label, ...] = ()
    pending: NDArray[np.float64] | None = field(default=None, repr=False)
    removed: tuple[int, ...] = ()
    correction_basis: NDArray[np.float64] | None = field(default=None, repr=False)

    @cached_property
    def _support_directions(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The support as the kernel reads it, computed once for every prediction."""
        return self.kernel.directions(self.support)

    @classmethod
    def from_samples(
        cls,
        rows: NDArray[np.float64],
        labels: Sequence[Label],
        classes: Sequence[Label],
        kernel: ArcCosineKernel,
        alpha: float,
    ) -> KernelHead:
        """Kernel ridge of one-hot targets on ``rows`` (n, d), with an unpenalized intercept, penalty ``alpha``.

        ``classes`` are the sorted classes (every label among them). The intercept comes from
        the constraint of the normal equations, ``(K + lambda I) C + 1 b^T = Y`` with
        ``1^T C = 0``: ``C = Z_Y - z_1 b^T`` and ``b = 1^T Z_Y / 1^T z_1`` for
        ``(K + lambda I) [Z_Y, z_1] = [Y, 1]`` -- the centred kernel's solution, from a factor of
        the kernel itself, which a forget can then reuse. Raises ``ValueError`` for no rows,
        more than :data:`MAX_KERNEL_SAMPLES` (before anything of n x n is allocated), or a
        penalty that is not positive or too small for the factor to exist in float64.
        """
        n = rows.shape[0]
        if n == 0:
            raise ValueError("Cannot derive a kernel head without samples.")
        if n > MAX_KERNEL_SAMPLES:
            raise ValueError(
                f"The kernel head solves at most {MAX_KERNEL_SAMPLES:,} samples (an n x n kernel), this model has "
                f"{n:,}: use head='ridge', whose cost does not grow with the samples."
            )
        if not alpha > 0:
            raise ValueError(f"The penalty must be positive, got {alpha}.")
        directions = kernel.directions(rows)
        lam = alpha * kernel.unit
        try:
            system = PenalizedGram.cholesky(kernel.between(directions, directions), lam, overwrite=True)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"The penalty {lam:.3g} is too small for this kernel in double precision: choose a larger alpha."
            ) from None
        solved = system.solve(_targets_and_ones(labels, classes))
        coefficients, intercept = _constrained(solved)
        return cls(
            tuple(classes), kernel, np.ascontiguousarray(rows), coefficients, intercept, alpha,
            tuple(labels), system, tuple(range(n)), tuple(classes), solved,
        )  # fmt: skip

    @classmethod
    def from_coefficients(
        cls,
        rows: NDArray[np.float64],
        classes: Sequence[Label],
        kernel: ArcCosineKernel,
        alpha: float,
        coefficients: NDArray[np.float64],
        intercept: NDArray[np.float64],
    ) -> KernelHead:
        """The head :meth:`from_samples` solves for ``rows``, from its ``coefficients`` and ``intercept``.

        A model file keeps them, so a process that loads it predicts without solving anything.
        Raises ``ValueError`` unless they are finite float64 of shapes (n, K) and (K,).
        """
        k = len(classes)
        for name, array, shape in (("coefficients", coefficients, (rows.shape[0], k)), ("intercept", intercept, (k,))):
            if array.dtype != np.float64 or array.shape != shape or not np.isfinite(array).all():
                raise ValueError(
                    f"Kernel {name} must be finite float64 of shape {shape}, got {array.dtype} {array.shape}."
                )
        return cls(tuple(classes), kernel, np.ascontiguousarray(rows), coefficients, intercept, alpha)

    def forgotten(self, forgotten: Sequence[int], classes: Sequence[Label]) -> KernelHead:
        """This head after forgetting its live samples at indices ``forgotten`` (of :attr:`support`), by its factor.

        ``classes`` are the classes left. O(n^2 k) for k samples, plus O(n r (K + r)) for the r
        forgotten since the head was solved, against O(n^3 / 3) to solve again; the result
        matches :meth:`from_samples` on the samples left, at this penalty, up to rounding. Raises
        ``ValueError`` for a head without its factor, and ``LinAlgError`` if the correction is
        not positive definite in floating point.
        """
        if self.system is None or self.pending is None:
            raise ValueError("A kernel head read with its coefficients is solved again after a change.")
        gone = sorted(set(forgotten))
        if len(gone) >= len(self.positions):
            raise ValueError("No samples left: the head must be dropped, not updated.")
        rows = [self.positions[i] for i in gone]
        n = self.system.packed.shape[0]
        unit = np.zeros((n, len(rows)))
        unit[rows, np.arange(len(rows))] = 1.0
        new_basis = self.system.solve(unit)  # G for the newly forgotten samples
        labels = [self.labels[i] for i in gone]
        pending = self.pending - matmul(new_basis, _targets_and_ones(labels, self.solved_classes))
        removed = (*self.removed, *rows)
        basis = new_basis if self.correction_basis is None else np.hstack([self.correction_basis, new_basis])
        core = scipy.linalg.cho_factor(basis[list(removed)], check_finite=False)  # G_RR, positive definite
        solved = pending - matmul(basis, scipy.linalg.cho_solve(core, pending[list(removed)], check_finite=False))
        keep = np.ones(len(self.positions), dtype=bool)
        keep[gone] = False
        positions = tuple(p for p, k in zip(self.positions, keep, strict=True) if k)
        column = {label: j for j, label in enumerate(self.solved_classes)}
        columns = [column[label] for label in classes] + [len(self.solved_classes)]
        coefficients, intercept = _constrained(solved[np.ix_(positions, columns)])
        return replace(
            self,
            classes=tuple(classes),
            support=np.ascontiguousarray(self.support[keep]),
            coefficients=coefficients,
            intercept=intercept,
            labels=tuple(label for label, k in zip(self.labels, keep, strict=True) if k),
            positions=positions,
            pending=pending,
            removed=removed,
            correction_basis=basis,
        )

    def decision_function(self, vectors: NDArray[np.float64]) -> NDArray[np.float64]:
        """Predicted one-hot targets (n, K) of input rows in the support's units."""
        queries = self.kernel.directions(np.asarray(vectors, dtype=np.float64))
        return matmul(self.kernel.between(queries, self._support_directions), self.coefficients) + self.intercept

    def predict_proba(self, vectors: NDArray[np.float64], temperature: float = 0.07) -> NDArray[np.float64]:
        """``softmax(scores / temperature)``, as the ridge head's (its scores estimate the same targets)."""
        return softmax(self.decision_function(vectors) / temperature)


def _targets_and_ones(labels: Sequence[Label | None], classes: Sequence[Label]) -> NDArray[np.float64]:
    """``[Y, 1]`` (n, K + 1): one-hot targets over ``classes`` (none for a ``None`` label) and a column of ones."""
    index = {label: j for j, label in enumerate(classes)}
    out = np.zeros((len(labels), len(classes) + 1))
    out[:, -1] = 1.0
    for row, label in enumerate(labels):
        if label is not None:
            out[row, index[label]] = 1.0
    return out


def _constrained(solved: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(C, b)`` from ``[Z_Y, z_1]``: ``b = 1^T Z_Y / 1^T z_1`` and ``C = Z_Y - z_1 b^T``, so that ``1^T C = 0``."""
    ones = solved[:, -1]
    intercept = solved[:, :-1].sum(axis=0) / ones.sum()
    return np.ascontiguousarray(solved[:, :-1] - np.outer(ones, intercept)), intercept

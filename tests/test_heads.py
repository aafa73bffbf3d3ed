"""Heads against independent float64 references computed from the samples themselves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge

from erasable.heads import GaussianHead, PrototypeHead, RidgeHead
from erasable.heads.base import full_symmetric
from erasable.heads.gcv import TridiagonalSpectrum, alpha_lattice, gcv_width
from erasable.heads.penalized import PenalizedGram
from erasable.heads.ridge import uses_dual
from erasable.moments import Moments


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centers = rng.integers(-2000, 2000, size=(4, 10))
    y = rng.integers(0, 4, 300)
    x = centers[y] + rng.integers(-1500, 1500, size=(300, 10))
    return x, y


def one_hot(y: np.ndarray) -> np.ndarray:
    return (y[:, None] == np.unique(y)[None, :]).astype(np.float64)


@pytest.mark.parametrize("alpha", [1e-3, 1.0, 1e4])
def test_ridge_equals_scikit_learn_ridge(data: tuple[np.ndarray, np.ndarray], alpha: float) -> None:
    x, y = data
    unit = 64.0
    head = RidgeHead.from_moments(Moments.from_samples(x, y), alpha=alpha, unit=unit)
    reference = Ridge(alpha=alpha * unit, fit_intercept=True, solver="cholesky").fit(x.astype(np.float64), one_hot(y))
    probe = x[:40].astype(np.float64) + 17.0
    np.testing.assert_allclose(head.weights, reference.coef_.T, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(head.decision_function(probe), reference.predict(probe), rtol=1e-8, atol=1e-10)


def test_gcv_choice_matches_a_brute_force_hat_matrix(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    head = RidgeHead.from_moments(Moments.from_samples(x, y), alpha=None)
    xc = x - x.mean(axis=0)
    yc = one_hot(y) - one_hot(y).mean(axis=0)
    scale = np.trace(xc.T @ xc) / x.shape[1]
    scores = {}
    for a in alpha_lattice(scale, 1.0):
        hat = xc @ np.linalg.solve(xc.T @ xc + a * np.eye(x.shape[1]), xc.T)
        residual = yc - hat @ yc
        scores[a] = (residual**2).sum() / (x.shape[0] - 1 - np.trace(hat)) ** 2
    best = min(scores.values())
    assert scores[head.alpha] == pytest.approx(best, rel=1e-9)


def test_prototype_head_uses_class_means(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    probe = x[:25].astype(np.float64)
    means = np.array([x[y == c].mean(axis=0) for c in range(4)])
    euclid = PrototypeHead.from_moments(Moments.from_samples(x, y), metric="euclidean")
    distances = ((probe[:, None, :] - means[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(euclid.decision_function(probe), -distances, rtol=1e-9)
    cosine = PrototypeHead.from_moments(Moments.from_samples(x, y), metric="cosine")
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    expected = (probe / np.linalg.norm(probe, axis=1, keepdims=True)) @ unit.T
    np.testing.assert_allclose(cosine.decision_function(probe), expected, rtol=1e-9)
    np.testing.assert_allclose(cosine.predict_proba(probe).sum(axis=1), 1.0)


def test_gaussian_head_is_lda_with_shrinkage(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    shrinkage = 0.2
    head = GaussianHead.from_moments(Moments.from_samples(x, y), shrinkage=shrinkage)
    means = np.array([x[y == c].mean(axis=0) for c in range(4)])
    centered = x - means[y]
    covariance = centered.T @ centered / (len(x) - 4)
    covariance = (1 - shrinkage) * covariance + shrinkage * np.trace(covariance) / 10 * np.eye(10)
    precision = np.linalg.inv(covariance)
    priors = np.bincount(y) / len(y)
    probe = x[:30].astype(np.float64) * 1.1
    expected = probe @ precision @ means.T - 0.5 * np.einsum("kd,de,ke->k", means, precision, means) + np.log(priors)
    np.testing.assert_allclose(head.decision_function(probe), expected, rtol=1e-7)
    diff = probe[:, None, :] - means[None]
    mahalanobis = np.einsum("nkd,de,nke->nk", diff, precision, diff).min(axis=1)
    np.testing.assert_allclose(head.ood_score(probe), mahalanobis, rtol=1e-7)


def test_woodbury_learning_matches_canonical_even_for_a_new_class(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    old = y < 3
    first = np.flatnonzero(old)[:150]
    newcomers = np.flatnonzero(~old)[:4]
    head = RidgeHead.from_moments(Moments.from_samples(x[first], y[first]), alpha=1.0)
    both = np.concatenate([first, newcomers])
    after = Moments.from_samples(x[both], y[both])
    grown = head.updated(x[newcomers].astype(np.float64), y[newcomers].tolist(), +1, after)
    canonical = RidgeHead.from_moments(after, alpha=1.0)
    assert grown.classes == canonical.classes == (0, 1, 2, 3)
    scale = np.abs(canonical.weights).max()
    np.testing.assert_allclose(grown.weights, canonical.weights, rtol=0, atol=1e-9 * scale)
    shrunk = grown.updated(
        x[newcomers].astype(np.float64), y[newcomers].tolist(), -1, Moments.from_samples(x[first], y[first])
    )
    assert shrunk.classes == head.classes and shrunk.rank_since_refresh == 10
    np.testing.assert_allclose(shrunk.weights, head.weights, rtol=0, atol=1e-9 * np.abs(head.weights).max())


@pytest.fixture
def wide(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Few samples of many features, a fifth of them mislabelled: the regime the ridge head solves in the dual."""
    y = rng.integers(0, 3, 40)
    x = rng.integers(-3000, 3000, size=(3, 200))[y] + rng.integers(-6000, 6000, size=(40, 200))
    y[:8] = (y[:8] + 1) % 3
    return x, y


@pytest.mark.parametrize("alpha", [1e-2, 10.0])
def test_dual_head_equals_scikit_learn_ridge(wide: tuple[np.ndarray, np.ndarray], alpha: float) -> None:
    x, y = wide
    moments = Moments.from_samples(x, y)
    assert uses_dual(moments.count, moments.dim)
    head = RidgeHead.from_moments(moments, alpha=alpha, samples=(x.astype(np.float64), y.tolist()))
    reference = Ridge(alpha=alpha, fit_intercept=True, solver="svd").fit(x.astype(np.float64), one_hot(y))
    probe = x[:5].astype(np.float64) * 0.9 + 3.0
    np.testing.assert_allclose(head.decision_function(probe), reference.predict(probe), rtol=1e-8, atol=1e-10)
    assert head.system is None  # nothing of D x D was formed


def test_a_dual_head_of_repeated_samples_at_a_tiny_penalty_is_finite(wide: tuple[np.ndarray, np.ndarray]) -> None:
    """Rounding leaves such a kernel plus the penalty indefinite, where a Cholesky factor fails."""
    x, y = wide
    x, y = np.vstack([x[:10], x[:10]]), np.concatenate([y[:10], y[:10]])
    moments = Moments.from_samples(x, y)
    head = RidgeHead.from_moments(moments, alpha=1e-15, samples=(x.astype(np.float64), y.tolist()))
    assert np.isfinite(head.weights).all()
    scores = head.decision_function(x[:10].astype(np.float64))
    assert (scores.argmax(axis=1) == np.searchsorted(moments.classes, y[:10])).all()  # it interpolates its samples


def test_dual_gcv_matches_a_brute_force_hat_matrix_on_its_block_and_needs_the_samples(
    wide: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = wide
    moments = Moments.from_samples(x, y)
    with pytest.raises(ValueError, match="dual"):
        RidgeHead.from_moments(moments)
    head = RidgeHead.from_moments(moments, samples=(x.astype(np.float64), y.tolist()))
    width = gcv_width(len(y), x.shape[1])
    assert width == len(y) // 2 < x.shape[1]  # fewer features than half the samples: GCV reads a block
    xc = (x - x.mean(axis=0))[:, :width]
    yc = one_hot(y) - one_hot(y).mean(axis=0)
    scores = {}
    for a in alpha_lattice(np.trace(xc.T @ xc) / width, 1.0):
        hat = xc @ np.linalg.solve(xc.T @ xc + a * np.eye(width), xc.T)
        scores[a] = ((yc - hat @ yc) ** 2).sum() / (len(y) - 1 - np.trace(hat)) ** 2
    assert scores[head.alpha] == pytest.approx(min(scores.values()), rel=1e-9)


def test_tridiagonal_spectrum_matches_an_eigendecomposition(rng: np.random.Generator) -> None:
    features = rng.standard_normal((60, 25)) @ np.diag(np.logspace(0, 3, 25))  # eigenvalues over six decades
    cross = features.T @ rng.standard_normal((60, 4))
    gram = features.T @ features
    spectrum = TridiagonalSpectrum.of(np.triu(gram), cross)  # only the upper triangle is read
    eigenvalues = np.linalg.eigvalsh(gram)
    np.testing.assert_allclose(np.sort(spectrum.eigenvalues), eigenvalues, rtol=1e-10, atol=1e-8 * eigenvalues[-1])
    for lam in np.logspace(-2, 6, 9):
        m = np.linalg.inv(gram + lam * np.eye(25))
        expected = 100.0 - 2 * np.trace(cross.T @ m @ cross) + np.trace(cross.T @ m @ gram @ m @ cross)
        np.testing.assert_allclose(spectrum.residual(np.array([lam]), 100.0), [expected], rtol=1e-9)


def test_penalized_gram_solves_to_float64_accuracy_up_to_ill_conditioned_systems(rng: np.random.Generator) -> None:
    basis = np.linalg.qr(rng.standard_normal((40, 40)))[0]
    rhs = rng.standard_normal((40, 3))
    for condition in (1e4, 1e11):
        gram = basis @ np.diag(np.logspace(0, np.log10(condition), 40)) @ basis.T
        system = PenalizedGram.cholesky(gram, lam=1e-3)
        x = system.solve(rhs)
        residual = (gram + 1e-3 * np.eye(40)) @ x - rhs
        assert np.abs(residual).max() <= 1e-13 * condition * np.abs(x).max()  # as small as a float64 solve's
    well = basis @ np.diag(np.logspace(0, 4, 40)) @ basis.T
    np.testing.assert_allclose(
        PenalizedGram.cholesky(well, lam=1e-3).solve(rhs), np.linalg.solve(well + 1e-3 * np.eye(40), rhs)
    )
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        PenalizedGram.cholesky(-well, lam=1e-3)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dim", [30, 600])  # 600: LAPACK's blocked factorization, not only its unblocked kernel
def test_penalized_gram_factored_in_place_answers_as_a_copy_does(
    rng: np.random.Generator, order: str, dim: int
) -> None:
    """One array holds the factor and the Gram: products and solves are those of the untouched matrix."""
    rows = rng.standard_normal((2 * dim, dim))
    gram, vectors = rows.T @ rows, rng.standard_normal((dim, 4))
    expected = (gram + 0.5 * np.eye(dim)) @ vectors
    copied = PenalizedGram.cholesky(gram, lam=0.5)
    consumed = np.array(gram, order=order)
    in_place = PenalizedGram.cholesky(consumed, lam=0.5, overwrite=True)
    assert np.shares_memory(in_place.packed, consumed) and not np.shares_memory(copied.packed, gram)
    for system in (in_place, copied):
        np.testing.assert_allclose(system.multiply(vectors), expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
        np.testing.assert_allclose(system.multiply(vectors[:, 0]), expected[:, 0], rtol=1e-12, atol=1e-9)
        residual = (gram + 0.5 * np.eye(dim)) @ system.solve(vectors) - vectors
        assert np.abs(residual).max() < 1e-10


@settings(max_examples=30, deadline=None)
@given(dim=st.integers(1, 40), block=st.integers(1, 17), seed=st.integers(0, 2**16))
def test_full_symmetric_mirrors_the_upper_triangle_by_blocks(dim: int, block: int, seed: int) -> None:
    upper = np.triu(np.random.default_rng(seed).integers(-(2**40), 2**40, size=(dim, dim)))
    expected = upper + np.triu(upper, 1).T
    assert np.array_equal(full_symmetric(upper, block=block), expected.astype(np.float64))

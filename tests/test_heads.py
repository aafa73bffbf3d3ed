"""Heads against independent float64 references computed from the samples themselves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from erasable.heads import GaussianHead, PrototypeHead, RidgeHead
from erasable.heads.ridge import alpha_lattice
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

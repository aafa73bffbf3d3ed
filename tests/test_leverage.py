"""The ridge head's leverage, which the default OOD score reads: what it is, and that it follows the statistics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

from erasable.heads.gcv import gcv_width
from erasable.heads.leverage import Leverage
from erasable.heads.ridge import RidgeHead
from erasable.model import Model
from erasable.moments import Moments
from tests.conftest import relu_config, unit_rows


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), dim=st.integers(1, 9), lam=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_ratio_is_the_penalized_mahalanobis_distance_over_its_training_mean(
    n: int, dim: int, lam: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(-30, 30, size=(n, dim))
    leverage = Leverage.from_moments(Moments.from_samples(rows, rng.integers(0, 3, n)), lam=lam)
    width = gcv_width(n, dim)
    block = rows[:, :width].astype(np.float64)
    centred = block - block.mean(axis=0)
    metric = np.linalg.inv(centred.T @ centred + lam * np.eye(width))
    queries = rng.normal(0, 40, size=(5, dim))
    direct = np.einsum(
        "ij,jk,ik->i", queries[:, :width] - block.mean(axis=0), metric, queries[:, :width] - block.mean(axis=0)
    )
    training = np.einsum("ij,jk,ik->i", centred, metric, centred)
    if training.mean() > 1e-9:  # samples that are all alike leave no spread to compare with
        np.testing.assert_allclose(leverage.ratio(queries), direct / training.mean(), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(leverage.ratio(rows.astype(np.float64)).mean(), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("moments", "lam", "message"),
    [
        (Moments.empty(3), 1.0, "empty statistics"),
        (Moments.from_samples(np.eye(3, dtype=np.int64), [0, 1, 1]), 0.0, "must be positive"),
    ],
)
def test_refuses_empty_statistics_and_a_non_positive_penalty(moments: Moments, lam: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Leverage.from_moments(moments, lam)


def test_softening_never_changes_the_predicted_class_and_raises_the_score_with_leverage() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 0.3, (50, 4))
    plain = RidgeHead.ood_score_of(scores, np.zeros(50))
    softer = RidgeHead.ood_score_of(scores, np.full(50, 3.0))
    assert np.all(softer >= plain) and np.all((plain >= 0) & (softer < 1))
    top = 1.0 - scipy.special.softmax(scores / 0.07, axis=1).max(axis=1)
    np.testing.assert_allclose(plain, top)  # no leverage: 1 - the top probability


def test_ood_scores_after_a_forget_are_the_refit_models() -> None:
    rng = np.random.default_rng(2)
    model = Model(relu_config(dim=6, width=24))
    model.learn(unit_rows(rng, 120, 6), rng.integers(0, 3, 120))
    queries = unit_rows(rng, 20, 6)
    before = model.ood_score(queries)
    model.forget(ids=[str(i) for i in range(0, 120, 3)])
    after = model.ood_score(queries)
    assert not np.allclose(before, after)  # the leverage followed the change
    np.testing.assert_allclose(after, model.refit().ood_score(queries), rtol=1e-7, atol=1e-10)
    decision, probabilities, ood = model.predictions(queries)
    np.testing.assert_array_equal(decision, model.decision_function(queries))
    np.testing.assert_array_equal(ood, after)
    np.testing.assert_array_equal(probabilities, model.predict_proba(queries))

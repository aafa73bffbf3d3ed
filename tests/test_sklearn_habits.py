"""scikit-learn habits (issue 14, item 14): ``feature_names_in_`` from a DataFrame, and ``sample_weight`` as
exact integer repeat counts (fractions refused with a clear message)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from erasable import ErasableClassifier


@pytest.fixture(scope="module")
def digits() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_digits(return_X_y=True, as_frame=True)
    return X / 16, y


def small() -> ErasableClassifier:
    return ErasableClassifier(width=128, scale_bits=11)


def test_feature_names_come_from_a_dataframe(digits: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = digits
    clf = small().fit(X[:300], y[:300])
    assert clf.feature_names_in_.tolist() == X.columns.tolist() and clf.n_features_in_ == 64
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(X[300:310].to_numpy())
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X[300:310].rename(columns={"pixel_0_0": "other"}))


def test_integer_sample_weights_are_repeats(digits: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = digits[0].iloc[:60], digits[1].iloc[:60]
    weights = np.arange(60) % 3  # 0, 1, 2, 0, 1, 2, ...
    rows = np.repeat(np.arange(60), weights)
    weighted = small().fit(X, y, sample_weight=weights, subjects=[f"u{i % 4}" for i in range(60)])
    repeated = small().fit(X.iloc[rows], y.iloc[rows])
    assert weighted.certificate() == repeated.certificate() and weighted.model_.count == len(rows)
    np.testing.assert_array_equal(weighted.predict_proba(X), repeated.predict_proba(X))
    weighted.forget(subjects=["u1"])  # every copy of the subject's samples
    assert "u1" not in set(weighted.model_.registry.subjects)
    kept = [i for i in rows if i % 4 != 1]
    assert weighted.certificate() == small().fit(X.iloc[kept], y.iloc[kept]).certificate()
    partial = small().partial_fit(X, y, sample_weight=weights)
    assert partial.certificate() == repeated.certificate()


@pytest.mark.parametrize(
    ("weights", "ids", "message"),
    [
        ([0.5, 1.0, 1.0], None, "non-negative integers"),
        ([-1, 1, 1], None, "non-negative integers"),
        ([1, 1], None, r"one weight per sample \(3\)"),
        ([0, 0, 0], None, "at least one non-zero"),
        ([2, 1, 1], ["a", "b", "c"], "one id twice"),
    ],
)
def test_other_sample_weights_are_refused(weights: list[float], ids: list[str] | None, message: str) -> None:
    X, y = np.eye(3) / 2, ["x", "y", "x"]
    with pytest.raises(ValueError, match=message):
        small().fit(X, y, ids=ids, sample_weight=weights)

"""The default OOD score tells held-out intents apart better than the Mahalanobis distance it replaced, and
another assistant's queries apart better than the plain top probability."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from erasable import ErasableClassifier
from tests.conftest import BANKING77, HWU64


def test_ood_score_separates_held_out_banking77_intents(banking77: dict[str, np.ndarray]) -> None:
    if not BANKING77.exists():
        pytest.skip(f"shared data not found at {BANKING77}")
    x, y, xt, yt = banking77["X_train"], banking77["y_train"], banking77["X_test"], banking77["y_test"]
    unknown = np.unique(y)[::7]  # 11 of the 77 intents are never learned
    known = ~np.isin(y, unknown)
    clf = ErasableClassifier().fit(x[known][::2], y[known][::2])
    is_ood = np.isin(yt, unknown)
    score = clf.ood_score(xt)
    assert np.all((score >= 0) & (score < 1))
    mahalanobis = clf.model_.head("gaussian").ood_score(clf.model_.head_inputs(xt, "gaussian"))  # the former default
    assert roc_auc_score(is_ood, score) > max(0.85, roc_auc_score(is_ood, mahalanobis) + 0.05)


def test_ood_score_tells_another_assistants_queries_apart(banking77: dict[str, np.ndarray]) -> None:
    if not HWU64.exists():
        pytest.skip(f"shared data not found at {HWU64}")
    with np.load(HWU64) as hwu64:
        foreign = hwu64["X_test"]  # home-assistant queries put to a banking model
    clf = ErasableClassifier().fit(banking77["X_train"][::2], banking77["y_train"][::2])
    queries = np.concatenate([banking77["X_test"], foreign])
    is_ood = np.r_[np.zeros(len(banking77["X_test"]), dtype=bool), np.ones(len(foreign), dtype=bool)]
    softened, plain = clf.ood_score(queries), 1.0 - clf.predict_proba(queries).max(axis=1)

    def let_through(score: np.ndarray) -> float:  # unknowns below the threshold that keeps 95% of the knowns
        return float(np.mean(score[is_ood] <= np.quantile(score[~is_ood], 0.95)))

    assert roc_auc_score(is_ood, softened) > max(0.975, roc_auc_score(is_ood, plain))
    assert let_through(softened) < 0.5 * let_through(plain)

"""The default OOD score tells held-out intents apart better than the Mahalanobis distance it replaced."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from erasable import ErasableClassifier
from tests.conftest import BANKING77


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

"""Every unlearning baseline learns on a small real subset of BANKING77 (above chance), and forgets as specified."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks.baselines.training import TrainConfig
from benchmarks.baselines.unlearning import (
    HeadSpec,
    Sisa,
    Unlearned,
    finetune,
    fit_head,
    neggrad_plus,
    probabilities,
    retrain,
    ssd,
    train_importance,
)

CLASSES = 10  # chance: 10%
SPEC = HeadSpec(n_classes=CLASSES, hidden=64, config=TrainConfig(epochs=15, batch_size=32, lr=3e-3, seed=0))


@pytest.fixture
def subset(banking77: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The first 10 classes (in sorted order, as integers 0..9): about 1,400 training and 400 test samples."""
    names = np.unique(banking77["y_train"])[:CLASSES]
    train, test = np.isin(banking77["y_train"], names), np.isin(banking77["y_test"], names)
    return {
        "x": banking77["X_train"][train],
        "y": np.searchsorted(names, banking77["y_train"][train]),
        "x_test": banking77["X_test"][test],
        "y_test": np.searchsorted(names, banking77["y_test"][test]),
    }


def accuracy_on_test(model: Unlearned | Sisa | object, data: dict[str, np.ndarray]) -> float:
    """Test accuracy of an unlearned result, an ensemble or a head."""
    if isinstance(model, Unlearned):
        proba = model.predict_proba(data["x_test"])
    else:
        proba = probabilities(model, data["x_test"])  # type: ignore[arg-type]
    return float(np.mean(proba.argmax(axis=1) == data["y_test"]))


def test_every_baseline_learns_and_unlearns(subset: dict[str, np.ndarray]) -> None:
    x, y = subset["x"], subset["y"]
    rows = np.arange(len(y))
    forget = np.sort(np.random.default_rng(0).choice(rows, size=len(rows) // 10, replace=False))
    retain = np.setdiff1d(rows, forget)
    original = fit_head(x, y, rows, SPEC)
    assert accuracy_on_test(original, subset) > 0.6

    short = TrainConfig(epochs=2, batch_size=32, lr=3e-3, seed=0)
    importance = train_importance(original, x, y, rows)
    sisa = Sisa.fit(x, y, rows, SPEC, n_shards=3, seed=0)
    results = {
        "retrain": retrain(x, y, retain, SPEC),
        "finetune": finetune(original, x, y, retain, short),
        "neggrad+": neggrad_plus(original, x, y, retain, forget, short, beta=0.95),
        "ssd": ssd(original, x, y, forget, importance, alpha=10.0, lam=1.0),
        "sisa": sisa.forget(x, y, forget, SPEC),
    }
    for name, result in results.items():
        assert result.seconds > 0, name
        assert accuracy_on_test(result, subset) > 0.5, name  # chance is 0.1
        proba = result.predict_proba(x[:5])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5, err_msg=name)
    assert accuracy_on_test(sisa, subset) > 0.5


def test_ssd_dampens_only_parameters_important_to_the_forget_set(subset: dict[str, np.ndarray]) -> None:
    x, y = subset["x"], subset["y"]
    rows = np.arange(len(y))
    original = fit_head(x, y, rows, SPEC)
    importance = train_importance(original, x, y, rows)
    forget = np.flatnonzero(y == 3)
    dampened = ssd(original, x, y, forget, importance, alpha=2.0, lam=1.0).model
    changed = 0
    for (name, before), after in zip(original.named_parameters(), dampened.parameters(), strict=True):  # type: ignore[union-attr]
        ratio = (after / before).detach()[before.detach() != 0]
        assert bool(((ratio <= 1 + 1e-6) & (ratio >= 0)).all()), name  # only shrunk, never flipped or grown
        changed += int((ratio < 1 - 1e-6).sum())
    assert changed > 0
    # forgetting a whole class by dampening hurts that class more than the others
    proba = probabilities(dampened, subset["x_test"])
    on_class = subset["y_test"] == 3
    assert np.mean(proba[on_class].argmax(1) == 3) < np.mean(proba[~on_class].argmax(1) == subset["y_test"][~on_class])


def test_sisa_retrains_only_the_shards_that_held_forgotten_samples(subset: dict[str, np.ndarray]) -> None:
    x, y = subset["x"], subset["y"]
    rows = np.arange(len(y))
    sisa = Sisa.fit(x, y, rows, SPEC, n_shards=4, seed=1)
    assert sorted(np.concatenate(sisa.shards).tolist()) == rows.tolist()
    victim = sisa.shards[2][:3]
    after = sisa.forget(x, y, victim, SPEC).model
    assert isinstance(after, Sisa)
    assert [h is g for h, g in zip(sisa.heads, after.heads, strict=True)] == [True, True, False, True]
    assert not np.isin(victim, np.concatenate(after.shards)).any()

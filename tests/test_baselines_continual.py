"""Each continual-learning baseline learns something real: above chance on a small BANKING77 subset.

A broken baseline (no training, wrong labels, a mask hiding every class) would sit at chance,
1/77 here, so these tests guard the comparison in ``benchmarks/bench_continual.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks.baselines.continual import EWC, NCM, FineTune, HeadSpec, Joint, Learner, LwF, Replay, run_phases
from benchmarks.baselines.training import TrainConfig, accuracy, diagonal_fisher, make_head, train

from erasable.audit.continual import last_accuracy
from erasable.audit.protocols import class_incremental


def subset(banking77: dict[str, np.ndarray], n_classes: int = 20) -> tuple[np.ndarray, ...]:
    """The first ``n_classes`` classes of BANKING77 (integer labels), train and test."""
    names = np.unique(banking77["y_train"])[:n_classes]
    train, test = np.isin(banking77["y_train"], names), np.isin(banking77["y_test"], names)
    y, y_test = np.searchsorted(names, banking77["y_train"][train]), np.searchsorted(names, banking77["y_test"][test])
    return banking77["X_train"][train], y, banking77["X_test"][test], y_test


SPEC = HeadSpec(in_dim=384, n_classes=20, hidden=64, seed=0, train=TrainConfig(epochs=5, batch_size=64, lr=3e-3))
LEARNERS: dict[str, Callable[[], Learner]] = {
    "joint": lambda: Joint(SPEC),
    "fine-tune": lambda: FineTune(SPEC),
    "EWC": lambda: EWC(SPEC, strength=100.0),
    "LwF": lambda: LwF(SPEC, strength=1.0),
    "replay": lambda: Replay(SPEC, size=200),
    "NCM": lambda: NCM(384, 20),
}


@pytest.mark.parametrize("name", list(LEARNERS))
def test_each_baseline_beats_chance(banking77: dict[str, np.ndarray], name: str) -> None:
    x, y, x_test, y_test = subset(banking77)
    split = class_incremental(y, 2, seed=0)
    acc, weights = run_phases(LEARNERS[name](), split, x, y, x_test, y_test)
    assert acc[0, 0] > 0.6  # the first phase, 10 classes: chance is 0.1
    # the last phase's own classes are learned by every method (forgetting hits the earlier ones)
    assert acc[1, 1] > 0.6
    if name in ("joint", "replay", "NCM"):  # the methods that keep old classes
        assert last_accuracy(acc, weights) > 0.6


def test_training_is_deterministic_and_fisher_is_positive(banking77: dict[str, np.ndarray]) -> None:
    x, y, x_test, y_test = subset(banking77, n_classes=5)
    config = TrainConfig(epochs=5, lr=3e-3, seed=1)
    heads = [train(make_head(384, 5, hidden=16, seed=2), x, y, config) for _ in range(2)]
    assert all((a == b).all() for a, b in zip(heads[0].parameters(), heads[1].parameters(), strict=True))
    assert accuracy(heads[0], x_test, y_test) > 0.6
    fisher = diagonal_fisher(heads[0], x[:100], y[:100])
    assert all((f >= 0).all() for f in fisher.values()) and sum(float(f.sum()) for f in fisher.values()) > 0


def test_negative_weights_ascend(banking77: dict[str, np.ndarray]) -> None:
    """Gradient ascent on some samples (NegGrad) drives the accuracy on them down."""
    x, y, _, _ = subset(banking77, n_classes=5)
    head = train(make_head(384, 5, seed=0), x, y, TrainConfig(epochs=5, lr=3e-3))
    before = accuracy(head, x[:50], y[:50])
    train(head, x[:50], y[:50], TrainConfig(epochs=10, batch_size=10, lr=1e-2), sample_weight=-np.ones(50))
    assert accuracy(head, x[:50], y[:50]) < before - 0.3

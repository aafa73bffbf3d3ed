"""Continual-learning metrics against hand-computed cases, and the properties of the protocol splits."""

from __future__ import annotations

import numpy as np
import pytest

from erasable.audit.continual import (
    average_incremental_accuracy,
    backward_transfer,
    forgetting,
    last_accuracy,
    seen_accuracy,
)
from erasable.audit.protocols import (
    PhaseSplit,
    class_incremental,
    dirichlet_clients,
    generalized_incremental,
    samples_of,
)

NAN = np.nan
# Three phases, worked by hand below.
ACC = [[0.8, NAN, NAN], [0.6, 0.9, NAN], [0.7, 0.5, 1.0]]


def test_seen_accuracy_is_the_sample_weighted_mean() -> None:
    # after phase 1: (0.6*10 + 0.9*30) / 40 = 0.825; after phase 2: (7 + 15 + 60) / 100 = 0.82
    assert seen_accuracy(ACC, weights=[10, 30, 60]) == pytest.approx([0.8, 0.825, 0.82])


def test_average_incremental_and_last_accuracy_by_hand() -> None:
    # unweighted: phases see 0.8, (0.6+0.9)/2 = 0.75, (0.7+0.5+1.0)/3 = 0.7333...
    assert average_incremental_accuracy(ACC) == pytest.approx((0.8 + 0.75 + 2.2 / 3) / 3)
    assert last_accuracy(ACC) == pytest.approx(2.2 / 3)
    assert average_incremental_accuracy(ACC, [10, 30, 60]) == pytest.approx((0.8 + 0.825 + 0.82) / 3)


def test_forgetting_uses_the_best_earlier_accuracy() -> None:
    # phase 0: best of 0.8, 0.6 is 0.8, final 0.7 -> 0.1; phase 1: 0.9 -> 0.5 = 0.4; mean 0.25
    assert forgetting(ACC) == pytest.approx(0.25)


def test_backward_transfer_uses_the_accuracy_just_after_learning() -> None:
    # (0.7 - 0.8 + 0.5 - 0.9) / 2 = -0.25; an improvement counts positively
    assert backward_transfer(ACC) == pytest.approx(-0.25)
    assert backward_transfer([[0.5, NAN], [0.7, 0.9]]) == pytest.approx(0.2)
    assert forgetting([[0.5, NAN], [0.7, 0.9]]) == pytest.approx(-0.2)


def test_single_phase_and_invalid_matrices() -> None:
    assert forgetting([[0.9]]) == backward_transfer([[0.9]]) == 0.0
    assert last_accuracy([[0.9]]) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="square"):
        forgetting([[0.9, 0.1]])
    with pytest.raises(ValueError, match="NaN"):
        forgetting([[0.9, NAN], [NAN, 0.5]])
    with pytest.raises(ValueError, match="positive"):
        seen_accuracy(ACC, weights=[1, 0, 1])


LABELS = np.repeat(np.arange(10), [5, 7, 3, 9, 4, 6, 8, 5, 2, 11])


@pytest.mark.parametrize("base_half", [False, True])
def test_class_incremental_phases_partition_classes_and_samples(base_half: bool) -> None:
    split = class_incremental(LABELS, 4, base_half=base_half, seed=3)
    assert split.n_phases == (5 if base_half else 4)
    assert sorted(np.concatenate(split.new_classes).tolist()) == list(range(10))
    assert sorted(np.concatenate(split.indices).tolist()) == list(range(len(LABELS)))
    for classes, indices in zip(split.new_classes, split.indices, strict=True):
        assert set(LABELS[indices]) == set(classes.tolist())
    if base_half:
        assert len(split.new_classes[0]) == 5
    assert split.seen_classes(1).tolist() == sorted(np.concatenate(split.new_classes[:2]).tolist())


def test_splits_are_deterministic_per_seed() -> None:
    def as_lists(split: PhaseSplit) -> tuple[list[list[int]], list[list[int]]]:
        return [c.tolist() for c in split.new_classes], [i.tolist() for i in split.indices]

    for make in (lambda s: class_incremental(LABELS, 5, seed=s), lambda s: generalized_incremental(LABELS, 3, seed=s)):
        assert as_lists(make(7)) == as_lists(make(7))
        assert as_lists(make(7)) != as_lists(make(8))
    first = [p.tolist() for p in dirichlet_clients(LABELS, 4, seed=2)]
    assert first == [p.tolist() for p in dirichlet_clients(LABELS, 4, seed=2)]
    assert first != [p.tolist() for p in dirichlet_clients(LABELS, 4, seed=5)]


def test_generalized_phases_mix_new_and_old_classes() -> None:
    y = np.repeat(np.arange(20), 30)
    split = generalized_incremental(y, 4, concentration=1.0, seed=0)
    assert sorted(np.concatenate(split.indices).tolist()) == list(range(len(y)))
    assert sorted(np.concatenate(split.new_classes).tolist()) == list(range(20))
    for phase, indices in enumerate(split.indices):
        present = set(y[indices].tolist())
        assert set(split.new_classes[phase].tolist()) <= present  # every new class really appears
        assert present <= set(split.seen_classes(phase).tolist())  # no class before its first phase
        if phase > 0:
            assert present - set(split.new_classes[phase].tolist())  # old classes come back
    sizes = [len(i) for i in split.indices]
    assert max(sizes) > 1.2 * min(sizes)  # imbalanced


def test_dirichlet_clients_partition_the_samples_non_iid() -> None:
    y = np.repeat(np.arange(10), 100)
    parts = dirichlet_clients(y, 5, alpha=0.1, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    shares = np.array([[np.mean(y[p] == c) if len(p) else 0.0 for c in range(10)] for p in parts])
    assert shares.max() > 0.3  # a small alpha concentrates classes (IID would give 0.1 each)


def test_samples_of_selects_by_class() -> None:
    assert samples_of(LABELS, [8]).tolist() == np.flatnonzero(LABELS == 8).tolist()

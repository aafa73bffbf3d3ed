"""Moments: algebra, class bookkeeping, canonical identity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erasable.moments import Moments, MomentsMismatchError, canonical_labels


def batch(rng: np.random.Generator, n: int, labels: list[object]) -> tuple[np.ndarray, list[object]]:
    return rng.integers(-1000, 1000, size=(n, 4)), [labels[i % len(labels)] for i in range(n)]


def test_from_samples_matches_definitions(rng: np.random.Generator) -> None:
    x, y = batch(rng, 9, ["b", "a", "c"])
    m = Moments.from_samples(x, y)
    assert m.classes == ("a", "b", "c")
    assert m.class_counts.tolist() == [3, 3, 3]
    labels = np.array(y)
    for c, label in enumerate(m.classes):
        assert np.array_equal(m.class_sums[c], x[labels == label].sum(axis=0))
    assert np.array_equal(m.gram, np.triu(x.T @ x))


def test_add_then_subtract_is_identity_and_drops_empty_classes(rng: np.random.Generator) -> None:
    xa, ya = batch(rng, 6, [1, 2])
    xb, yb = batch(rng, 4, [3])
    a, b = Moments.from_samples(xa, ya), Moments.from_samples(xb, yb)
    both = a + b
    assert both.classes == (1, 2, 3)
    assert (both - b).equals(a)
    assert (both - b).classes == (1, 2)
    assert (both - b).digest() == a.digest()


def test_merge_is_order_independent(rng: np.random.Generator) -> None:
    parts = [Moments.from_samples(*batch(rng, 5, ["x", "y"])) for _ in range(4)]
    forward = parts[0] + parts[1] + parts[2] + parts[3]
    backward = parts[3] + (parts[2] + (parts[1] + parts[0]))
    assert forward.digest() == backward.digest()


def test_subtracting_never_added_samples_is_refused(rng: np.random.Generator) -> None:
    a = Moments.from_samples(*batch(rng, 3, ["x"]))
    other = Moments.from_samples(*batch(rng, 3, ["y"]))
    with pytest.raises(MomentsMismatchError, match="never added"):
        a - other
    same_class_other_values = Moments.from_samples(*batch(rng, 3, ["x"]))
    with pytest.raises(MomentsMismatchError, match="inconsistent"):
        a - same_class_other_values


def test_mixed_label_types_are_refused(rng: np.random.Generator) -> None:
    x, _ = batch(rng, 2, [0])
    with pytest.raises(MomentsMismatchError, match="mix"):
        Moments.from_samples(x, [1, 2]) + Moments.from_samples(x, ["a", "b"])
    with pytest.raises(ValueError, match="Unknown label type"):
        canonical_labels(np.array([1, "a"], dtype=object))
    with pytest.raises(ValueError, match="whole numbers"):
        canonical_labels([0.5, 1.0])


def test_digest_sees_every_statistic(rng: np.random.Generator) -> None:
    x, y = batch(rng, 5, ["p", "q"])
    base = Moments.from_samples(x, y)
    x2 = x.copy()
    x2[0, 0] += 1
    assert Moments.from_samples(x2, y).digest() != base.digest()
    assert Moments.from_samples(x, ["p", "p", "q", "q", "q"]).digest() != base.digest()
    assert (
        Moments.from_samples(x, [1, 2, 1, 2, 1]).digest() != Moments.from_samples(x, ["1", "2", "1", "2", "1"]).digest()
    )


def test_moments_are_immutable(rng: np.random.Generator) -> None:
    m = Moments.from_samples(*batch(rng, 3, ["x"]))
    with pytest.raises(ValueError):
        m.gram[0, 0] = 1


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    forget=st.integers(0, 3),
    width=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_a_deferred_gram_is_the_gram_of_its_samples(sizes: list[int], forget: int, width: int, seed: int) -> None:
    """Small batches added to nothing keep their rows; every reading equals the eagerly summed statistics."""
    rng = np.random.default_rng(seed)
    batches = [batch(rng, n, ["a", "b", "c"]) for n in sizes]
    deferred = Moments.empty(6)
    for x, y in batches:  # dim 6: up to six samples stay deferred, the rest are summed into a Gram
        deferred = deferred.with_samples(np.hstack([x, x[:, :2]]), y)
    rows = np.vstack([np.hstack([x, x[:, :2]]) for x, _ in batches])
    labels = [label for _, y in batches for label in y]
    eager = Moments.from_samples(rows, labels)
    assert np.array_equal(deferred.gram_block(width), eager.gram[:width, :width])
    forget = min(forget, len(labels) - 1)
    if forget:
        doomed = Moments.from_samples(rows[:forget], labels[:forget])
        assert (deferred - doomed).digest() == (eager - doomed).digest()
        assert deferred.with_samples(rows[:forget], labels[:forget], -1).equals(eager - doomed)
    assert deferred.digest() == eager.digest()
    assert np.array_equal(deferred.gram, eager.gram)
    assert (Moments.empty(6) + deferred).equals(eager)


def test_a_deferred_gram_never_leaves_exact_float64() -> None:
    """Rows whose deferred Gram could not be formed exactly are summed as they come, as before deferring."""
    m = Moments.empty(16)
    for _ in range(8):  # 8 * (2**25)**2 = 2**53: one row more than one exact pass may hold
        m = m.with_samples(np.full((1, 16), 2.0**25), ["a"])
    assert m.digest() and np.array_equal(m.gram, np.triu(np.full((16, 16), 8 * 2**50, dtype=np.int64)))

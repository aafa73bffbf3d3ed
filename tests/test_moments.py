"""Moments: algebra, class bookkeeping, canonical identity."""

from __future__ import annotations

import numpy as np
import pytest

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

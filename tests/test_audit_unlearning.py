"""Unlearning metrics against hand-computed cases, the request generators, and the audit report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from erasable.audit.report import audit_forget, audit_forgotten
from erasable.audit.unlearning import (
    EPSILON,
    LabelledSet,
    accuracy,
    aligned_proba,
    class_request,
    matched_nonmembers,
    mia_auc,
    prediction_divergence,
    random_request,
    streaming_schedule,
    subject_request,
    synthetic_subjects,
    true_class_loss,
)
from erasable.model import Model
from tests.conftest import unit_rows

# -- metrics -----------------------------------------------------------------------------------


def test_accuracy_counts_argmax_hits() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.5, 0.5, 0.0]])
    # predictions: a, c, b, a (tie -> first); labels: a, b, b, b -> 2 of 4
    assert accuracy(proba, ["a", "b", "c"], ["a", "b", "b", "b"]) == 0.5


def test_true_class_loss_by_hand() -> None:
    proba = np.array([[0.5, 0.5], [0.25, 0.75]])
    losses = true_class_loss(proba, [0, 1], [0, 1])
    np.testing.assert_allclose(losses, [np.log(2), np.log(4 / 3)])
    # a label the model does not know (a forgotten class) costs -log(EPSILON)
    assert true_class_loss(proba[:1], [0, 1], [7])[0] == pytest.approx(-np.log(EPSILON))


def test_mia_auc_extremes_and_a_hand_computed_case() -> None:
    assert mia_auc([0.1, 0.2, 0.3], [1.0, 2.0]) == 1.0  # every member has the lower loss
    assert mia_auc([5.0, 6.0], [0.1, 0.2]) == 0.0
    same = np.random.default_rng(0).exponential(size=50)
    assert mia_auc(same, same) == 0.5  # identical distributions: all pairs tie
    # members [1, 3], non-members [2, 4]: pairs (1<2, 1<4, 3>2, 3<4) -> 3 of 4 won by the attack
    assert mia_auc([1.0, 3.0], [2.0, 4.0]) == 0.75
    with pytest.raises(ValueError, match="at least one"):
        mia_auc([], [1.0])


def test_divergence_zero_for_identical_and_by_hand() -> None:
    proba = np.array([[0.6, 0.4], [0.1, 0.9]])
    assert prediction_divergence(proba, proba.copy()).disagreement == 0.0
    assert prediction_divergence(proba, proba.copy()).total_variation == 0.0
    other = np.array([[0.4, 0.6], [0.1, 0.9]])
    d = prediction_divergence(proba, other)
    assert d.disagreement == 0.5  # first row flips
    assert d.total_variation == pytest.approx((0.5 * 0.4 + 0.0) / 2)
    with pytest.raises(ValueError, match="align"):
        prediction_divergence(proba, proba[:, :1])


def test_aligned_proba_puts_columns_in_the_universe_order() -> None:
    out = aligned_proba([[0.2, 0.8]], classes=[3, 1], universe=[1, 2, 3])
    np.testing.assert_array_equal(out, [[0.8, 0.0, 0.2]])
    with pytest.raises(ValueError, match="universe"):
        aligned_proba([[1.0]], classes=[9], universe=[1])


def test_matched_nonmembers_follow_the_forget_labels() -> None:
    held = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 2)
    rows = matched_nonmembers(["a", "a", "a", "c", "c", "c"], held, seed=3)
    assert sorted(held[rows].tolist()) == ["a", "a", "a", "c", "c"]  # only 2 c's exist
    np.testing.assert_array_equal(rows, matched_nonmembers(["a", "a", "a", "c", "c", "c"], held, seed=3))
    with pytest.raises(ValueError, match="No held-out"):
        matched_nonmembers(["z"], held)


# -- requests ----------------------------------------------------------------------------------


def test_random_request_is_deterministic_and_sized() -> None:
    rows = random_request(1000, 0.01, seed=5)
    assert rows.size == 10 and np.unique(rows).size == 10 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, random_request(1000, 0.01, seed=5))
    assert not np.array_equal(rows, random_request(1000, 0.01, seed=6))
    assert random_request(10, 0.01, seed=0).size == 1
    with pytest.raises(ValueError):
        random_request(10, 1.0, seed=0)


def test_subject_and_class_requests() -> None:
    subjects = synthetic_subjects(300, 20, seed=1)
    assert subjects == synthetic_subjects(300, 20, seed=1)
    assert len(set(subjects)) == 20 and subjects[0].startswith("customer-")
    rows = subject_request(subjects, subjects[0])
    assert 0 in rows and all(subjects[r] == subjects[0] for r in rows)
    assert sum(s == subjects[0] for s in subjects) == rows.size
    labels = np.array([2, 0, 2, 1, 2])
    np.testing.assert_array_equal(class_request(labels, 2), [0, 2, 4])


def test_streaming_schedule_learns_everything_and_forgets_only_live_samples() -> None:
    steps = streaming_schedule(100, initial=80, requests=5, seed=2)
    assert [s.kind for s in steps[:3]] == ["learn", "learn", "forget"]
    learned: set[int] = set()
    for step in steps:
        if step.kind == "learn":
            assert not learned & set(step.positions.tolist())
            learned |= set(step.positions.tolist())
        else:
            assert step.positions.size == 1 and int(step.positions[0]) in learned
            learned.remove(int(step.positions[0]))
    assert len(learned) == 95
    again = streaming_schedule(100, initial=80, requests=5, seed=2)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(steps, again, strict=True))
    with pytest.raises(ValueError):
        streaming_schedule(10, initial=9, requests=5, seed=0)


# -- the audit report --------------------------------------------------------------------------


def test_audit_forget_matches_the_refit_and_writes_the_report(small_model: Model, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    test = LabelledSet(unit_rows(rng, 40, 6), np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 40)])
    before = small_model.certificate()
    audit = audit_forget(small_model, subjects=["u1"], test=test)
    assert small_model.certificate() == before
    assert audit.forgotten == 10 and audit.samples_before == 60
    assert audit.certificates_equal and audit.certificate_before == before
    assert audit.canonical_divergence.total_variation == 0.0
    assert audit.divergence.disagreement == 0.0
    assert audit.served.mia_auc == pytest.approx(audit.refit.mia_auc)
    assert audit.forget_seconds is not None and audit.refit_seconds > 0
    markdown = audit.to_markdown()
    assert "certificates EQUAL" in markdown and "not checked" in markdown
    paths = audit.write(tmp_path / "report")
    assert all(p.stat().st_size > 0 for p in paths)


def test_audit_reports_the_ledger_chain_when_given(small_model: Model) -> None:
    rng = np.random.default_rng(8)
    forgotten_rows = small_model.registry.rows_for_ids(["s0", "s1"])
    X = small_model.registry.embeddings[forgotten_rows] / 2.0**small_model.config.scale_bits
    y = np.array([small_model.registry.labels[r] for r in forgotten_rows])
    small_model.forget(ids=["s0", "s1"])
    test = LabelledSet(unit_rows(rng, 30, 6), np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 30)])
    audit = audit_forgotten(small_model, LabelledSet(X, y), test=test)
    assert audit.forget_seconds is None and audit.certificates_equal
    assert "verified (12 events)" in replace(audit, chain_verified=True, chain_events=12).to_markdown()
    assert "BROKEN" in replace(audit, chain_verified=False).verdict()

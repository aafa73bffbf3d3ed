"""Model behaviour: bad input changes nothing; forgetting is served without a refit."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from erasable.federated import ClientStatistics
from erasable.heads import RidgeHead
from erasable.model import Model, ModelConfig
from erasable.moments import MomentsMismatchError
from erasable.registry import SampleRegistry, UnknownSampleError
from erasable.statistics import Statistics
from tests.conftest import relu_config, unit_rows


def snapshot(model: Model) -> tuple[str, list[str], bytes]:
    return model.certificate(), list(model.registry.ids), model.registry.embeddings.tobytes()


BAD_LEARNS: dict[str, tuple[Callable[[np.ndarray], dict], type[Exception], str]] = {
    "nan": (lambda x: {"embeddings": np.where(np.arange(6) == 2, np.nan, x[:3])}, ValueError, "NaN"),
    "inf": (lambda x: {"embeddings": np.full((2, 6), np.inf)}, ValueError, "infinity"),
    "wrong dimension": (lambda x: {"embeddings": x[:2, :5]}, ValueError, "shape"),
    "empty batch": (lambda x: {"embeddings": x[:0], "labels": []}, ValueError, "Empty batch"),
    "too large": (lambda x: {"embeddings": x[:2] * 100}, ValueError, "scale_bits"),
    "duplicate ids in batch": (lambda x: {"ids": ["n1", "n1", "n2"]}, ValueError, "Duplicate ids"),
    "ids already learned": (lambda x: {"ids": ["n1", "s5", "n2"]}, ValueError, "already learned"),
    "label count": (lambda x: {"labels": ["cat"]}, ValueError, "labels"),
    "label type": (lambda x: {"labels": [1, 2, 1]}, MomentsMismatchError, "integer and string"),
    "float labels": (lambda x: {"labels": [0.5, 1.0, 1.0]}, ValueError, "whole numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_LEARNS))
def test_bad_learn_is_refused_and_changes_nothing(small_model: Model, rng: np.random.Generator, case: str) -> None:
    make, error, message = BAD_LEARNS[case]
    x = unit_rows(rng, 3, 6)
    kwargs = {"embeddings": x, "labels": ["cat", "dog", "cat"], "ids": ["n1", "n2", "n3"]}
    kwargs.update(make(x))
    if "ids" in kwargs and len(kwargs["ids"]) != len(kwargs["embeddings"]):
        kwargs["ids"] = [f"n{i}" for i in range(len(kwargs["embeddings"]))]
    small_model.head()  # a cached head must survive the failure too
    before = snapshot(small_model)
    with pytest.raises(error, match=message):
        small_model.learn(kwargs.pop("embeddings"), kwargs.pop("labels"), **kwargs)
    assert snapshot(small_model) == before
    assert np.array_equal(
        small_model.head().weights,
        RidgeHead.from_moments(small_model.feature_moments, 0.1, small_model.ridge_unit).weights,
    )


BAD_FORGETS: dict[str, tuple[dict, type[Exception], str]] = {
    "unknown id": ({"ids": ["s1", "nope"]}, UnknownSampleError, "nope"),
    "repeated id": ({"ids": ["s1", "s1"]}, ValueError, "twice"),
    "no ids": ({"ids": []}, ValueError, "Empty"),
    "unknown subject": ({"subjects": ["u0", "nobody"]}, UnknownSampleError, "nobody"),
    "nothing named": ({}, ValueError, "exactly one"),
    "two selectors": ({"ids": ["s1"], "subjects": ["u1"]}, ValueError, "exactly one"),
    "sample not live": ({"embeddings": np.full((1, 6), 0.1), "labels": ["cat"]}, UnknownSampleError, "not live"),
}


@pytest.mark.parametrize("case", sorted(BAD_FORGETS))
def test_bad_forget_is_refused_and_changes_nothing(small_model: Model, case: str) -> None:
    kwargs, error, message = BAD_FORGETS[case]
    before = snapshot(small_model)
    with pytest.raises(error, match=message):
        small_model.forget(**kwargs)
    assert snapshot(small_model) == before


def test_forget_by_subject_removes_every_sample_of_it(small_model: Model) -> None:
    receipt = small_model.forget(subjects=["u2"])
    assert len(receipt.ids) == 10 and all(int(i[1:]) % 6 == 2 for i in receipt.ids)
    assert receipt.certificate_after == small_model.refit().certificate() != receipt.certificate_before


def test_a_class_disappears_with_its_last_sample(small_model: Model) -> None:
    eels = [i for i, label in zip(small_model.registry.ids, small_model.registry.labels, strict=True) if label == "eel"]
    small_model.forget(ids=eels)
    assert small_model.classes == ("cat", "dog")
    assert small_model.predict_proba(unit_rows(np.random.default_rng(0), 2, 6)).shape == (2, 2)


def test_merge_refuses_other_configs(small_model: Model) -> None:
    other = Model(relu_config(alpha=0.2))
    other.learn(unit_rows(np.random.default_rng(1), 2, 6), ["cat", "dog"], ids=["o1", "o2"])
    with pytest.raises(MomentsMismatchError, match="alpha"):
        small_model.merge(other)
    clash = Model(small_model.config)
    clash.learn(unit_rows(np.random.default_rng(1), 1, 6), ["cat"], ids=["s3"])
    before = snapshot(small_model)
    with pytest.raises(ValueError, match="already learned"):
        small_model.merge(clash)
    assert snapshot(small_model) == before


# The served ridge head after a forget (Woodbury) agrees with the canonical one (derived
# from the Moments, same alpha) to this tolerance on the scores, relative to their largest:
SERVED_TOLERANCE = 1e-8


@pytest.mark.parametrize("alpha", [0.05, None])
def test_served_forgets_agree_with_canonical_heads(rng: np.random.Generator, alpha: float | None) -> None:
    config = relu_config(dim=8, width=64, alpha=alpha)
    model = Model(config)
    model.learn(unit_rows(rng, 400, 8), rng.integers(0, 5, 400), ids=range(400))
    served = model.head()
    assert isinstance(served, RidgeHead) and served.rank_since_refresh == 0
    probe = unit_rows(rng, 50, 8)
    for step in range(6):  # successive forgets, including a whole class
        doomed = list(range(step * 7, step * 7 + 1 + step)) if step < 5 else None
        if doomed is None:
            doomed = [i for i, y in zip(model.registry.ids, model.registry.labels, strict=True) if y == 4]
        model.forget(ids=doomed)
        head = model.head()
        assert isinstance(head, RidgeHead)
        if len(doomed) + 2 <= 64 // 4:
            assert head.rank_since_refresh > 0, "a small forget must be served by the low-rank update"
        # The served head keeps its alpha (an automatic alpha is re-chosen by refresh()).
        canonical = RidgeHead.from_moments(model.ridge_moments, alpha=head.alpha, unit=model.ridge_unit)
        served_scores = model.decision_function(probe)
        canonical_scores = canonical.decision_function(model.head_inputs(probe))
        scale = np.abs(canonical_scores).max()
        assert np.abs(served_scores - canonical_scores).max() <= SERVED_TOLERANCE * scale
    assert model.classes == (0, 1, 2, 3)
    model.refresh()
    assert model.head().rank_since_refresh == 0


def test_large_forgets_fall_back_to_canonical_recompute(small_model: Model) -> None:
    small_model.head()
    small_model.forget(ids=[f"s{i}" for i in range(20)])  # rank 22 > 24 // 4
    assert small_model.head().rank_since_refresh == 0


def test_a_merge_is_the_learn_of_the_other_models_samples(small_model: Model, rng: np.random.Generator) -> None:
    """Planned and applied like a learn of the same samples, with the statistics the other model holds: the same
    certificate, samples and served ridge head, which follows it by a Woodbury update (merge used to drop it)."""
    x, labels, ids, subjects = unit_rows(rng, 3, 6), ["dog", "fox", "cat"], ["o1", "o2", "o3"], ["u1", "new", None]
    other = Model(small_model.config)
    other.learn(x, labels, ids=ids, subjects=subjects)
    learned = small_model.refit()
    for model in (small_model, learned):
        model.head()  # served before the change, as in a running service
    change = small_model.plan_merge(other)
    assert change.statistics_before is small_model.statistics and change.statistics_after.equals(
        small_model.statistics + other.statistics
    )
    small_model.apply(change)
    learned.learn(x, labels, ids=ids, subjects=subjects)
    assert small_model.certificate() == learned.certificate() == small_model.refit().certificate()
    assert list(small_model.registry.ids) == list(learned.registry.ids)
    assert list(small_model.registry.subjects) == list(learned.registry.subjects)
    assert small_model.head().rank_since_refresh == learned.head().rank_since_refresh > 0
    probe = unit_rows(rng, 20, 6)
    merged, canonical = small_model.decision_function(probe), small_model.refit().decision_function(probe)
    scale = np.abs(canonical).max()
    assert np.abs(merged - learned.decision_function(probe)).max() <= SERVED_TOLERANCE * scale
    assert np.abs(merged - canonical).max() <= SERVED_TOLERANCE * scale


def test_a_merge_planned_before_another_change_is_refused(small_model: Model, rng: np.random.Generator) -> None:
    other = Model(small_model.config)
    other.learn(unit_rows(rng, 2, 6), ["cat", "dog"], ids=["o1", "o2"])
    before = snapshot(small_model)
    change = small_model.plan_merge(other)
    assert snapshot(small_model) == before
    small_model.forget(ids=["s0"])
    with pytest.raises(ValueError, match="plan it again"):
        small_model.apply(change)


def test_merge_refuses_statistics_without_their_samples(small_model: Model, rng: np.random.Generator) -> None:
    """A federated model holds statistics but no samples: merged into a model, its statistics could not be forgotten
    or refitted, and the model file would not load, so the merge is refused and changes nothing. A model of
    statistics alone can merge a model of samples: it learns them."""
    x, labels, ids = unit_rows(rng, 4, 6), ["cat", "dog", "cat", "eel"], ["o1", "o2", "o3", "o4"]
    other = Model(small_model.config)
    other.learn(x, labels, ids=ids)
    before = snapshot(small_model)
    with pytest.raises(ValueError, match=r"count 4 samples but which holds 0 of them.*erasable\.federated\.merge"):
        small_model.merge(ClientStatistics.from_model(other).to_model())
    assert snapshot(small_model) == before
    merged, learned = (ClientStatistics.from_model(small_model).to_model() for _ in range(2))
    merged.merge(other)
    learned.learn(x, labels, ids=ids)
    federated = ClientStatistics.from_model(small_model) + ClientStatistics.from_model(other)
    assert merged.certificate() == learned.certificate() == federated.certificate()
    assert list(merged.registry.ids) == ids


def test_merging_an_empty_model_changes_nothing(small_model: Model) -> None:
    served = small_model.head()
    before = snapshot(small_model)
    small_model.merge(Model(small_model.config))
    assert snapshot(small_model) == before and small_model.head() is served


def test_forgotten_embeddings_leave_no_trace_in_the_registry_buffer(small_model: Model) -> None:
    rows = small_model.registry.rows_for_ids(["s3", "s59"])
    doomed = [small_model.registry.embeddings[r].tobytes() for r in rows]
    small_model.forget(ids=["s3", "s59"])
    buffer = small_model.registry._buffer.tobytes()  # including spare capacity
    assert all(vector not in buffer for vector in doomed)
    assert small_model.certificate() == small_model.refit().certificate()


def _registry_of(model: Model) -> SampleRegistry:
    """A copy of ``model``'s live samples, as a file or a ledger would hand them to Model.restore."""
    registry = SampleRegistry(model.config.input_dim)
    rows = model.registry
    registry.append(list(rows.ids), list(rows.subjects), list(rows.labels), np.array(rows.embeddings))
    return registry


@pytest.mark.parametrize("features_from_samples", [False, True])
def test_restore_rebuilds_the_model_its_statistics_and_samples_name(
    small_model: Model, features_from_samples: bool
) -> None:
    stats = small_model.statistics
    stored = Statistics(stats.embedding, None) if features_from_samples else stats
    restored = Model.restore(
        small_model.config,
        stored,
        samples=_registry_of(small_model),
        next_auto_id=7,
        features_from_samples=features_from_samples,
    )
    assert restored.statistics.equals(stats) and restored.certificate() == small_model.certificate()
    assert restored.refit().certificate() == small_model.certificate() and restored.next_auto_id == 7
    probe = unit_rows(np.random.default_rng(5), 4, 6)
    np.testing.assert_array_equal(restored.predict_proba(probe), small_model.refit().predict_proba(probe))


def test_restore_refuses_statistics_or_samples_that_do_not_fit_the_config(small_model: Model) -> None:
    stats = small_model.statistics
    with pytest.raises(ValueError, match="exactly when the feature map is not the identity"):
        Model.restore(small_model.config, Statistics(stats.embedding, None))
    identity = Model(ModelConfig(input_dim=6))
    with pytest.raises(ValueError, match="exactly when the feature map is not the identity"):
        Model.restore(identity.config, stats)
    with pytest.raises(ValueError, match="dimensions of the config"):
        Model.restore(relu_config(width=32), stats)
    with pytest.raises(ValueError, match="Samples of dimension 5"):
        Model.restore(small_model.config, stats, samples=SampleRegistry(5))


@pytest.fixture
def small_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """100 unit-norm 384-d vectors of 10 classes."""
    x = rng.normal(size=(100, 384))
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.arange(100) % 10


def test_a_small_model_never_allocates_its_gram(small_data: tuple[np.ndarray, np.ndarray]) -> None:
    """100 samples at width 4096 learn and predict without the 134 MB Gram; the file still certifies it."""
    x, y = small_data
    model = Model(ModelConfig.from_parameters(input_dim=x.shape[1]))
    tracemalloc.start()
    model.learn(x, y)
    model.decision_function(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MB"
    assert model.certificate() == model.refit().certificate()

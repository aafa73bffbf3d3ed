"""Steering the memory's votes: validated, kept free of forgotten names, saved with the model, set by the CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from erasable.cli import app
from erasable.model import Model, ModelConfig
from erasable.model_file import ModelFileError, load_model, read_container, save_model, write_container
from erasable.registry import UnknownSampleError
from erasable.steering import Steering, SteeringError
from tests.conftest import unit_rows

pytest.importorskip("faiss", reason="the memory extra (faiss-cpu) is not installed")

SUBJECTS = ["web", "crawler", "partner"]


def steered_model(rng: np.random.Generator, n: int = 240) -> tuple[Model, np.ndarray]:
    """A memory model of three noisy classes, samples from three subjects; and probe queries."""
    centers = unit_rows(rng, 3, 8)
    labels = rng.integers(0, 3, n)
    x = centers[labels] + 0.6 * unit_rows(rng, n, 8)
    model = Model(ModelConfig(input_dim=8, head="memory"))
    subjects = [SUBJECTS[i % 3] for i in range(n)]
    model.learn(x, np.array(["a", "b", "c"])[labels], ids=[f"s{i}" for i in range(n)], subjects=subjects)
    return model, unit_rows(rng, 60, 8)


def memory_scores(model: Model, probe: np.ndarray) -> np.ndarray:
    return model.memory().decision_function(model.head_inputs(probe, "memory"))


# -- the weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [-0.5, float("nan"), float("inf"), 1e7, True, "1"])
def test_invalid_weights_are_refused(weight):
    with pytest.raises(SteeringError):
        Steering().with_weights(subjects={"web": weight})


def test_weight_one_removes_an_entry_and_weights_multiply():
    steering = Steering().with_weights(subjects={"web": 0.5}, samples={"s1": 0.5})
    assert steering.sample_weight("s1", "web") == 0.25 and steering.sample_weight("s2", None) == 1.0
    assert not steering.with_weights(subjects={"web": 1}, samples={"s1": 1.0})


@given(
    st.dictionaries(st.one_of(st.integers(-5, 5), st.text(max_size=4)), st.floats(0, 10), max_size=4),
    st.dictionaries(st.text(max_size=4), st.floats(0, 10), max_size=4),
    st.dictionaries(st.text(max_size=4), st.floats(0, 10), max_size=4),
)
def test_json_round_trip(classes, subjects, samples):
    steering = Steering().with_weights(classes=classes, subjects=subjects, samples=samples)
    assert Steering.from_json(json.loads(json.dumps(steering.to_json()))) == steering


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"classes": []},
        {"classes": [], "subjects": [], "samples": [], "extra": []},
        {"classes": [["a"]], "subjects": [], "samples": []},
        {"classes": [[True, 1.0]], "subjects": [], "samples": []},
        {"classes": [], "subjects": [[1, 1.0]], "samples": []},
        {"classes": [], "subjects": [], "samples": [["s", -1]]},
        {"classes": [], "subjects": [], "samples": [["s", 0.5], ["s", 0.2]]},
    ],
)
def test_malformed_stored_steering_is_refused(data):
    with pytest.raises(SteeringError):
        Steering.from_json(data)


# -- in the model ------------------------------------------------------------------------------


def test_steering_changes_votes_not_statistics():
    model, probe = steered_model(np.random.default_rng(0))
    certificate, before = model.certificate(), memory_scores(model, probe)
    model.steer(subjects={"crawler": 0.0}, classes={"a": 2.0})
    assert model.certificate() == certificate
    assert not np.array_equal(memory_scores(model, probe), before)
    model.steer(subjects={"crawler": 1.0}, classes={"a": 1.0})
    np.testing.assert_array_equal(memory_scores(model, probe), before)


def test_silencing_a_subject_zeroes_exactly_its_samples_votes():
    model, probe = steered_model(np.random.default_rng(1))
    model.steer(subjects={"crawler": 0.0})
    subject_of = dict(zip(model.registry.ids, model.registry.subjects, strict=True))
    for neighbours in model.memory().explain(model.head_inputs(probe, "memory"), k=15):
        assert len(neighbours) == 15
        for n in neighbours:
            assert (n.weight == 0.0) == (subject_of[n.id] == "crawler")


def test_steering_applies_to_later_samples_and_any_order_of_building():
    rng = np.random.default_rng(2)
    model, probe = steered_model(rng)
    model.memory()  # built before steering: updated in place
    model.steer(subjects={"crawler": 0.3}, ids={"s0": 0.0}, classes={"b": 0.5})
    extra = unit_rows(rng, 30, 8)
    model.learn(extra, ["a", "b", "c"] * 10, ids=[f"n{i}" for i in range(30)], subjects=["crawler"] * 30)
    rebuilt = Model(model.config)  # same samples, steered before its memory exists
    rebuilt.learn(
        model.registry.embeddings / 2**model.config.scale_bits,
        model.registry.labels,
        ids=model.registry.ids,
        subjects=model.registry.subjects,
    )
    rebuilt.steer(subjects={"crawler": 0.3}, ids={"s0": 0.0}, classes={"b": 0.5})
    assert rebuilt.certificate() == model.certificate()
    weights = dict(zip(model.memory().ids, model.memory().sample_weights, strict=True))
    assert weights["n0"] == 0.3 and weights["s0"] == 0.0
    np.testing.assert_array_equal(memory_scores(model, probe), memory_scores(rebuilt, probe))


def test_a_merge_into_a_steered_memory_keeps_it_in_step():
    """A merge is applied as a learn: the memory, built before, adds the other model's samples with their weights."""
    rng = np.random.default_rng(6)
    model, probe = steered_model(rng)
    model.memory()
    model.steer(subjects={"crawler": 0.3}, classes={"b": 0.5})
    other = Model(model.config)
    other.learn(
        unit_rows(rng, 30, 8), ["a", "b", "c"] * 10, ids=[f"n{i}" for i in range(30)], subjects=["crawler"] * 30
    )
    model.merge(other)
    rebuilt = model.refit()  # the same samples and steering, its memory built from scratch
    weights = dict(zip(model.memory().ids, model.memory().sample_weights, strict=True))
    assert weights["n0"] == 0.3 and rebuilt.certificate() == model.certificate()
    np.testing.assert_array_equal(memory_scores(model, probe), memory_scores(rebuilt, probe))


def test_steering_unknown_names_raises_and_changes_nothing():
    model, _ = steered_model(np.random.default_rng(3))
    model.steer(subjects={"web": 0.5})
    for request in ({"classes": {"zebra": 0.5}}, {"subjects": {"nobody": 0.5}}, {"ids": {"missing": 0.5}}):
        with pytest.raises((ValueError, UnknownSampleError)):
            model.steer(**request)
    with pytest.raises(SteeringError):
        model.steer(subjects={"web": 0.1, "crawler": -1.0})
    assert model.steering == Steering().with_weights(subjects={"web": 0.5})


def test_forgetting_drops_the_weights_that_name_what_is_gone():
    model, _ = steered_model(np.random.default_rng(4))
    model.memory()
    model.steer(ids={"s0": 0.0, "s3": 0.5}, subjects={"crawler": 0.2, "web": 0.7}, classes={"c": 2.0})
    model.forget(ids=["s0"])
    assert model.steering.samples == {"s3": 0.5}
    model.forget(ids=[i for i, s in zip(model.registry.ids, model.registry.subjects, strict=True) if s == "web"][:5])
    assert "web" in model.steering.subjects  # some web samples are still live
    model.forget(subjects=["crawler"])
    assert "crawler" not in model.steering.subjects
    model.forget(classes=["c"])
    assert model.steering.classes == {} and model.memory().class_weights == {}


# -- files and the command line ----------------------------------------------------------------


def test_model_file_keeps_the_steering_and_no_forgotten_name(tmp_path: Path):
    model, probe = steered_model(np.random.default_rng(5))
    model.steer(subjects={"crawler": 0.25}, ids={"s1": 0.0})
    path = tmp_path / "m.erasable"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.steering == model.steering
    np.testing.assert_array_equal(memory_scores(loaded, probe), memory_scores(model, probe))
    loaded.forget(subjects=["crawler"])
    save_model(loaded, path)
    assert b"crawler" not in path.read_bytes()


def test_files_without_steering_load_and_files_naming_dead_samples_are_refused(tmp_path: Path):
    model, _ = steered_model(np.random.default_rng(6), n=30)
    path = tmp_path / "m.erasable"
    save_model(model, path)
    manifest, tensors = read_container(path)
    version_1 = {k: v for k, v in manifest.items() if k != "steering"} | {"format_version": 1}
    write_container(path, version_1, tensors)
    assert load_model(path).steering == Steering()
    forged = manifest | {"steering": {"classes": [], "subjects": [], "samples": [["forgotten-id", 0.5]]}}
    write_container(path, forged, tensors)
    with pytest.raises(ModelFileError, match="forgotten-id"):
        load_model(path)


def test_cli_steer_sets_shows_and_validates(tmp_path: Path):
    model, _ = steered_model(np.random.default_rng(7), n=30)
    path = tmp_path / "m.erasable"
    save_model(model, path)
    runner = CliRunner()
    result = runner.invoke(app, ["steer", str(path), "--subject", "crawler=0.25", "--class", "a=2", "--id", "s1=0"])
    assert result.exit_code == 0, result.output
    assert load_model(path).steering == Steering().with_weights(
        classes={"a": 2.0}, subjects={"crawler": 0.25}, samples={"s1": 0.0}
    )
    shown = runner.invoke(app, ["steer", str(path)])
    assert "crawler" in shown.output and "0.25" in shown.output
    before = path.read_bytes()
    for bad in (["--subject", "crawler"], ["--subject", "crawler=-1"], ["--class", "zebra=2"], ["--id", "=1"]):
        result = runner.invoke(app, ["steer", str(path), *bad])
        assert result.exit_code == 2, (bad, result.output)
        assert path.read_bytes() == before


def test_a_plan_made_before_steering_is_refused_after_it():
    model, _ = steered_model(np.random.default_rng(8), n=30)
    model.steer(ids={"s2": 0.0})
    change = model.plan_forget(ids=["s2"])
    assert change.steering_after == Steering() and model.steering.samples == {"s2": 0.0}  # planning changes nothing
    model.steer(ids={"s3": 0.5})
    with pytest.raises(ValueError, match="plan it again"):
        model.apply(change)
    assert "s2" in model.registry


def test_a_refit_and_an_audit_keep_the_steering():
    from erasable.audit.report import audit_forget
    from erasable.audit.unlearning import LabelledSet

    model, probe = steered_model(np.random.default_rng(9))
    model.steer(subjects={"crawler": 0.0}, classes={"a": 1.5})
    refit = model.refit()
    assert refit.steering == model.steering
    np.testing.assert_array_equal(memory_scores(refit, probe), memory_scores(model, probe))
    test = LabelledSet(probe, model.memory().predict(model.head_inputs(probe, "memory")))
    audit = audit_forget(model, subjects=["web"], test=test)
    assert audit.certificates_equal and audit.divergence.disagreement == 0.0
    served = model.refit()
    served.forget(subjects=["web"])  # what the audit serves: the steered model, minus web
    expected = np.mean(served.memory().predict(served.head_inputs(probe, "memory")) == test.y)
    assert audit.served.test_accuracy == expected


def test_the_estimator_steers_and_saves_its_steering(tmp_path: Path):
    from erasable import ErasableClassifier

    model, probe = steered_model(np.random.default_rng(10))
    clf = ErasableClassifier.from_model(model).steer(subjects={"crawler": 0.0})
    assert clf.model_.steering.subjects == {"crawler": 0.0}
    clf.save(tmp_path / "m.erasable")
    loaded = ErasableClassifier.load(tmp_path / "m.erasable")
    assert loaded.model_.steering == clf.model_.steering
    np.testing.assert_array_equal(loaded.predict_proba(probe), clf.predict_proba(probe))


@given(st.data())
@settings(max_examples=20, deadline=None)
def test_any_history_of_learn_forget_and_steer_saves_the_file_of_its_refit(data):
    """Steering weights never outlive what they name, and the saved model is that of a refit, steering included."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    model, probe = steered_model(rng, n=60)
    model.memory()  # kept in step from here on, not rebuilt
    next_id = 0
    for _ in range(data.draw(st.integers(1, 6))):
        live_subjects = sorted({s for s in model.registry.subjects if s is not None})
        action = data.draw(st.sampled_from(["steer", "forget ids", "forget subject", "forget class", "learn"]))
        if action == "steer":
            model.steer(
                classes={c: data.draw(st.sampled_from([0.0, 0.5, 2.0])) for c in model.classes[:1]},
                subjects={s: data.draw(st.sampled_from([0.0, 0.5, 1.0])) for s in live_subjects[:2]},
                ids={i: 0.0 for i in data.draw(st.lists(st.sampled_from(model.registry.ids), max_size=3, unique=True))},
            )
        elif action == "forget ids" and model.count > 10:
            model.forget(
                ids=data.draw(st.lists(st.sampled_from(model.registry.ids), min_size=1, max_size=5, unique=True))
            )
        elif action == "forget subject" and len(live_subjects) > 1:
            model.forget(subjects=[data.draw(st.sampled_from(live_subjects))])
        elif action == "forget class" and len(model.classes) > 1:
            model.forget(classes=[data.draw(st.sampled_from(model.classes))])
        else:
            x = unit_rows(rng, 5, 8)
            model.learn(
                x, ["a", "b", "c", "a", "b"], ids=[f"n{next_id + i}" for i in range(5)], subjects=["crawler"] * 5
            )
            next_id += 5
        steering = model.steering
        assert set(steering.samples) <= set(model.registry.ids)
        assert set(steering.subjects) <= set(model.registry.subjects)
        assert set(steering.classes) <= set(model.classes)
    refit = model.refit()
    np.testing.assert_array_equal(memory_scores(model, probe), memory_scores(refit, probe))
    with tempfile.TemporaryDirectory() as directory:
        save_model(model, Path(directory) / "model.erasable")
        save_model(refit, Path(directory) / "refit.erasable")
        assert (Path(directory) / "model.erasable").read_bytes() == (Path(directory) / "refit.erasable").read_bytes()

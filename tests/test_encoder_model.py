"""Models of raw inputs: the encoder's identity is part of the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from erasable import ErasableClassifier
from erasable.encoders import ForeignEncoderError, PrecomputedVectors
from erasable.model import Model, ModelConfig
from erasable.model_file import load_model, save_model
from tests.conftest import unit_rows


def encoded_config(identity_suffix: str = "") -> ModelConfig:
    encoder = PrecomputedVectors(4)
    spec = ModelConfig.encoder_config(encoder, "precomputed", dim=4)
    spec["identity"] += identity_suffix
    return ModelConfig(input_dim=4, encoder=spec)


def test_a_model_embeds_with_its_encoder_and_keeps_its_identity(tmp_path: Path) -> None:
    model = Model(encoded_config())
    x = unit_rows(np.random.default_rng(0), 6, 4)
    model.learn(model.embed(x), ["a", "b"] * 3)
    save_model(model, tmp_path / "m.erasable")
    loaded = load_model(tmp_path / "m.erasable")
    assert loaded.config.encoder == model.config.encoder
    assert np.array_equal(loaded.embed(x), x.astype(np.float32))


def test_an_encoder_with_another_identity_is_refused() -> None:
    model = Model(encoded_config(identity_suffix="-other-weights"))
    with pytest.raises(ForeignEncoderError):
        model.embed(unit_rows(np.random.default_rng(0), 2, 4))


def test_models_of_different_encoders_do_not_merge() -> None:
    a, b = Model(encoded_config()), Model(encoded_config("-v2"))
    x = unit_rows(np.random.default_rng(0), 2, 4)
    a.learn(x, [0, 1], ids=["a0", "a1"])
    b.learn(x, [0, 1], ids=["b0", "b1"])
    with pytest.raises(ValueError, match="encoder"):
        a.merge(b)


def test_a_model_of_vectors_has_no_encoder() -> None:
    with pytest.raises(ValueError, match="no encoder"):
        Model(ModelConfig(input_dim=3)).embed([[0.0, 0.0, 1.0]])


def test_text_estimator_learns_raw_text() -> None:
    pytest.importorskip("sentence_transformers", reason="the text extra is not installed")
    texts = ["my card was declined", "card payment refused", "how do I top up", "add money to my account"]
    labels = ["declined", "declined", "top_up", "top_up"]
    clf = ErasableClassifier(encoder="text", width=64).fit(texts, labels)
    assert clf.predict(["why was my card payment declined?", "top up my balance"]).tolist() == ["declined", "top_up"]
    clf.forget(X=["card payment refused"], y=["declined"])
    assert clf.model_.count == 3

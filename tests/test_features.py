"""The random ReLU features: 6 bits by default, and the 15-bit map of earlier models unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from erasable.cli import app
from erasable.config import ModelConfig
from erasable.estimator import ErasableClassifier
from erasable.exact import quantize
from erasable.features import RandomReLU, feature_map_from_config, scale_free_levels
from erasable.model import Model
from erasable.model_file import load_model
from tests.conftest import unit_rows


def test_default_features_of_unit_norm_inputs_fill_six_bits_and_rarely_saturate() -> None:
    config = ModelConfig.from_parameters(input_dim=384)
    assert config.feature_map["bits"] == 6 and config.feature_map["scale_free"] and config.feature_map["shift"] == 0
    fmap = feature_map_from_config(config.feature_map)
    features = fmap.transform(quantize(unit_rows(np.random.default_rng(0), 500, 384), config.scale_bits))
    assert features.min() == 0 and features.max() == 63
    assert np.mean(features == 63) < 1e-3  # the top is four standard deviations up
    assert np.mean(features > 31) > 1e-3  # and the sixth bit is used


@pytest.mark.parametrize("norm", [0.05, 0.1, 0.5, 3.0])
def test_default_features_do_not_depend_on_the_inputs_norm(norm: float) -> None:
    """Scale-free: the features of c * e are those of e, but for the rounding of the quantized inputs."""
    fmap = feature_map_from_config(ModelConfig.from_parameters(input_dim=384).feature_map)
    rows = unit_rows(np.random.default_rng(1), 200, 384)
    unit, scaled = fmap.transform(quantize(rows, 13)).astype(int), fmap.transform(quantize(rows * norm, 13)).astype(int)
    assert np.mean(np.abs(unit - scaled) <= 1) > 0.995 and np.mean(unit == scaled) > 0.9
    shifted = feature_map_from_config(ModelConfig.from_parameters(input_dim=384, feature_bits=15).feature_map)
    assert shifted.transform(quantize(rows * 0.05, 13)).max() < shifted.transform(quantize(rows, 13)).max() / 10


def test_a_configuration_without_bits_is_the_int16_map_of_earlier_models() -> None:
    """Model files written before ``bits`` existed load as the same map, and describe themselves as feature_bits=15."""
    old = {"kind": "random_relu", "input_dim": 384, "width": 64, "seed": 0, "shift": 3}
    fmap = feature_map_from_config(old)
    assert fmap.bits == 15 and fmap.config() == old  # the config's bytes, hence the certificate, unchanged
    config = ModelConfig(input_dim=384, scale_bits=13, feature_map=old, head="ridge")
    assert config.parameters()["feature_bits"] == 15
    assert ModelConfig.from_parameters(input_dim=384, width=64, feature_bits=15).feature_map == old
    estimator = ErasableClassifier.from_model(Model(config))
    assert estimator.feature_bits == 15 and estimator.model_config(384) == config
    big = quantize(np.full((1, 384), 4 / np.sqrt(384) * 0.99), 13)  # a large input: int16 features, no 6-bit cap
    assert fmap.transform(big).max() > 63


@pytest.mark.parametrize("bits", [0, 16, 6.0, True])
def test_a_feature_map_refuses_bits_other_than_an_integer_from_one_to_fifteen(bits: object) -> None:
    with pytest.raises(ValueError, match="bits"):
        RandomReLU(input_dim=4, width=8, seed=0, shift=0, bits=bits)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"feature_bits": 0}, r"feature_bits must be in 1\.\.15"),
        ({"feature_bits": 16}, r"feature_bits must be in 1\.\.15"),
        ({"feature_bits": 6.9}, "feature_bits must be an integer"),  # refused, not truncated to 6
        ({"feature_bits": True}, "feature_bits must be an integer"),
        ({"width": 100.9}, "width must be an integer"),
        ({"seed": 0.7}, "seed must be an integer"),
        ({"scale_bits": 13.5}, "scale_bits must be an integer"),
    ],
)
def test_the_estimator_refuses_parameters_of_the_wrong_kind(parameters: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ErasableClassifier(**parameters).model_config(4)


def test_a_map_has_one_spelling() -> None:
    """An explicit "bits": 15 is the map without it: two byte strings, two certificates for one model. Refused."""
    spelled = {"kind": "random_relu", "input_dim": 384, "width": 64, "seed": 0, "shift": 3, "bits": 15}
    with pytest.raises(ValueError, match="canonical form"):
        ModelConfig(input_dim=384, feature_map=spelled)


def test_erasable_learn_takes_feature_bits(tmp_path: Path) -> None:
    vectors = tmp_path / "train.npz"
    np.savez(vectors, X=unit_rows(np.random.default_rng(0), 6, 8), y=np.array(["a", "b", "c"] * 2))
    refused = CliRunner().invoke(app, ["learn", str(tmp_path / "0.erasable"), str(vectors), "--feature-bits", "0"])
    assert refused.exit_code == 2 and "--feature-bits" in refused.output and not (tmp_path / "0.erasable").exists()
    for bits, expected in (("15", None), ("8", 8)):
        path = tmp_path / f"{bits}.erasable"
        result = CliRunner().invoke(app, ["learn", str(path), str(vectors), "--width", "32", "--feature-bits", bits])
        assert result.exit_code == 0, result.output
        assert load_model(path).config.feature_map.get("bits") == expected


def test_alpha_means_the_same_for_scale_free_and_shifted_features_of_unit_norm_inputs() -> None:
    """The penalty is alpha * ridge_unit: both maps give a unit-norm input's projection 2**4 levels per unit."""
    scale_free = ModelConfig.from_parameters(input_dim=384)
    shifted = {"kind": "random_relu", "input_dim": 384, "width": 4096, "seed": 0, "shift": 9, "bits": 6}
    assert Model(scale_free).ridge_unit == Model(ModelConfig(input_dim=384, feature_map=shifted)).ridge_unit == 4.0**4


def test_scale_free_levels_are_the_exact_integer_floor_in_either_products_type() -> None:
    """A quotient just below an integer: float32 rounds it up to the integer, float64 (used at this norm) does not."""
    norm = 2**20 + 1  # a large norm (input_dim >= 1024): the quotient needs 26 bits of mantissa
    ks = [k for k in range(40, 64) if k * norm % 16 == 1]  # then z = (k N - 1) / 16 is an integer
    z = [(k * norm - 1) // 16 for k in ks]  # 16 z / N = k - 1/N: just below k
    exact = np.minimum(np.array([16 * v // norm for v in z]), 63)
    for dtype in (np.float32, np.float64):
        levels = scale_free_levels(np.array([z], dtype=dtype), np.array([norm]), bits=6)[0]
        assert np.array_equal(levels, exact)
    naive = np.floor(np.array(z, dtype=np.float32) * np.float32(16) / np.float32(norm))
    assert not np.array_equal(np.minimum(naive, 63), exact)  # what float32 division gave


@given(st.data(), st.integers(2, 14))
@settings(max_examples=200, deadline=None)
def test_scale_free_levels_in_float32_are_the_exact_integer_floor(data: st.DataObject, bits: int) -> None:
    """Quotients just below, at and above each level, with norms on both sides of the float32 path's bound.

    Below ``2**(25 - bits)`` the levels are formed in float32, in place; above it in float64. Exact either way.
    """
    top, scale = 2**bits - 1, 2 ** (bits - 2)
    norms = np.array(data.draw(st.lists(st.integers(1, 2 ** (26 - bits)), min_size=1, max_size=8)))
    near = [(k * int(n) + d) // scale for n in norms for k in range(top + 2) for d in (-1, 0, 1)]
    drawn = data.draw(st.lists(st.integers(-(2**24) + 1, 2**24 - 1), max_size=32))
    z = np.array([[v for v in near + drawn if abs(v) < 2**24]] * len(norms), dtype=np.int64)
    exact = np.clip(np.maximum(z, 0) * scale // norms[:, None], 0, top)
    product = z.astype(np.float32)
    levels = scale_free_levels(product, norms, bits)
    assert levels.dtype == np.float32 and np.array_equal(levels, exact)
    assert np.shares_memory(levels, product) == (int(norms.max()) < 2 ** (25 - bits))


@given(st.integers(0, 2**31))
@settings(max_examples=10, deadline=None)
def test_a_rows_scale_free_features_do_not_depend_on_its_batch(seed: int) -> None:
    """A batch holding one large row takes float64 products, one without float32: the same features either way."""
    fmap = feature_map_from_config(ModelConfig.from_parameters(input_dim=784, width=512, seed=seed).feature_map)
    rng = np.random.default_rng(seed)
    rows = rng.integers(-(2**15) + 1, 2**15, size=(64, 784)).astype(np.int16) // rng.integers(1, 64, (64, 1))
    rows = rows.astype(np.int16)
    loud = np.full((1, 784), 2**15 - 1, dtype=np.int16)  # 784 * 32767 > 2**24: the batch's product is float64
    alone = np.concatenate([fmap.transform(rows[i : i + 1]) for i in range(len(rows))])
    assert np.array_equal(fmap.transform(np.concatenate([rows, loud]))[:-1], alone)
    assert np.array_equal(fmap.transform(rows), alone)


def test_a_scale_free_map_states_fewer_than_15_bits() -> None:
    """A model file or request saying scale_free without bits (15) is refused when read, not when first scored."""
    spelled = {"kind": "random_relu", "input_dim": 4, "width": 8, "seed": 0, "shift": 0, "scale_free": True}
    with pytest.raises(ValueError, match="fewer than 15 bits"):
        ModelConfig(input_dim=4, feature_map=spelled)

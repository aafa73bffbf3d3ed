"""Model files: round trip, canonical bytes, tamper detection, physical forgetting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from erasable.heads import ridge as ridge_module
from erasable.model import Model
from erasable.model_file import ModelFileError, load_model, read_container, save_model, write_container
from tests.conftest import relu_config, unit_rows


def test_round_trip_keeps_bytes_and_predictions(small_model: Model, tmp_path: Path) -> None:
    first, second = tmp_path / "a.erasable", tmp_path / "b.erasable"
    save_model(small_model, first)
    loaded = load_model(first)
    save_model(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    assert loaded.certificate() == small_model.certificate()
    probe = unit_rows(np.random.default_rng(5), 9, 6)
    for kind in ("ridge", "prototype", "gaussian"):
        assert np.array_equal(loaded.decision_function(probe, kind), small_model.decision_function(probe, kind))


def test_file_after_forgetting_equals_file_of_a_refit(small_model: Model, tmp_path: Path) -> None:
    doomed = small_model.registry.embeddings[small_model.registry.rows_for_ids(["s7"])][0].tobytes()
    small_model.forget(ids=["s7", "s8"])
    save_model(small_model, tmp_path / "forgot.erasable")
    save_model(small_model.refit(), tmp_path / "refit.erasable")
    data = (tmp_path / "forgot.erasable").read_bytes()
    assert data == (tmp_path / "refit.erasable").read_bytes()
    assert doomed not in data and b"s7" not in data


def test_every_flipped_bit_is_detected(tmp_path: Path) -> None:
    model = Model(relu_config(dim=2, width=3))
    model.learn(unit_rows(np.random.default_rng(0), 3, 2), ["a", "b", "a"], subjects=["x", None, "y"])
    path = tmp_path / "m.erasable"
    save_model(model, path)
    original = path.read_bytes()
    for position in range(len(original)):
        corrupted = bytearray(original)
        corrupted[position] ^= 0x01
        path.write_bytes(bytes(corrupted))
        with pytest.raises(ModelFileError):
            load_model(path)


def test_truncated_and_foreign_files_are_refused(small_model: Model, tmp_path: Path) -> None:
    path = tmp_path / "m.erasable"
    save_model(small_model, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="readable"):
        load_model(path)
    save_file({"x": np.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "other.safetensors")
    with pytest.raises(ModelFileError, match="Cannot read"):
        load_model(tmp_path / "missing.erasable")


def test_a_consistent_forgery_is_caught_by_the_certificate(small_model: Model, tmp_path: Path) -> None:
    """Edit the statistics *and* recompute the digest: the certificate still disagrees."""
    import json

    from safetensors.numpy import load as load_bytes
    from safetensors.numpy import save as save_bytes

    from erasable.model_file import manifest_digest

    path = tmp_path / "m.erasable"
    save_model(small_model, path)
    blob = path.read_bytes()
    tensors = load_bytes(blob)
    manifest = json.loads(json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])["__metadata__"]["erasable"])
    tensors["features.gram_upper"] = tensors["features.gram_upper"].copy()
    tensors["features.gram_upper"][0] += 1
    manifest.pop("digest")
    manifest["digest"] = manifest_digest(manifest, tensors)
    path.write_bytes(save_bytes(tensors, metadata={"erasable": json.dumps(manifest, indent=1)}))
    with pytest.raises(ModelFileError, match="not as written"):  # only the canonical JSON of the manifest is read
        load_model(path)
    path.write_bytes(save_bytes(tensors, metadata={"erasable": json.dumps(manifest, sort_keys=True)}))
    with pytest.raises(ModelFileError, match="Certificate mismatch"):
        load_model(path)


def test_failed_save_leaves_the_previous_file(
    small_model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.erasable"
    save_model(small_model, path)
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", broken_fsync)
    small_model.forget(ids=["s1"])
    with pytest.raises(OSError, match="disk full"):
        save_model(small_model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.erasable"]


def test_the_gcv_alpha_is_saved_so_loading_skips_the_eigendecomposition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    model = Model(relu_config())
    model.learn(unit_rows(rng, 60, 6), ["a", "b", "c"] * 20)
    head = model.head("ridge")
    path = tmp_path / "m.erasable"
    save_model(model, path)

    def no_gcv(*args: object, **kwargs: object) -> float:
        raise AssertionError("GCV ran although the file holds its alpha")

    monkeypatch.setattr(ridge_module, "gcv_alpha", no_gcv)
    loaded = load_model(path)
    assert loaded.gcv_alpha() == head.alpha
    np.testing.assert_array_equal(loaded.head("ridge").weights, head.weights)  # the same head, bit for bit
    loaded.forget(ids=["0"])  # other statistics: the recalled alpha does not apply to them
    with pytest.raises(AssertionError, match="GCV ran"):
        loaded.gcv_alpha()


def test_the_saved_alpha_does_not_depend_on_history(tmp_path: Path) -> None:
    """Computed at saving when no head knows it: models with and without a derived head write the same file."""
    rng = np.random.default_rng(0)
    x, y = unit_rows(rng, 35, 6), np.array(["a", "b"] * 18)[:35]
    derived, fresh = Model(relu_config(width=64)), Model(relu_config(width=64))
    derived.learn(x[:20], y[:20])
    stale = derived.head("ridge").alpha
    derived.learn(x[20:], y[20:])  # the head is updated in place and keeps its alpha
    fresh.learn(x, y)
    assert derived.gcv_alpha() == fresh.gcv_alpha() != stale  # so a file keeping the stale alpha would differ
    save_model(derived, tmp_path / "derived.erasable")
    save_model(fresh, tmp_path / "fresh.erasable")
    assert (tmp_path / "derived.erasable").read_bytes() == (tmp_path / "fresh.erasable").read_bytes()
    assert Model(relu_config(alpha=0.5)).gcv_alpha() is None


def test_a_primal_ridge_head_is_read_with_its_weights_and_solves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading predicts with the saved canonical weights; the first update factors the system, then matches a refit."""
    rng = np.random.default_rng(12)
    model = Model(relu_config(width=32))
    model.learn(unit_rows(rng, 60, 6), ["a", "b", "c"] * 20)  # 60 > 32 / 4 samples: the primal head
    probe = unit_rows(rng, 7, 6)
    expected = model.canonical_ridge().decision_function(model.head_inputs(probe))
    path = tmp_path / "m.erasable"
    save_model(model, path)
    assert read_container(path)[1]["ridge.weights"].shape == (32, 3)

    def no_solve(*args: object, **kwargs: object) -> None:
        raise AssertionError("the ridge system was factored although the file holds the head")

    with monkeypatch.context() as patch:
        patch.setattr(ridge_module.PenalizedGram, "cholesky", no_solve)
        loaded = load_model(path)
        assert np.array_equal(loaded.decision_function(probe), expected)  # bit for bit
    loaded.factor_ridge_head()  # as a server does: the next change is a Woodbury update
    loaded.learn(unit_rows(rng, 2, 6), ["a", "c"])
    served = loaded.head("ridge")
    assert isinstance(served, ridge_module.RidgeHead) and served.rank_since_refresh > 0
    same_alpha = ridge_module.RidgeHead.from_moments(loaded.ridge_moments, alpha=served.alpha, unit=loaded.ridge_unit)
    np.testing.assert_allclose(served.weights, same_alpha.weights, atol=1e-8)
    refit = loaded.refit()
    save_model(loaded, tmp_path / "after.erasable")
    save_model(refit, tmp_path / "refit.erasable")
    assert (tmp_path / "after.erasable").read_bytes() == (tmp_path / "refit.erasable").read_bytes()


@pytest.mark.parametrize(
    "weights",
    [np.zeros((32, 2)), np.full((32, 3), np.nan), np.zeros((32, 3), dtype=np.float32)],
    ids=["shape", "nan", "dtype"],
)
def test_bad_saved_ridge_weights_are_refused(tmp_path: Path, weights: np.ndarray) -> None:
    model = Model(relu_config(width=32))
    model.learn(unit_rows(np.random.default_rng(13), 60, 6), ["a", "b", "c"] * 20)
    path = tmp_path / "m.erasable"
    save_model(model, path)
    manifest, tensors = read_container(path)
    write_container(path, manifest, {**tensors, "ridge.weights": weights})
    with pytest.raises(ModelFileError, match="weights"):
        load_model(path)


@pytest.mark.parametrize("alpha", [-1.0, 0.0, "1", float("inf")])
def test_a_bad_saved_alpha_is_refused(small_model: Model, tmp_path: Path, alpha: object) -> None:
    path = tmp_path / "m.erasable"
    save_model(small_model, path)
    manifest, tensors = read_container(path)
    write_container(path, {**manifest, "ridge_alpha": alpha}, tensors)
    with pytest.raises(ModelFileError):
        load_model(path)


def _reseal(path: Path, edit: object) -> None:
    """Rewrite a model file's manifest with ``edit(manifest)`` and a matching digest, as a forger would."""
    import json

    from safetensors.numpy import load as load_bytes
    from safetensors.numpy import save as save_bytes

    from erasable.model_file import manifest_digest

    blob = path.read_bytes()
    tensors = load_bytes(blob)
    manifest = json.loads(json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])["__metadata__"]["erasable"])
    manifest.pop("digest")
    edit(manifest)  # type: ignore[operator]
    manifest["digest"] = manifest_digest(manifest, tensors)
    path.write_bytes(save_bytes(tensors, metadata={"erasable": json.dumps(manifest, sort_keys=True)}))


def test_a_small_model_file_leaves_its_feature_statistics_to_its_samples(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    from erasable.estimator import ErasableClassifier

    x = unit_rows(rng, 100, 384)
    y = rng.integers(0, 10, 100)
    clf = ErasableClassifier().fit(x, y, ids=[f"q{i}" for i in range(100)])  # the default: 4096 features
    path = tmp_path / "m.erasable"
    clf.save(path)
    assert path.stat().st_size <= 2 * 2**20  # the 4096 x 4096 Gram alone would be 134 MB
    loaded = ErasableClassifier.load(path)
    assert loaded.certificate() == clf.certificate()
    np.testing.assert_array_equal(loaded.predict(x), clf.predict(x))
    refit = tmp_path / "refit.erasable"
    ErasableClassifier().fit(x[::-1], y[::-1], ids=[f"q{i}" for i in range(100)][::-1]).save(refit)
    assert refit.read_bytes() == path.read_bytes()

    _reseal(path, lambda m: m.update(feature_statistics="stored"))
    with pytest.raises(ModelFileError, match=r"features Gram does not have the size"):
        load_model(path)
    _reseal(path, lambda m: m.update(feature_statistics="samples") or m["config"]["feature_map"].update(width=2**15))
    with pytest.raises(ModelFileError, match="cannot be left out"):  # refused before anything is allocated
        load_model(path)


def test_files_store_the_gram_packed_and_files_of_square_grams_still_load(small_model: Model, tmp_path: Path) -> None:
    """Version 5 keeps each Gram's upper triangle (half the bytes); a version 4 file, square Grams, loads the same."""
    from erasable.moments import unpack_upper

    path = tmp_path / "m.erasable"
    save_model(small_model, path)
    manifest, tensors = read_container(path)
    width = small_model.feature_map.output_dim
    assert tensors["features.gram_upper"].shape == (width * (width + 1) // 2,)
    old = {k: v for k, v in tensors.items() if not k.endswith(".gram_upper")}
    for prefix, dim in (("embedding", small_model.config.input_dim), ("features", width)):
        old[f"{prefix}.gram"] = unpack_upper(tensors[f"{prefix}.gram_upper"], dim)
    write_container(path, manifest | {"format_version": 4}, old)
    loaded = load_model(path)
    assert loaded.certificate() == small_model.certificate()
    save_model(loaded, tmp_path / "again.erasable")
    assert read_container(tmp_path / "again.erasable")[1].keys() == tensors.keys()
    short = tensors | {"features.gram_upper": tensors["features.gram_upper"][:-1]}
    write_container(path, manifest, short)
    with pytest.raises(ModelFileError, match=r"features Gram does not have the size"):
        load_model(path)
    narrow = tensors | {"features.gram_upper": tensors["features.gram_upper"].astype(np.int32)}
    write_container(path, manifest, narrow)
    with pytest.raises(ModelFileError, match=r"features Gram is int32, not int64"):
        load_model(path)
    fractional = tensors | {"features.class_sums": tensors["features.class_sums"] + 0.5}  # would be truncated
    write_container(path, manifest, fractional)
    with pytest.raises(ModelFileError, match=r"features class sums is float64, not int64"):
        load_model(path)

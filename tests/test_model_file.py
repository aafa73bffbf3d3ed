"""Model files: round trip, canonical bytes, tamper detection, physical forgetting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from erasable.model import Model
from erasable.model_file import ModelFileError, load_model, save_model
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
    tensors["features.gram"] = tensors["features.gram"].copy()
    tensors["features.gram"][0, 0] += 1
    manifest.pop("digest")
    manifest["digest"] = manifest_digest(manifest, tensors)
    path.write_bytes(save_bytes(tensors, metadata={"erasable": json.dumps(manifest)}))
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

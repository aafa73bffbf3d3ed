"""Bring your own encoder (issue 14, item 10): a sentence-transformers model from a local directory
(``encoder="text:PATH"``, in the estimator and the CLI) and any encoder object (``CallableEncoder``)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from erasable import ErasableClassifier
from erasable.encoders import CallableEncoder, ForeignEncoderError, sha256_tree
from erasable.model_file import load_model
from tests.test_cli import assert_user_error, run, write_csv
from tests.test_cli_inputs import texts
from tests.test_encoders import needs_text


def hashed_words(batch: Sequence[str]) -> np.ndarray:
    """A bag of hashed words, unit norm: an encoder anyone could write."""
    out = np.zeros((len(batch), 32))
    for row, text in enumerate(batch):
        for word in text.split():
            out[row, hashlib.sha256(word.encode()).digest()[0] % 32] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_an_encoder_object_fits_saves_and_must_come_back_to_predict(tmp_path: Path) -> None:
    items, labels = texts(40)
    words = CallableEncoder(hashed_words, name="hashed-words", dim=32, version="1")
    clf = ErasableClassifier(encoder=words, width=64).fit(items, labels)
    assert clf.model_.config.encoder == {"kind": "custom", "options": {}, "identity": "hashed-words@1", "dim": 32}
    expected = clf.predict(items[:6])
    assert (expected == np.asarray(labels[:6])).mean() > 0.5
    clf.save(tmp_path / "words.erasable")
    with pytest.raises(ValueError, match="your own encoder 'hashed-words@1'"):
        ErasableClassifier.load(tmp_path / "words.erasable")
    again = ErasableClassifier.load(tmp_path / "words.erasable", encoder=words)
    assert again.predict(items[:6]).tolist() == expected.tolist()
    other = CallableEncoder(hashed_words, name="hashed-words", dim=32, version="2")
    with pytest.raises(ForeignEncoderError):
        ErasableClassifier.load(tmp_path / "words.erasable", encoder=other)


def test_unknown_encoder_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unknown encoder 'sound'"):
        ErasableClassifier(encoder="sound").fit(["a"], ["x"])
    with pytest.raises(TypeError, match="encoder must be"):
        ErasableClassifier(encoder=3).fit(["a"], ["x"])  # type: ignore[arg-type]
    table = write_csv(tmp_path / "t.csv", ["text", "label"], [["hello", "a"]])
    assert_user_error(run("learn", tmp_path / "m.erasable", table, "--encoder", "sound"), "Unknown encoder 'sound'")


@pytest.fixture(scope="module")
def own_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the MiniLM model directory whose pipeline lacks the final Normalize (so the encoder must)."""
    from erasable.encoders.text import minilm_model_dir

    folder = tmp_path_factory.mktemp("own") / "my-minilm"
    shutil.copytree(minilm_model_dir(), folder)
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    shutil.rmtree(folder / "2_Normalize", ignore_errors=True)
    return folder


@needs_text
def test_a_local_sentence_transformers_model_in_the_estimator(own_model_dir: Path) -> None:
    items, labels = texts(24)
    clf = ErasableClassifier(encoder=f"text:{own_model_dir}", width=64).fit(items, labels)
    spec = clf.model_.config.encoder
    assert spec["identity"] == f"my-minilm@local+batch32+l2#sha256:{sha256_tree(own_model_dir)}"
    assert spec["options"] == {"model_dir": str(own_model_dir)} and spec["dim"] == 384
    norms = np.linalg.norm(clf.model_.registry.embeddings.astype(np.float64), axis=1) / 2**13
    np.testing.assert_allclose(norms, 1.0, atol=1e-3)  # normalized by the encoder: the pipeline does not
    assert clf.get_params()["encoder"] == f"text:{own_model_dir}"
    assert (clf.predict(items) == np.asarray(labels)).mean() > 0.8


@needs_text
def test_a_local_sentence_transformers_model_in_the_cli(own_model_dir: Path, tmp_path: Path) -> None:
    items, labels = texts(24)
    table = write_csv(tmp_path / "train.csv", ["text", "label"], [list(r) for r in zip(items, labels, strict=True)])
    model = tmp_path / "own.erasable"
    learnt = run("learn", model, table, "--encoder", f"text:{own_model_dir}", "--width", "64")
    assert learnt.exit_code == 0, learnt.output
    assert load_model(model).config.encoder["options"] == {"model_dir": str(own_model_dir)}  # type: ignore[index]
    answer = run("predict", model, "--text", "my card was declined 99", "--output", "-")
    assert answer.exit_code == 0, answer.output
    assert answer.stdout.splitlines()[1].split(",")[2] == "card"


def test_relearning_ids_is_refused_before_encoding() -> None:
    encoded: list[int] = []

    def counted(batch: Sequence[str]) -> np.ndarray:
        encoded.append(len(batch))
        return hashed_words(batch)

    items, labels = texts(20)
    words = CallableEncoder(counted, name="counted-words", dim=32)
    clf = ErasableClassifier(encoder=words, width=64).fit(items[:10], labels[:10], ids=[f"t{i}" for i in range(10)])
    calls = len(encoded)
    with pytest.raises(ValueError, match=r"Ids already learned.*t3"):
        clf.partial_fit(items[10:], labels[10:], ids=[f"t{i}" for i in range(3, 13)])
    with pytest.raises(ValueError, match="Duplicate ids"):
        ErasableClassifier(encoder=words, width=64).fit(items[:2], labels[:2], ids=["a", "a"])
    assert len(encoded) == calls  # nothing was encoded for either
    assert clf.model_.count == 10

"""Every command that takes data takes the same kinds, and says what a model expects (issue 14, items 5, 6):
a text model given vectors, ``--split`` on an NPZ of texts, ``audit`` of a text model on a CSV of texts,
an image model given texts, and re-learning ids refused before anything is encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import assert_user_error, learned, make_data, run, write_csv, write_npz
from tests.test_encoders import needs_image, needs_text

WORDS = {"card": ["my card was declined", "card refused at the shop"], "refund": ["where is my refund", "refund me"]}
SMALL = ("--width", "64")


def texts(n: int) -> tuple[list[str], list[str]]:
    """``n`` short texts of two classes, all distinct."""
    labels = [("card", "refund")[i % 2] for i in range(n)]
    return [f"{WORDS[label][i % 4 // 2]} {i}" for i, label in enumerate(labels)], labels


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("text")
    items, labels = texts(24)
    rows = [[f"t{i}", text, label, f"user{i % 3}"] for i, (text, label) in enumerate(zip(items, labels, strict=True))]
    write_csv(folder / "train.csv", ["id", "text", "category", "user"], rows)
    model = folder / "text.erasable"
    args = ("--encoder", "text", "--label-column", "category", "--id-column", "id", "--subject-column", "user")
    result = run("learn", model, folder / "train.csv", *args, *SMALL)
    assert result.exit_code == 0, result.output
    return model


@needs_text
def test_a_text_model_given_vectors_says_what_it_takes(text_model: Path, tmp_path: Path) -> None:
    vectors = write_npz(tmp_path / "vectors.npz", np.eye(3, 384), np.array(["card"] * 3))
    result = run("predict", text_model, vectors)
    assert_user_error(result, "vectors.npz holds arrays or image files, but this model takes texts", "--text")


@needs_text
def test_split_selects_the_arrays_of_an_npz_of_texts(text_model: Path, tmp_path: Path) -> None:
    items, labels = texts(6)
    path = tmp_path / "texts.npz"
    np.savez(path, X_train=np.array(items[:2]), y_train=np.array(labels[:2]), X_test=np.array(items[2:]))
    result = run("predict", text_model, path, "--split", "test", "--output", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert "Wrote 4 predictions" in result.stdout
    missing = run("predict", text_model, path, "--split", "dev")
    assert_user_error(missing, "no array 'X_dev'")


@needs_text
def test_audit_of_a_text_model_reads_a_csv_of_texts(text_model: Path, tmp_path: Path) -> None:
    items, labels = texts(30)
    test_csv = write_csv(
        tmp_path / "test.csv", ["text", "category"], [list(r) for r in zip(items, labels, strict=True)]
    )
    result = run(
        "audit",
        text_model,
        "--test",
        test_csv,
        "--label-column",
        "category",
        "--subject",
        "user1",
        "--out",
        tmp_path / "audit",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "audit" / "report.md").is_file()


@needs_text
def test_relearning_ids_is_refused_before_encoding(text_model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = text_model.read_bytes()
    args = ("--label-column", "category", "--id-column", "id", "--subject-column", "user", "--cache-dir", cache)
    result = run("learn", text_model, text_model.parent / "train.csv", *args)
    assert_user_error(result, "Ids already learned", "t0")
    assert not cache.exists() or not any(cache.iterdir())  # nothing was encoded (the cache would hold it)
    assert text_model.read_bytes() == before


def test_a_vector_model_refuses_text_options(tmp_path: Path) -> None:
    X, y = make_data(30)
    model = learned(tmp_path, "vectors", X, y)
    assert_user_error(run("predict", model, "--text", "hello"), "--text is for text models", "vectors of dimension 8")
    assert_user_error(run("predict", model), "Give either DATA or --text.")


@needs_image
def test_an_image_model_refuses_texts(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    model = tmp_path / "images.erasable"
    learnt = run(
        "learn", model, write_npz(tmp_path / "images.npz", images, np.array([0, 1, 0, 1])), "--encoder", "image", *SMALL
    )
    assert learnt.exit_code == 0, learnt.output
    table = write_csv(tmp_path / "texts.csv", ["text"], [["a photo of a shoe"]])
    assert_user_error(run("predict", model, table), "texts.csv holds texts, but this model takes images")
    assert_user_error(run("predict", model, "--text", "a shoe"), "--text is for text models", "takes images")

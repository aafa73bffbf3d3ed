"""The image encoder on its own defaults, as a user meets it (issue 14, item 1): ``erasable learn
IMAGES.idx3-ubyte.gz --labels-path ... --encoder image`` and ``ErasableClassifier(encoder="image")`` on
real Fashion-MNIST images, and an encoder whose output cannot fit the model failing on its first batch."""

from __future__ import annotations

import gzip
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from erasable import ErasableClassifier
from erasable.encoders import PROBE_SIZE, Batch, PrecomputedVectors
from erasable.exact import OverflowRiskError
from erasable.io import read_mnist_folder
from erasable.model import Model, ModelConfig
from erasable.model_file import load_model
from tests.conftest import SHARED_DATA
from tests.test_cli import run
from tests.test_encoders import needs_image

FASHION = SHARED_DATA / "fashion-mnist"
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason=f"shared data not found at {FASHION}")
N_TRAIN, N_TEST = 40, 20


def write_idx_gz(path: Path, array: np.ndarray) -> Path:
    """``array`` (uint8) as a gzipped IDX file, the format Fashion-MNIST ships in."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()))
    return path


@pytest.fixture(scope="module")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    if not FASHION.is_dir():
        pytest.skip(f"shared data not found at {FASHION}")
    data = read_mnist_folder(FASHION, "train")
    return np.asarray(data.items)[: N_TRAIN + N_TEST], np.asarray(data.labels)[: N_TRAIN + N_TEST]


@needs_image
@needs_fashion
def test_cli_learns_idx_images_with_the_default_scale(tmp_path: Path, fashion: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = fashion
    items = write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", images[:N_TRAIN])
    targets = write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", labels[:N_TRAIN])
    model_path = tmp_path / "fm.erasable"
    result = run("learn", model_path, items, "--labels-path", targets, "--encoder", "image", "--width", "256")
    assert result.exit_code == 0, result.output
    assert f"Learned {N_TRAIN} samples" in result.stdout
    model = load_model(model_path)
    assert model.config.scale_bits == 13  # the default scale, untouched
    norms = np.linalg.norm(model.registry.embeddings.astype(np.float64), axis=1) / 2**13
    np.testing.assert_allclose(norms, 1.0, atol=1e-3)  # unit-norm embeddings, quantized
    assert model.config.encoder is not None and "+l2#" in model.config.encoder["identity"]


@needs_image
@needs_fashion
def test_estimator_fits_raw_images_with_the_default_scale(fashion: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = fashion
    clf = ErasableClassifier(encoder="image", width=256).fit(images[:N_TRAIN], labels[:N_TRAIN])
    assert clf.score(images[N_TRAIN:], labels[N_TRAIN:]) > 0.3  # 10 classes, 4 samples each: chance is 0.1


def test_an_encoder_out_of_range_fails_on_its_first_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[int] = []
    original = PrecomputedVectors.encode

    def counted(self: PrecomputedVectors, batch: Batch) -> np.ndarray:
        encoded.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(PrecomputedVectors, "encode", counted)
    encoder = ModelConfig.encoder_config(PrecomputedVectors(2), "precomputed", dim=2)
    config = replace(ErasableClassifier(feature_map="identity").model_config(2), encoder=encoder)
    model = Model(config)
    loud = np.full((5000, 2), 6.0)  # far out of the default scale's |x| <= 4
    with pytest.raises(OverflowRiskError, match=r"Encoder 'precomputed' makes embeddings this model cannot learn"):
        model.embed(loud, to_learn=True)
    assert encoded == [PROBE_SIZE]  # one small batch, not the first chunk of 1024
    assert model.embed(loud[:3]).shape == (3, 2)  # for predictions, out-of-range inputs are clipped (and counted)

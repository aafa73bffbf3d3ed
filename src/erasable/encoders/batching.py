"""Encode many inputs: in chunks, with a progress callback and an optional on-disk cache.

>>> from erasable.encoders.wrappers import CallableEncoder
>>> lengths = CallableEncoder(lambda texts: [[len(t)] for t in texts], name="length", dim=1)
>>> done = []
>>> encode_batched(lengths, ["a", "bb", "ccc"], chunk_size=2, progress=done.append).ravel().tolist()
[1.0, 2.0, 3.0]
>>> done
[2, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from erasable.encoders.base import Batch, Encoder, check_embeddings
from erasable.encoders.cache import EmbeddingCache

__all__ = ["DEFAULT_CHUNK_SIZE", "encode_batched"]

#: Inputs per call to ``encoder.encode`` (and per cache file): large enough that the
#: encoder's own batching (e.g. sentence-transformers' length sorting) works well.
DEFAULT_CHUNK_SIZE = 1024


def encode_batched(
    encoder: Encoder,
    items: Batch,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
    cache_dir: str | Path | None = None,
) -> NDArray[np.float32]:
    """Embeddings ``(len(items), encoder.dim)`` of ``items``, computed ``chunk_size`` at a time.

    ``progress`` is called after each chunk with the number of inputs it held. With
    ``cache_dir``, each chunk is looked up in (or added to) an :class:`EmbeddingCache`
    there, so re-running the same command does not re-encode, and an interrupted run
    resumes where it stopped. Every chunk's output is checked for shape and finiteness.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}.")
    cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
    n, dim = len(items), encoder.dim
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk_size):
        chunk = items[start : start + chunk_size]
        out[start : start + len(chunk)] = _encode_chunk(encoder, chunk, start, cache)
        if progress is not None:
            progress(len(chunk))
    return out


def _encode_chunk(encoder: Encoder, chunk: Batch, offset: int, cache: EmbeddingCache | None) -> NDArray[np.float32]:
    if cache is None:
        return _encode_checked(encoder, chunk, offset)
    key = cache.key(encoder.identity, chunk)
    embeddings = cache.load(key, len(chunk), encoder.dim)
    if embeddings is None:
        embeddings = _encode_checked(encoder, chunk, offset)
        cache.store(key, embeddings)
    return embeddings


def _encode_checked(encoder: Encoder, chunk: Batch, offset: int) -> NDArray[np.float32]:
    try:
        raw = encoder.encode(chunk)
    except (TypeError, ValueError) as exc:
        exc.add_note(f"(input positions above are within the chunk of inputs {offset}..{offset + len(chunk) - 1})")
        raise
    return check_embeddings(raw, len(chunk), encoder.dim, encoder.name, offset)

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

__all__ = ["DEFAULT_CHUNK_SIZE", "PROBE_SIZE", "encode_batched"]

#: Inputs per call to ``encoder.encode`` (and per cache file): large enough that the
#: encoder's own batching (e.g. sentence-transformers' length sorting) works well.
DEFAULT_CHUNK_SIZE = 1024

#: Inputs encoded alone first when the output is checked: one encoder batch, seconds at most.
PROBE_SIZE = 16


def encode_batched(
    encoder: Encoder,
    items: Batch,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
    cache_dir: str | Path | None = None,
    check: Callable[[NDArray[np.float32]], object] | None = None,
) -> NDArray[np.float32]:
    """Embeddings ``(len(items), encoder.dim)`` of ``items``, computed ``chunk_size`` at a time.

    ``progress`` is called after each chunk with the number of inputs it held. With
    ``cache_dir``, each chunk is looked up in (or added to) an :class:`EmbeddingCache`
    there, so re-running the same command does not re-encode, and an interrupted run
    resumes where it stopped. Every chunk's output is checked for shape and finiteness.

    ``check`` (raising if embeddings are unusable, e.g. out of a model's range) is called on
    every chunk's embeddings -- and, before the first chunk is encoded, on those of its
    first :data:`PROBE_SIZE` inputs alone, so an unusable encoder fails within seconds:

    >>> from erasable.encoders.wrappers import CallableEncoder
    >>> seen = []
    >>> big = CallableEncoder(lambda xs: (seen.append(len(xs)), [[9.0]] * len(xs))[1], name="big", dim=1)
    >>> def small(embeddings):
    ...     if abs(embeddings).max() > 4:
    ...         raise ValueError("too large")
    >>> encode_batched(big, list(range(5000)), check=small)
    Traceback (most recent call last):
    ...
    ValueError: too large
    >>> seen
    [16]
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}.")
    cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
    n, dim = len(items), encoder.dim
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk_size):
        chunk = items[start : start + chunk_size]
        embeddings = _encode_chunk(encoder, chunk, start, cache, check if start == 0 else None)
        if check is not None:
            check(embeddings)
        out[start : start + len(chunk)] = embeddings
        if progress is not None:
            progress(len(chunk))
    return out


def _encode_chunk(
    encoder: Encoder,
    chunk: Batch,
    offset: int,
    cache: EmbeddingCache | None,
    probe: Callable[[NDArray[np.float32]], object] | None,
) -> NDArray[np.float32]:
    """A chunk's embeddings, from the cache or encoded; ``probe`` checks a first few before encoding the rest."""
    key = "" if cache is None else cache.key(encoder.identity, chunk)
    if cache is not None and (cached := cache.load(key, len(chunk), encoder.dim)) is not None:
        return cached
    if probe is not None and len(chunk) > PROBE_SIZE:
        probe(_encode_checked(encoder, chunk[:PROBE_SIZE], offset))
    embeddings = _encode_checked(encoder, chunk, offset)
    if cache is not None:
        cache.store(key, embeddings)
    return embeddings


def _encode_checked(encoder: Encoder, chunk: Batch, offset: int) -> NDArray[np.float32]:
    try:
        raw = encoder.encode(chunk)
    except (TypeError, ValueError) as exc:
        exc.add_note(f"(input positions above are within the chunk of inputs {offset}..{offset + len(chunk) - 1})")
        raise
    return check_embeddings(raw, len(chunk), encoder.dim, encoder.name, offset)

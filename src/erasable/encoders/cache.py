"""An on-disk cache of embeddings, keyed by SHA-256 of (encoder identity + input content).

Each cached block of inputs is one ``<key>.npy`` file (float32, loaded with
``allow_pickle=False``). The key covers the *content* of the inputs -- the text, the
array bytes, or the bytes of an image file, never its name -- so an edited file misses
and a renamed one hits. A file that is unreadable or of the wrong shape counts as a miss
and is rewritten.

The cache holds embeddings of everything encoded through it. Forgetting a sample does
not reach it: call :meth:`EmbeddingCache.clear` (or delete the directory) when forgotten
data must leave the disk.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     cache = EmbeddingCache(d)
...     key = cache.key("toy@1", ["hello", "world"])
...     print(cache.load(key, 2, 3))
...     cache.store(key, np.ones((2, 3), dtype=np.float32))
...     cache.load(key, 2, 3).sum()
None
np.float32(6.0)
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from erasable.encoders.base import Batch, sha256_file

__all__ = ["EmbeddingCache", "content_digest"]

_DOMAIN = b"erasable-embedding-cache-v1\0"


def _update_array(digest: Any, array: NDArray[Any]) -> None:
    if array.dtype.hasobject:
        raise TypeError("Cannot hash an object array for the embedding cache: use numeric or string arrays.")
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())


def _update_item(digest: Any, item: object) -> None:
    if isinstance(item, str):
        payload, tag = item.encode(), b"s"
    elif isinstance(item, bytes):
        payload, tag = item, b"b"
    elif isinstance(item, Path):
        payload, tag = bytes.fromhex(sha256_file(item)), b"f"
    else:
        digest.update(b"a")
        _update_array(digest, np.asarray(item))
        return
    digest.update(tag + struct.pack("<Q", len(payload)) + payload)


def content_digest(identity: str, items: Batch) -> str:
    """Hex SHA-256 of an encoder identity and the content of ``items``, in order.

    Strings and bytes hash as such, :class:`~pathlib.Path` items by their file's bytes,
    anything else as a numpy array (dtype, shape and bytes).

    >>> content_digest("toy@1", ["a"]) == content_digest("toy@1", ["a"])
    True
    >>> content_digest("toy@1", ["a"]) == content_digest("toy@2", ["a"])
    False
    """
    digest = hashlib.sha256(_DOMAIN)
    digest.update(identity.encode() + b"\0")
    if isinstance(items, np.ndarray) and not items.dtype.hasobject:
        digest.update(b"A")
        _update_array(digest, items)
    else:
        digest.update(struct.pack("<Q", len(items)))
        for item in items:
            _update_item(digest, item)
    return digest.hexdigest()


class EmbeddingCache:
    """Embeddings stored as ``.npy`` files in ``directory`` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def key(self, identity: str, items: Batch) -> str:
        """The cache key of ``items`` encoded by the encoder ``identity``."""
        return content_digest(identity, items)

    def path(self, key: str) -> Path:
        """Where the embeddings of ``key`` are (or would be) stored."""
        return self.directory / f"{key}.npy"

    def load(self, key: str, n: int, dim: int) -> NDArray[np.float32] | None:
        """The cached ``(n, dim)`` float32 embeddings, or ``None`` on a miss."""
        try:
            array = np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.shape != (n, dim):
            return None
        return array

    def store(self, key: str, embeddings: NDArray[np.float32]) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        with tempfile.NamedTemporaryFile(dir=self.directory, suffix=".tmp", delete=False) as handle:
            temporary = Path(handle.name)
            try:
                np.save(handle, np.asarray(embeddings, dtype=np.float32))
            except BaseException:
                handle.close()
                temporary.unlink()
                raise
        os.replace(temporary, self.path(key))

    def clear(self) -> int:
        """Delete every cached file (and any left half-written); return how many there were."""
        files = [*self.directory.glob("*.npy"), *self.directory.glob("*.tmp")]
        for path in files:
            path.unlink()
        return len(files)

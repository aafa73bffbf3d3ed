"""The encoder protocol, encoder identities, and the check that refuses a foreign encoder.

An encoder turns a batch of raw inputs into a float32 matrix ``(n, dim)``. Its
``identity`` -- name, version and SHA-256 of its weights -- is what a model records: an
embedding is only comparable with embeddings from the same identity.

>>> identity = make_identity("toy", "1", weights_sha256="ab" * 32)
>>> identity.startswith("toy@1#sha256:abab")
True
>>> class Toy:
...     name, dim, identity = "toy", 2, identity
...     def encode(self, batch):
...         return np.zeros((len(batch), 2), dtype=np.float32)
>>> isinstance(Toy(), Encoder)
True
>>> check_same_encoder(identity, Toy())
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Batch",
    "Encoder",
    "EncoderUnavailableError",
    "ForeignEncoderError",
    "check_embeddings",
    "check_same_encoder",
    "make_identity",
    "sha256_file",
    "sha256_tree",
    "tree_digest",
]

_READ_BLOCK = 1 << 20

#: What ``encode`` takes: a sequence of inputs, or one array whose first axis runs over them.
Batch = Sequence[Any] | NDArray[Any]


@runtime_checkable
class Encoder(Protocol):
    """What erasable needs from an encoder.

    ``name`` is human readable, ``dim`` the embedding width, ``identity`` a stable string
    that changes whenever the embeddings could (see :func:`make_identity`), and
    ``encode`` maps a batch of ``n`` inputs to a float32 array of shape ``(n, dim)``.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def identity(self) -> str: ...

    def encode(self, batch: Batch) -> NDArray[np.float32]: ...


class ForeignEncoderError(ValueError):
    """Inputs were encoded by another encoder than the one a model was built with."""


class EncoderUnavailableError(ImportError):
    """An encoder's packages (its library or its weights) are not installed; the message names the install."""


def make_identity(name: str, version: str, weights_sha256: str | None = None) -> str:
    """The identity string ``name@version#sha256:<hex>`` (no hash part without weights).

    >>> make_identity("precomputed", "384d")
    'precomputed@384d'
    """
    for part, value in (("name", name), ("version", version)):
        if not value or any(c in value for c in "@#"):
            raise ValueError(f"Encoder {part} must be non-empty and free of '@' and '#', got {value!r}.")
    identity = f"{name}@{version}"
    return identity if weights_sha256 is None else f"{identity}#sha256:{weights_sha256}"


def check_same_encoder(expected_identity: str, encoder: Encoder) -> None:
    """Raise :class:`ForeignEncoderError` unless ``encoder`` has ``expected_identity``.

    >>> class Other:
    ...     name, dim, identity = "other", 2, "other@2"
    >>> check_same_encoder("toy@1", Other())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    erasable.encoders.base.ForeignEncoderError: This model was built with encoder 'toy@1', but the inputs ...
    """
    if encoder.identity != expected_identity:
        raise ForeignEncoderError(
            f"This model was built with encoder {expected_identity!r}, but the inputs come from encoder "
            f"{encoder.identity!r}. Embeddings of different encoders are not comparable: encode with the "
            "model's own encoder, or build a new model."
        )


def check_embeddings(embeddings: object, n: int, dim: int, name: str, offset: int = 0) -> NDArray[np.float32]:
    """``embeddings`` as a float32 ``(n, dim)`` array of finite values, or a clear error.

    ``offset`` is the position of the first row in the caller's input, for the message.

    >>> check_embeddings([[1.0, float("nan")]], 1, 2, "toy", offset=7)
    Traceback (most recent call last):
    ...
    ValueError: Encoder 'toy' produced non-finite values for the inputs at positions [7].
    """
    array = np.asarray(embeddings, dtype=np.float32)
    if n == 0 and array.size == 0:
        return np.zeros((0, dim), dtype=np.float32)
    if array.shape != (n, dim):
        raise ValueError(f"Encoder {name!r} returned shape {array.shape} for {n} inputs; expected ({n}, {dim}).")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        positions = (bad[:10] + offset).tolist()
        raise ValueError(f"Encoder {name!r} produced non-finite values for the inputs at positions {positions}.")
    return array


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     sha256_file(f.name) == hashlib.sha256(b"").hexdigest()
    True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | Path) -> str:
    """Hex SHA-256 over every file under ``root``: sorted relative paths and their hashes.

    Caches Python leaves behind (``__pycache__``) are ignored.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "w.bin").write_bytes(b"weights")
    ...     len(sha256_tree(d))
    64
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if not files:
        raise FileNotFoundError(f"No files under {root}: cannot hash the encoder's weights.")
    return tree_digest({path.relative_to(root).as_posix(): sha256_file(path) for path in files})


def tree_digest(file_hashes: Mapping[str, str]) -> str:
    """The :func:`sha256_tree` of a folder from its files' hashes (relative POSIX path -> hex SHA-256).

    What lets a folder's hash be computed while it is written, without reading it again.

    >>> tree_digest({"b": "2", "a": "1"}) == tree_digest({"a": "1", "b": "2"})
    True
    """
    digest = hashlib.sha256()
    for relative in sorted(file_hashes, key=lambda relative: relative.split("/")):  # as Path sorts them
        digest.update(f"{relative}\0{file_hashes[relative]}\n".encode())
    return digest.hexdigest()

"""Encoders that wrap what the user already has: precomputed vectors, or any callable.

>>> vectors = PrecomputedVectors(2)
>>> vectors.identity
'precomputed@2d'
>>> vectors.encode([[1, 0], [0, 1]]).dtype
dtype('float32')
>>> doubled = CallableEncoder(lambda xs: [[2 * x] for x in xs], name="double", dim=1, version="2")
>>> doubled.identity, doubled.encode([1.5]).tolist()
('double@2', [[3.0]])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from erasable.encoders.base import Batch, check_embeddings, make_identity

__all__ = ["CallableEncoder", "PrecomputedVectors"]


class PrecomputedVectors:
    """Inputs that already are ``dim``-wide embeddings, passed through as float32.

    Vectors made elsewhere by a known encoder may declare its ``identity`` (for example
    ``TextEncoder().identity`` for all-MiniLM-L6-v2 vectors): a model built on them then
    accepts that encoder's inputs, and refuses any other.
    """

    name = "precomputed"

    def __init__(self, dim: int, *, identity: str | None = None) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}.")
        self.dim = dim
        self.identity = identity or make_identity(self.name, f"{dim}d")

    def encode(self, batch: Batch) -> NDArray[np.float32]:
        return check_embeddings(batch, len(batch), self.dim, self.name)


class CallableEncoder:
    """Any function from a batch of inputs to an ``(n, dim)`` array, under a name.

    ``version`` and ``weights_sha256`` form its identity with ``name``: change the version
    whenever the function's output could change, or models will mix incomparable vectors.
    """

    def __init__(
        self,
        function: Callable[[Batch], ArrayLike],
        *,
        name: str,
        dim: int,
        version: str = "1",
        weights_sha256: str | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}.")
        self.function = function
        self.name = name
        self.dim = dim
        self.identity = make_identity(name, version, weights_sha256)

    def encode(self, batch: Batch) -> NDArray[np.float32]:
        return check_embeddings(self.function(batch), len(batch), self.dim, self.name)

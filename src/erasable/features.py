"""Deterministic, integer-exact feature maps from quantized embeddings to int16 features.

A feature map is part of a model's identity: it must give the same integers on every
machine, forever. So the random projection of :class:`RandomReLU` is drawn from SHAKE-256
(a hash, stable across NumPy versions, unlike ``numpy.random.Generator`` streams), its
entries are ±1, and the products go through :func:`erasable.exact.exact_matmul`.

>>> import numpy as np
>>> fmap = RandomReLU(input_dim=3, width=4, seed=7, shift=0)
>>> fmap.transform(np.array([[10, -2, 5]], dtype=np.int16))
array([[ 0,  0, 17,  0]], dtype=int16)
>>> feature_map_from_config(fmap.config()) == fmap
True
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from erasable.exact import INT16_MAX, exact_matmul

#: Bits of an int16 feature (the most a feature may have).
INT16_BITS = 15

#: Projections up to this size are kept for the next feature map of the same shape and seed (a refit, a clone).
CACHED_PROJECTION_BYTES = 2**26
__all__ = [
    "INT16_BITS",
    "FeatureMap",
    "Identity",
    "RandomReLU",
    "feature_map_from_config",
    "norm_advice",
    "shift_for_unit_norm",
]


class FeatureMap(Protocol):
    """Maps int16 embeddings (n, input_dim) to int16 features (n, output_dim)."""

    input_dim: int

    @property
    def output_dim(self) -> int: ...

    def transform(self, embeddings: NDArray[np.int16]) -> NDArray[np.int16]: ...

    def transform_float(self, embeddings: NDArray[np.int16]) -> NDArray[np.floating]:
        """The same integers as :meth:`transform`, as float32 or float64 ready for BLAS."""
        ...

    def config(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Identity:
    """The features are the quantized embeddings themselves.

    >>> Identity(input_dim=2).output_dim
    2
    """

    input_dim: int

    @property
    def output_dim(self) -> int:
        return self.input_dim

    def transform(self, embeddings: NDArray[np.int16]) -> NDArray[np.int16]:
        return np.asarray(embeddings, dtype=np.int16)

    def transform_float(self, embeddings: NDArray[np.int16]) -> NDArray[np.float64]:
        return np.asarray(embeddings, dtype=np.float64)

    def config(self) -> dict[str, Any]:
        return {"kind": "identity", "input_dim": self.input_dim}


def shift_for_unit_norm(input_dim: int, scale_bits: int, bits: int = INT16_BITS) -> int:
    """The right shift that fits ReLU(P e) of a unit-norm embedding ``e`` into ``bits`` bits.

    With ±1 entries, each ``P_j . e`` of a unit-norm ``e`` has standard deviation
    ``2**scale_bits`` over the random signs; fewer than 15 bits hold four of them (values
    beyond saturate, about 3 in 100,000 of them). 15 bits, the int16 range, are the other
    rule, that of models made before 6-bit features: they hold every value,
    ``|P_j . e| <= sqrt(input_dim) * 2**scale_bits`` (Cauchy-Schwarz), so normalized inputs
    never saturate. So 15 bits are not finer than 14 (or 13): they trade resolution for
    never saturating.

    >>> shift_for_unit_norm(384, 13, bits=6)
    9
    >>> shift_for_unit_norm(384, 13)
    3
    """
    if bits < INT16_BITS:
        return max(0, scale_bits + 2 - bits)
    bound = math.sqrt(input_dim) * 2**scale_bits
    return max(0, math.ceil(math.log2(bound / INT16_MAX)))


@dataclass(frozen=True)
class RandomReLU:
    """The ACIL "buffer": ``min(ReLU(e @ P) >> shift, 2**bits - 1)`` with a seeded ±1 matrix P.

    ``P`` has shape (input_dim, width); its bits come from SHAKE-256 of the seed. Values
    above ``2**bits - 1`` after the shift saturate (deterministically); choose ``shift``
    with :func:`shift_for_unit_norm`. erasable's default is 6 bits (the ``feature_bits``
    parameter): within 0.1 point of int16 features on validation splits of
    BANKING77, HWU64 and Fashion-MNIST, and a Gram of such features sums exactly in float32
    over 4,227 rows at a time, at twice float64's speed. The dataclass default, 15, is the
    map of configurations without ``bits`` (models made before it existed).
    """

    input_dim: int
    width: int
    seed: int
    shift: int
    bits: int = INT16_BITS

    def __post_init__(self) -> None:
        # Integers only: the seed names the projection's bits (0.0 would draw another one than 0).
        values = (self.input_dim, self.width, self.seed, self.shift, self.bits)
        if any(not isinstance(v, int) or isinstance(v, bool) for v in values):
            raise ValueError("input_dim, width, seed, shift and bits must be integers.")
        if not 1 <= self.bits <= INT16_BITS:
            raise ValueError(f"bits must be in 1..{INT16_BITS}, got {self.bits}.")
        if self.input_dim < 1 or self.width < 1:
            raise ValueError(f"input_dim and width must be positive, got {self.input_dim}, {self.width}.")
        if self.shift < 0:
            raise ValueError(f"shift must be >= 0, got {self.shift}.")

    @cached_property
    def _projection(self) -> NDArray[np.float32]:
        """``P``, drawn when first used: validating a configuration does not pay for it."""
        if 4 * self.input_dim * self.width <= CACHED_PROJECTION_BYTES:
            return _cached_signs(self.input_dim, self.width, self.seed)
        return _signs(self.input_dim, self.width, self.seed)

    @property
    def output_dim(self) -> int:
        return self.width

    def transform_float(self, embeddings: NDArray[np.int16]) -> NDArray[np.floating]:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.input_dim:
            raise ValueError(f"Expected embeddings of shape (n, {self.input_dim}), got {embeddings.shape}.")
        z = exact_matmul(embeddings, self._projection)  # float32 where exact: less memory traffic
        if self.shift:
            z *= 0.5**self.shift  # exact: a power of two
            np.floor(z, out=z)
        # ReLU and saturation in one pass (floor commutes with ReLU). The result stays in the
        # float type of the product: float32 holds these integers exactly, at half the traffic.
        return np.clip(z, 0.0, 2**self.bits - 1, out=z)

    def transform(self, embeddings: NDArray[np.int16]) -> NDArray[np.int16]:
        return self.transform_float(embeddings).astype(np.int16)

    def config(self) -> dict[str, Any]:
        config = {
            "kind": "random_relu",
            "input_dim": self.input_dim,
            "width": self.width,
            "seed": self.seed,
            "shift": self.shift,
        }
        # 15 bits, the map of files older than "bits", leaves it out: their configs stay the bytes they were.
        return config if self.bits == INT16_BITS else config | {"bits": self.bits}


def _signs(input_dim: int, width: int, seed: int) -> NDArray[np.float32]:
    """The read-only ±1 matrix (input_dim, width) of SHAKE-256 of ``seed``."""
    n_bits = input_dim * width
    stream = hashlib.shake_256(f"erasable.RandomReLU:{seed}".encode()).digest((n_bits + 7) // 8)
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8), count=n_bits)
    signs = (bits.astype(np.float32) * 2.0 - 1.0).reshape(input_dim, width)
    signs.setflags(write=False)
    return signs


_cached_signs = functools.lru_cache(maxsize=4, typed=True)(_signs)


#: Median row norms outside this range cost narrow features accuracy (6 bits against int16 on validation splits
#: of HWU64 and digits: norm 0.1 -0.8 to -1.5 points, 0.03 -4 to -6; at 0.3 -0.1 to -0.4, at 3 -0.2 to -0.65,
#: digits at 3.9 nothing; larger norms saturate more). Coordinates must stay below 4 anyway (scale_bits=13).
UNIT_NORM_RANGE = (0.3, 4.0)


def norm_advice(feature_map: Identity | RandomReLU, embeddings: NDArray[np.floating]) -> str | None:
    """What to tell a user whose ``embeddings`` are far from the unit norm a narrow map is scaled for, or ``None``.

    A map of fewer than 15 bits has its shift set for unit-norm inputs (:func:`shift_for_unit_norm`):
    much smaller ones use few of its levels, much larger ones saturate. The int16 map's headroom
    covers norms from 0.03 to 3 without a measurable difference.

    >>> fmap = RandomReLU(input_dim=2, width=4, seed=0, shift=9, bits=6)
    >>> norm_advice(fmap, np.array([[0.6, 0.8]])) is None
    True
    >>> print(norm_advice(fmap, np.array([[0.06, 0.08]])))  # doctest: +ELLIPSIS
    The inputs' median norm is 0.1, but 6-bit features are scaled for unit-norm inputs...
    """
    if not isinstance(feature_map, RandomReLU) or feature_map.bits >= INT16_BITS or not len(embeddings):
        return None
    median = float(np.median(np.linalg.norm(embeddings, axis=1)))
    low, high = UNIT_NORM_RANGE
    if low <= median <= high:
        return None
    return (
        f"The inputs' median norm is {median:.3g}, but {feature_map.bits}-bit features are scaled for unit-norm "
        f"inputs and lose accuracy below {low} or above {high}: normalize each row (x / ||x||), or use "
        "feature_bits=15."
    )


def feature_map_from_config(config: dict[str, Any]) -> Identity | RandomReLU:
    """Rebuild a feature map from :meth:`config` output (e.g. read from a model file)."""
    kind = config.get("kind")
    params = {k: v for k, v in config.items() if k != "kind"}
    if kind == "identity":
        return Identity(**params)
    if kind == "random_relu":
        return RandomReLU(**params)
    raise ValueError(f"Unknown feature map kind {kind!r}.")

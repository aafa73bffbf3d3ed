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
    "integer_norms",
    "scale_free_levels",
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


def shift_for_unit_norm(input_dim: int, scale_bits: int) -> int:
    """The right shift that keeps ReLU(P e) in int16 for every embedding of norm <= 1.

    With ±1 entries, ``|P_j . e| <= ||P_j|| ||e|| = sqrt(input_dim) * 2**scale_bits``
    (Cauchy-Schwarz), so shifting by this many bits never saturates normalized inputs. The
    int16 map of models made before scale-free features.

    >>> shift_for_unit_norm(384, 13)
    3
    """
    bound = math.sqrt(input_dim) * 2**scale_bits
    return max(0, math.ceil(math.log2(bound / INT16_MAX)))


def integer_norms(embeddings: NDArray[np.int16]) -> NDArray[np.int64]:
    """``max(1, isqrt(sum e**2))`` of each row, exactly (the sums of squares are int64).

    >>> integer_norms(np.array([[3, 4], [1, 1], [0, 0]], dtype=np.int16))
    array([5, 1, 1])
    """
    wide = embeddings.astype(np.int64)
    squares = np.einsum("ij,ij->i", wide, wide)
    roots = np.floor(np.sqrt(squares.astype(np.float64))).astype(np.int64)  # within one of isqrt: exact below 2**53
    roots -= roots * roots > squares
    roots += (roots + 1) * (roots + 1) <= squares
    return np.maximum(roots, 1)


def scale_free_levels(z: NDArray[np.floating], norms: NDArray[np.int64], bits: int) -> NDArray[np.float32]:
    """``min(floor(ReLU(z) * 2**(bits - 2) / norms), 2**bits - 1)`` row by row, the exact integer floor.

    ``z`` holds exact integers (the projection's products); on the float32 path below it is
    overwritten with the result. Whatever ``z``'s type (float32 or float64, as the batch's largest value
    decides), the result is the exact floor, so a row's levels do not depend on its batch:

    * in float32 when ``bits >= 2`` and every norm is below ``2**(25 - bits)`` (``2**19`` at 6
      bits: inputs up to norm 64 at the default quantization). ``z * 2**(bits - 2)`` is then an
      exact integer, so a quotient that is not an integer is at least ``1 / N`` below the next
      one; below the saturation level the correctly rounded quotient is within
      ``2**(bits - 25)`` of the true one, closer than that, so it does not reach the next
      integer; nor does it fall below the floor, an integer that float32 holds (rounding is
      monotone), so its floor is exact. Above the saturation level, and below 0, rounding
      stays on the same side and the clip gives the same level.
    * in float64 otherwise (``|q| < 2**20``, gaps above ``2**-23``: the same argument).

    >>> scale_free_levels(np.array([[1023.0, 1024.0, -5.0, 9999.0]]), np.array([2048]), bits=4)
    array([[ 1.,  2.,  0., 15.]], dtype=float32)
    """
    divisors: NDArray[np.number]
    if z.dtype == np.float32 and bits >= 2 and int(norms.max(initial=1)) < 2 ** (25 - bits):
        q = z
        divisors = norms.astype(np.float32)[:, None]  # exact: below 2**19
    else:
        q = z.astype(np.float64)
        divisors = norms[:, None]
    q *= 2.0 ** (bits - 2)
    q /= divisors
    np.floor(q, out=q)
    np.clip(q, 0.0, 2**bits - 1, out=q)
    return q.astype(np.float32, copy=False)  # at most 2**14 - 1: exact


@dataclass(frozen=True)
class RandomReLU:
    """The ACIL "buffer" on a seeded ±1 matrix P, shifted or scale-free, saturating at ``2**bits - 1``.

    ``P`` has shape (input_dim, width); its bits come from SHAKE-256 of the seed.

    * Shifted (``scale_free=False``, the map of models made before): ``min(ReLU(e P) >> shift,
      2**bits - 1)``; :func:`shift_for_unit_norm` gives the shift that never saturates a
      unit-norm input in 15 bits.
    * Scale-free (erasable's default, 6 bits: the ``feature_bits`` parameter):
      ``min(floor(ReLU(e P) * 2**(bits - 2) / N), 2**bits - 1)`` with ``N`` the row's
      :func:`integer_norms`. Each ``P_j . e`` has standard deviation ``||e||`` over the random
      signs, so four of them fill the bits (3 in 100,000 values saturate) whatever the input's
      norm. The floor is the exact integer one (see :func:`scale_free_levels`). Six bits are
      within 0.1 point of int16 features on validation splits of BANKING77, HWU64 and
      Fashion-MNIST at unit norm, and unlike a shift they do not lose accuracy at other norms;
      a Gram of such features sums exactly as int8 products in int32
      (:mod:`erasable.integer_gram`), four times faster than float64 here.
    """

    input_dim: int
    width: int
    seed: int
    shift: int
    bits: int = INT16_BITS
    scale_free: bool = False

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
        if not isinstance(self.scale_free, bool) or (self.scale_free and (self.shift or self.bits == INT16_BITS)):
            raise ValueError("scale_free must be a boolean, and a scale-free map has shift 0 and fewer than 15 bits.")

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
        if self.scale_free:
            return scale_free_levels(z, integer_norms(embeddings), self.bits)
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
        # What the maps of files older than "bits" do not state is left out: their configs stay the bytes they were.
        if self.bits != INT16_BITS:
            config["bits"] = self.bits
        if self.scale_free:
            config["scale_free"] = True
        return config


def _signs(input_dim: int, width: int, seed: int) -> NDArray[np.float32]:
    """The read-only ±1 matrix (input_dim, width) of SHAKE-256 of ``seed``."""
    n_bits = input_dim * width
    stream = hashlib.shake_256(f"erasable.RandomReLU:{seed}".encode()).digest((n_bits + 7) // 8)
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8), count=n_bits)
    signs = (bits.astype(np.float32) * 2.0 - 1.0).reshape(input_dim, width)
    signs.setflags(write=False)
    return signs


_cached_signs = functools.lru_cache(maxsize=4, typed=True)(_signs)


def feature_map_from_config(config: dict[str, Any]) -> Identity | RandomReLU:
    """Rebuild a feature map from :meth:`config` output (e.g. read from a model file)."""
    kind = config.get("kind")
    params = {k: v for k, v in config.items() if k != "kind"}
    if kind == "identity":
        return Identity(**params)
    if kind == "random_relu":
        return RandomReLU(**params)
    raise ValueError(f"Unknown feature map kind {kind!r}.")

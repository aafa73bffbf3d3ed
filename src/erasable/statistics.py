"""A model's statistics: the Moments of its quantized embeddings and of its features, as one value.

Everything a model learned is in these two sets of integer sums (the features' are
``None`` under the identity feature map, where they would repeat the embeddings'), so a
learn adds statistics, a forget subtracts them, a Dask fit adds those its workers reduced
and a federated server adds those its clients exported: one type for all of them, with
exact ``+`` and ``-``, exact equality, the certificate that names them, and their tensors
(the codec model files, the ledger's store and federated exports share).

>>> import numpy as np
>>> a = Statistics(Moments.from_samples(np.array([[1, 2]]), ["x"]), None)
>>> b = Statistics(Moments.from_samples(np.array([[3, 4]]), ["y"]), None)
>>> ((a + b) - b).equals(a), (a + b).count
(True, 2)
>>> Statistics.from_tensors((a + b).tensors(), ["x", "y"], dim=2, feature_dim=None).equals(a + b)
True
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from erasable.moments import Label, Moments, pack_upper, unpack_upper

__all__ = ["CERTIFICATE_DOMAIN", "Configuration", "Statistics"]

CERTIFICATE_DOMAIN = b"erasable-certificate-v1\0"


class Configuration(Protocol):
    """What a certificate binds statistics to: a configuration with one canonical JSON form."""

    def canonical_json(self) -> bytes: ...


@dataclass(frozen=True, eq=False)
class Statistics:
    """The Moments of the quantized embeddings and, unless the feature map is the identity, of the features.

    Immutable, like the Moments; adding and subtracting are exact and order independent.
    Compare with :meth:`equals` (``==`` is identity, as for Moments: arrays have no single truth value).
    """

    embedding: Moments
    features: Moments | None

    @classmethod
    def empty(cls, dim: int, feature_dim: int | None) -> Statistics:
        """The statistics of no samples: ``feature_dim`` is ``None`` under the identity feature map."""
        return cls(Moments.empty(dim), None if feature_dim is None else Moments.empty(feature_dim))

    @property
    def count(self) -> int:
        """How many samples these statistics sum."""
        return self.embedding.count

    @property
    def classes(self) -> tuple[Label, ...]:
        return self.embedding.classes

    def __add__(self, other: Statistics) -> Statistics:
        return self._combine(other, operator.add)

    def __sub__(self, other: Statistics) -> Statistics:
        return self._combine(other, operator.sub)

    def _combine(self, other: Statistics, op: Callable[[Moments, Moments], Moments]) -> Statistics:
        if (self.features is None) != (other.features is None):
            raise ValueError("Cannot combine statistics with and without feature Moments.")
        features = None if self.features is None or other.features is None else op(self.features, other.features)
        return Statistics(op(self.embedding, other.embedding), features)

    def equals(self, other: Statistics) -> bool:
        """Exact equality of both Moments."""
        if (self.features is None) != (other.features is None):
            return False
        same_features = self.features is None or other.features is None or self.features.equals(other.features)
        return self.embedding.equals(other.embedding) and same_features

    def certificate(self, config: Configuration) -> str:
        """SHA-256 of the canonical config and these statistics: equal iff the states are equal."""
        h = hashlib.sha256(CERTIFICATE_DOMAIN)
        h.update(config.canonical_json())
        h.update(b"\0embedding\0" + self.embedding.digest().encode())
        if self.features is not None:
            h.update(b"\0features\0" + self.features.digest().encode())
        return h.hexdigest()

    # -- tensors ---------------------------------------------------------------------------

    def tensors(self, *, with_features: bool = True) -> dict[str, NDArray[Any]]:
        """The tensors ``embedding.*``, and ``features.*`` unless there are none or ``with_features`` is false."""
        tensors = _moments_tensors("embedding", self.embedding)
        if with_features and self.features is not None:
            tensors.update(_moments_tensors("features", self.features))
        return tensors

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, NDArray[Any]], classes: list[Any], dim: int, feature_dim: int | None
    ) -> Statistics:
        """The statistics stored by :meth:`tensors`; raises ``ValueError``/``KeyError`` if malformed.

        ``feature_dim`` ``None`` reads no feature statistics (the identity map has none; a small
        model's file may leave them to its samples, see :meth:`erasable.model.Model.restore`).
        """
        embedding = _moments_from_tensors("embedding", tensors, classes, dim)
        features = None if feature_dim is None else _moments_from_tensors("features", tensors, classes, feature_dim)
        return cls(embedding, features)


def _moments_tensors(prefix: str, moments: Moments) -> dict[str, NDArray[Any]]:
    """The tensors of ``moments``: ``prefix.class_counts``, ``prefix.class_sums`` and ``prefix.gram_upper``.

    The Gram is stored as its upper triangle by rows (:func:`~erasable.moments.pack_upper`): half
    the bytes of the square matrix, which is what files and the ledger wrote before (``prefix.gram``).
    """
    return {
        f"{prefix}.class_counts": np.ascontiguousarray(moments.class_counts),
        f"{prefix}.class_sums": np.ascontiguousarray(moments.class_sums),
        f"{prefix}.gram_upper": pack_upper(moments.gram),
    }


def _moments_from_tensors(prefix: str, tensors: dict[str, NDArray[Any]], classes: list[Any], dim: int) -> Moments:
    """The Moments stored by :func:`_moments_tensors` (or, before, with the square ``prefix.gram``).

    Raises ``ValueError``/``KeyError`` if malformed.
    """
    packed = tensors.get(f"{prefix}.gram_upper")
    stored = packed if packed is not None else tensors[f"{prefix}.gram"]
    counts, sums = tensors[f"{prefix}.class_counts"], tensors[f"{prefix}.class_sums"]
    # What the writer writes: another type would be cast (a float truncated), a narrower one would multiply
    # what unpacking allocates.
    for name, array in (("Gram", stored), ("class counts", counts), ("class sums", sums)):
        if array.dtype != np.int64:
            raise ValueError(f"{prefix} {name} is {array.dtype}, not int64")
    if packed is not None:
        gram = unpack_upper(packed, dim)
    else:
        gram = stored
        if gram.ndim != 2 or not _upper_triangular(gram):
            raise ValueError(f"{prefix} Gram is not upper triangular")
    return Moments(
        dim=dim,
        classes=tuple(classes),
        class_counts=counts,
        class_sums=sums,
        gram=gram,
    )


def _upper_triangular(matrix: NDArray[Any], rows_per_block: int = 256) -> bool:
    """Whether every entry below the diagonal is zero, checked by blocks of rows (no full-size temporary)."""
    for start in range(0, matrix.shape[0], rows_per_block):
        block = matrix[start : start + rows_per_block, : start + rows_per_block]
        if np.any(np.tril(block, start - 1)):
            return False
    return True

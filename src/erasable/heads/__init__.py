"""Classifier heads: parameters derived from :class:`~erasable.moments.Moments` alone.

Every head is a pure function of the statistics (plus its own hyper-parameters), so it can
be recomputed at any time and is identical for identical statistics.
"""

from erasable.heads.base import Head, softmax
from erasable.heads.gaussian import GaussianHead
from erasable.heads.kernel import KernelHead
from erasable.heads.prototype import PrototypeHead
from erasable.heads.ridge import RidgeHead

__all__ = ["GaussianHead", "Head", "KernelHead", "PrototypeHead", "RidgeHead", "softmax"]

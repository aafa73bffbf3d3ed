"""Changes planned against a model but not yet applied, and the receipt of a forget.

:meth:`~erasable.model.Model.plan_learn`, :meth:`~erasable.model.Model.plan_forget` and
:meth:`~erasable.model.Model.plan_merge` make a :class:`Change` without touching the model;
:meth:`~erasable.model.Model.apply` applies it. In between, a durable ledger can persist it
in one transaction, so a failure to persist leaves the model as it was. Both carry the
statistics before and after, from which their certificates are computed when first read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from erasable.config import ModelConfig
from erasable.statistics import Statistics
from erasable.steering import Steering

__all__ = ["Change", "ForgetReceipt"]


@dataclass(frozen=True)
class ForgetReceipt:
    """What a forget request did: the ids removed and the certificates around it.

    ``certificate_after`` is computed when first read: hashing the statistics of a wide
    model takes tens of milliseconds, which a request need not wait for. ``statistics_after``
    are those after the request (immutable), never those before it; the receipt keeps no
    forgotten sample.
    """

    ids: tuple[str, ...]
    certificate_before: str
    config: ModelConfig = field(repr=False, compare=False)
    statistics_after: Statistics = field(repr=False, compare=False)

    @classmethod
    def of(cls, change: Change) -> ForgetReceipt:
        """The receipt of a planned forget."""
        return cls(change.ids, change.certificate_before, change.config, change.statistics_after)

    @cached_property
    def certificate_after(self) -> str:
        return self.statistics_after.certificate(self.config)


@dataclass(frozen=True, eq=False)
class Change:
    """A learn (``sign=+1``) or forget (``-1``) computed against a model but not yet applied.

    :meth:`Model.plan_learn` and :meth:`Model.plan_forget` make one without touching the
    model, and :meth:`Model.apply` applies it; a merge (:meth:`Model.plan_merge`) is the learn
    of the other model's samples, carrying the statistics that model holds. A durable ledger persists a change (its
    samples, its event, the statistics after it) in one transaction between the two, so a
    failure to persist leaves the model exactly as it was. A change applies only to the
    state it was planned against.
    """

    sign: int
    ids: tuple[str, ...]
    subjects: tuple[str | None, ...]
    labels: NDArray[np.generic] = field(repr=False)
    quantized: NDArray[np.int16] = field(repr=False)
    #: Registry rows of the samples a forget removes (``None`` for a learn).
    rows: NDArray[np.intp] | None = field(repr=False)
    next_auto_id: int
    config: ModelConfig = field(repr=False)
    statistics_before: Statistics = field(repr=False)
    statistics_after: Statistics = field(repr=False)
    #: The memory's steering before and after: a forget drops the weights naming what it leaves without samples.
    steering_before: Steering = field(repr=False)
    steering_after: Steering = field(repr=False)
    #: The batch's feature rows when they were computed anyway (small batches): the ridge update reuses them.
    feature_rows: NDArray[np.floating] | None = field(default=None, repr=False)

    @cached_property
    def certificate_before(self) -> str:
        return self.statistics_before.certificate(self.config)

    @cached_property
    def certificate_after(self) -> str:
        return self.statistics_after.certificate(self.config)

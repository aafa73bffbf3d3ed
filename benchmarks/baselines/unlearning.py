"""Unlearning baselines on a gradient-trained head (torch, CPU), implemented from the papers.

Every method starts from a head trained on all the training samples (positions into ``x``,
``y``) by :func:`benchmarks.baselines.training.train`, and returns an :class:`Unlearned`: the
model after the forget request and the wall time the request took.

* :func:`retrain` -- the gold standard: a new head trained from scratch on the retained samples
  (same architecture, hyper-parameters and initialisation seed as the original);
* :func:`finetune` -- continue training the original on the retained samples only, a few epochs
  ("catastrophic forgetting" of the forget set; Golatkar et al. 2020, Kurmanji et al. 2023);
* :func:`neggrad_plus` -- NegGrad+ (Kurmanji et al. 2023, "Towards unbounded machine unlearning"):
  each step descends ``beta * CE(retain batch)`` and ascends ``(1 - beta) * CE(forget batch)``;
* :func:`ssd` -- Selective Synaptic Dampening (Foster et al. 2024): no training; the parameters
  whose importance (diagonal Fisher) on the forget set exceeds ``alpha`` times their importance on
  the training set are multiplied by ``min(lambda * I_D / I_forget, 1)``;
* :class:`Sisa` -- SISA (Bourtoule et al. 2021) without slicing: the training set is split into
  disjoint shards, one head per shard, predictions are the mean of the shards' probabilities;
  forgetting retrains from scratch only the shards that held a forgotten sample.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as F

from .training import TrainConfig, diagonal_fisher, make_head, predict_proba, train

__all__ = [
    "HeadSpec",
    "Sisa",
    "Unlearned",
    "finetune",
    "fit_head",
    "neggrad_plus",
    "probabilities",
    "retrain",
    "ssd",
    "timed",
    "train_importance",
]

#: Per-sample gradients are taken this many at a time: vmap holds (batch x parameters) floats.
FISHER_BATCH = 64


@dataclass(frozen=True)
class HeadSpec:
    """How a head is built and trained: hidden width (0 = linear), training hyper-parameters, init seed."""

    n_classes: int
    hidden: int
    config: TrainConfig
    init_seed: int = 0


@dataclass(frozen=True)
class Unlearned:
    """A model after a forget request, and the seconds the request took."""

    model: nn.Module | Sisa
    seconds: float

    def predict_proba(self, x: NDArray[Any]) -> NDArray[np.float64]:
        """Probabilities over all ``n_classes`` columns."""
        return probabilities(self.model, x)


def probabilities(model: nn.Module | Sisa, x: NDArray[Any]) -> NDArray[np.float64]:
    """Softmax probabilities of a head, or the mean of a SISA ensemble's."""
    if isinstance(model, Sisa):
        return model.predict_proba(x)
    return predict_proba(model, x).astype(np.float64)


def timed(fn: Callable[[], nn.Module | Sisa]) -> Unlearned:
    """Run ``fn`` and wrap its model with the wall time it took."""
    start = time.perf_counter()
    model = fn()
    return Unlearned(model, time.perf_counter() - start)


def fit_head(x: NDArray[Any], y: NDArray[Any], rows: NDArray[np.int64], spec: HeadSpec) -> nn.Module:
    """A head trained from scratch on the samples at ``rows``."""
    head = make_head(x.shape[1], spec.n_classes, hidden=spec.hidden, seed=spec.init_seed)
    return train(head, x[rows], y[rows], spec.config)


def retrain(x: NDArray[Any], y: NDArray[Any], retain: NDArray[np.int64], spec: HeadSpec) -> Unlearned:
    """The gold standard: train from scratch on the retained samples."""
    return timed(lambda: fit_head(x, y, retain, spec))


def finetune(
    original: nn.Module, x: NDArray[Any], y: NDArray[Any], retain: NDArray[np.int64], config: TrainConfig
) -> Unlearned:
    """Fine-tune (a copy of) the original head on the retained samples for ``config.epochs`` epochs."""
    return timed(lambda: train(copy.deepcopy(original), x[retain], y[retain], config))


def neggrad_plus(
    original: nn.Module,
    x: NDArray[Any],
    y: NDArray[Any],
    retain: NDArray[np.int64],
    forget: NDArray[np.int64],
    config: TrainConfig,
    beta: float,
) -> Unlearned:
    """NegGrad+: every retain batch's ``beta``-weighted loss is paired with a random forget batch's ascent.

    The forget batches are drawn with replacement by a generator seeded with ``config.seed``,
    ``min(batch_size, |forget|)`` samples at a time, as Kurmanji et al. cycle a forget loader.
    """
    xf = torch.as_tensor(np.asarray(x[forget], dtype=np.float32))
    yf = torch.as_tensor(np.asarray(y[forget], dtype=np.int64))
    size = min(config.batch_size, len(forget))

    def run() -> nn.Module:
        generator = torch.Generator().manual_seed(config.seed)

        def ascent(model: nn.Module, _xb: Tensor, _logits: Tensor) -> Tensor:
            batch = torch.randint(len(xf), (size,), generator=generator)
            return -(1.0 - beta) * F.cross_entropy(model(xf[batch]), yf[batch])

        weights = np.full(len(retain), beta, dtype=np.float32)
        return train(copy.deepcopy(original), x[retain], y[retain], config, extra_loss=ascent, sample_weight=weights)

    return timed(run)


def ssd(
    original: nn.Module,
    x: NDArray[Any],
    y: NDArray[Any],
    forget: NDArray[np.int64],
    train_importance: dict[str, Tensor],
    alpha: float,
    lam: float,
) -> Unlearned:
    """Selective Synaptic Dampening of (a copy of) the original head.

    ``train_importance`` is the diagonal Fisher on the training set, computed once when the
    model is trained (as the paper suggests) and not counted in the request's time; the
    forget set's importance is.
    """

    def run() -> nn.Module:
        model = copy.deepcopy(original)
        forget_importance = diagonal_fisher(model, x[forget], y[forget], batch_size=FISHER_BATCH)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                on_train, on_forget = train_importance[name], forget_importance[name]
                selected = on_forget > alpha * on_train
                factor = torch.clamp(lam * on_train / on_forget.clamp_min(1e-30), max=1.0)
                parameter.mul_(torch.where(selected, factor, torch.ones_like(factor)))
        return model

    return timed(run)


def train_importance(model: nn.Module, x: NDArray[Any], y: NDArray[Any], rows: NDArray[np.int64]) -> dict[str, Tensor]:
    """SSD's importance on the training set: the empirical diagonal Fisher at the true labels."""
    return diagonal_fisher(model, x[rows], y[rows], batch_size=FISHER_BATCH)


class Sisa:
    """SISA without slicing: one head per disjoint shard, probabilities averaged.

    The shards are a seeded random partition of the training positions; each head is trained
    with the same :class:`HeadSpec` (its init seed offset by the shard number).
    """

    def __init__(self, shards: list[NDArray[np.int64]], heads: list[nn.Module]) -> None:
        self.shards = shards
        self.heads = heads

    @classmethod
    def fit(
        cls, x: NDArray[Any], y: NDArray[Any], rows: NDArray[np.int64], spec: HeadSpec, n_shards: int, seed: int
    ) -> Sisa:
        """Split ``rows`` into ``n_shards`` random shards and train a head on each."""
        shards = [np.sort(s) for s in np.array_split(np.random.default_rng(seed).permutation(rows), n_shards)]
        return cls(shards, [fit_head(x, y, shard, cls._shard_spec(spec, k)) for k, shard in enumerate(shards)])

    @staticmethod
    def _shard_spec(spec: HeadSpec, k: int) -> HeadSpec:
        return HeadSpec(spec.n_classes, spec.hidden, spec.config, spec.init_seed + k)

    def predict_proba(self, x: NDArray[Any]) -> NDArray[np.float64]:
        """The mean of the shard heads' probabilities."""
        return np.mean([predict_proba(head, x) for head in self.heads], axis=0, dtype=np.float64)

    def forget(self, x: NDArray[Any], y: NDArray[Any], forget: NDArray[np.int64], spec: HeadSpec) -> Unlearned:
        """A new ensemble with every shard that held a forgotten sample retrained from scratch without it."""

        def run() -> Sisa:
            shards, heads = list(self.shards), list(self.heads)
            for k, shard in enumerate(self.shards):
                if np.isin(forget, shard).any():
                    shards[k] = np.setdiff1d(shard, forget)
                    heads[k] = fit_head(x, y, shards[k], self._shard_spec(spec, k))
            return Sisa(shards, heads)

        return timed(run)

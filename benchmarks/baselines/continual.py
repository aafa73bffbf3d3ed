"""Continual-learning baselines on frozen features, implemented from the papers.

Each learner sees the phases of a :class:`~erasable.audit.protocols.PhaseSplit` one at a time
(:meth:`Learner.learn` with the phase's samples and all classes seen so far) and predicts among
the classes seen so far. Labels are integers ``0..n_classes-1``.

* :class:`Joint` -- retrains from scratch on everything seen so far: the upper bound.
* :class:`FineTune` -- keeps training the same head on each new phase only (naive baseline).
* :class:`EWC` -- elastic weight consolidation (Kirkpatrick et al. 2017): after each phase, the
  diagonal Fisher (labels sampled from the model) and the parameters are kept; later phases pay
  ``lambda/2 * sum_t sum_k F_t,k (theta_k - theta_t,k)^2``, one penalty per past phase.
* :class:`LwF` -- learning without forgetting (Li & Hoiem 2016): the new phase's cross-entropy plus
  ``lambda * T^2 * KL`` between the previous model's and the current model's temperature-``T``
  softmax over the previously seen classes, on the new phase's inputs.
* :class:`Replay` -- experience replay (Chaudhry et al. 2019, "On tiny episodic memories") with a
  fixed buffer filled by **reservoir sampling** over the stream; each phase trains on the phase's
  samples together with the buffer.
* :class:`NCM` -- nearest class mean of the L2-normalised features, cosine similarity (Mensink et
  al. 2013; the classifier of iCaRL): no gradients, exact sums, it cannot forget.

:func:`run_phases` runs any learner through a split and returns the accuracy matrix that
:mod:`erasable.audit.continual` turns into metrics.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as F

from erasable.audit.protocols import PhaseSplit, samples_of

from .training import ExtraLoss, TrainConfig, class_mask, diagonal_fisher, make_head, predict_proba, train

__all__ = ["EWC", "NCM", "FineTune", "HeadSpec", "Joint", "Learner", "LwF", "Replay", "run_phases"]


class Learner(Protocol):
    """What a continual learner offers: learn a phase, predict among the classes seen so far."""

    def learn(self, x: NDArray, y: NDArray, seen: NDArray) -> None: ...

    def predict(self, x: NDArray) -> NDArray: ...


@dataclass(frozen=True)
class HeadSpec:
    """The head every gradient baseline trains: input and output sizes, hidden width (0 = linear), training."""

    in_dim: int
    n_classes: int
    hidden: int = 0
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)

    def new_head(self) -> nn.Module:
        return make_head(self.in_dim, self.n_classes, self.hidden, self.seed)


class _GradientLearner:
    """A head trained phase after phase; subclasses choose the data and the extra loss of a phase."""

    def __init__(self, spec: HeadSpec) -> None:
        self.spec = spec
        self.head = spec.new_head()
        self.mask = class_mask([], spec.n_classes)
        self.phase = 0

    def learn(self, x: NDArray, y: NDArray, seen: NDArray) -> None:
        self.mask = class_mask(seen, self.spec.n_classes)
        x_phase, y_phase = self._data(x, y)
        config = replace(self.spec.train, seed=self.spec.train.seed + self.phase)  # new batch order per phase
        train(self.head, x_phase, y_phase, config, extra_loss=self._extra_loss(), mask=self.mask)
        self._after_phase(x, y)
        self.phase += 1

    def _data(self, x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
        """The samples the head trains on in this phase: the phase's own, by default."""
        return x, y

    def _extra_loss(self) -> ExtraLoss | None:
        return None

    def _after_phase(self, x: NDArray, y: NDArray) -> None:
        """Remember what the next phases need (Fisher, old model, buffer); nothing by default."""

    def predict(self, x: NDArray) -> NDArray:
        return predict_proba(self.head, x, self.mask).argmax(axis=1)


class FineTune(_GradientLearner):
    """Naive fine-tuning: the same head, trained on each phase's samples only."""


class Joint(_GradientLearner):
    """Joint training, the upper bound: a fresh head trained on all samples seen so far at every phase."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__(spec)
        self.xs: list[NDArray] = []
        self.ys: list[NDArray] = []

    def _data(self, x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
        """Everything seen so far, for a freshly initialised head."""
        self.xs.append(x)
        self.ys.append(y)
        self.head = self.spec.new_head()
        return np.concatenate(self.xs), np.concatenate(self.ys)


class EWC(_GradientLearner):
    """Elastic weight consolidation: a quadratic penalty per past phase, weighted by its diagonal Fisher."""

    def __init__(self, spec: HeadSpec, strength: float) -> None:
        super().__init__(spec)
        self.strength = strength
        self.anchors: list[tuple[dict[str, Tensor], dict[str, Tensor]]] = []  # (Fisher, parameters) per phase

    def _extra_loss(self) -> ExtraLoss | None:
        if not self.anchors:
            return None

        def penalty(model: nn.Module, x: Tensor, logits: Tensor) -> Tensor:
            params = dict(model.named_parameters())
            total = sum(
                (
                    (fisher[name] * (params[name] - old[name]).pow(2)).sum()
                    for fisher, old in self.anchors
                    for name in fisher
                ),
                torch.zeros(()),
            )
            return 0.5 * self.strength * total

        return penalty

    def _after_phase(self, x: NDArray, y: NDArray) -> None:
        fisher = diagonal_fisher(self.head, x, mask=self.mask, seed=self.spec.seed + self.phase)
        params = {name: p.detach().clone() for name, p in self.head.named_parameters()}
        self.anchors.append((fisher, params))


class LwF(_GradientLearner):
    """Learning without forgetting: distil the previous model's outputs on the old classes while learning."""

    def __init__(self, spec: HeadSpec, strength: float, temperature: float = 2.0) -> None:
        super().__init__(spec)
        self.strength = strength
        self.temperature = temperature
        self.old: tuple[nn.Module, Tensor] | None = None  # previous head and the classes it knew

    def _extra_loss(self) -> ExtraLoss | None:
        if self.old is None:
            return None
        old_head, old_mask = self.old
        t = self.temperature

        def distillation(model: nn.Module, x: Tensor, logits: Tensor) -> Tensor:
            with torch.no_grad():
                target = F.softmax(old_head(x)[:, old_mask] / t, dim=1)
            log_probs = F.log_softmax(logits[:, old_mask] / t, dim=1)
            return self.strength * t * t * F.kl_div(log_probs, target, reduction="batchmean")

        return distillation

    def _after_phase(self, x: NDArray, y: NDArray) -> None:
        self.old = (copy.deepcopy(self.head).eval(), self.mask.clone())


class Replay(_GradientLearner):
    """Experience replay with a fixed buffer of ``size`` samples, kept by reservoir sampling over the stream."""

    def __init__(self, spec: HeadSpec, size: int) -> None:
        super().__init__(spec)
        self.size = size
        self.rng = np.random.default_rng(spec.seed)
        self.buffer_x = np.empty((size, spec.in_dim), dtype=np.float32)
        self.buffer_y = np.empty(size, dtype=np.int64)
        self.streamed = 0

    def _data(self, x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
        kept = min(self.streamed, self.size)
        return np.concatenate([x, self.buffer_x[:kept]]), np.concatenate([y, self.buffer_y[:kept]])

    def _after_phase(self, x: NDArray, y: NDArray) -> None:
        """Reservoir sampling (Vitter's algorithm R): every sample streamed so far is kept with equal probability."""
        for i in self.rng.permutation(len(x)):  # the phase's samples arrive in a random order
            slot = self.streamed if self.streamed < self.size else self.rng.integers(0, self.streamed + 1)
            if slot < self.size:
                self.buffer_x[slot], self.buffer_y[slot] = x[i], y[i]
            self.streamed += 1


class NCM:
    """Nearest class mean, cosine: running per-class sums of L2-normalised features."""

    def __init__(self, in_dim: int, n_classes: int) -> None:
        self.sums = np.zeros((n_classes, in_dim))
        self.seen = np.zeros(n_classes, dtype=bool)

    @staticmethod
    def _normalised(x: NDArray) -> NDArray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def learn(self, x: NDArray, y: NDArray, seen: NDArray) -> None:
        np.add.at(self.sums, y, self._normalised(np.asarray(x, dtype=np.float64)))
        self.seen[seen] = True

    def predict(self, x: NDArray) -> NDArray:
        scores = self._normalised(np.asarray(x, dtype=np.float64)) @ self._normalised(self.sums).T
        return np.where(self.seen, scores, -np.inf).argmax(axis=1)


def run_phases(
    learner: Learner, split: PhaseSplit, x: NDArray, y: NDArray, x_test: NDArray, y_test: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Train ``learner`` phase by phase; return ``acc[i, j]`` and the test sample count of each phase's classes.

    ``acc[i, j]`` is the accuracy on the test samples of the classes introduced in phase ``j``,
    after phase ``i`` (NaN above the diagonal).
    """
    groups = [samples_of(y_test, classes) for classes in split.new_classes]
    acc = np.full((split.n_phases, split.n_phases), np.nan)
    for i, indices in enumerate(split.indices):
        learner.learn(x[indices], y[indices], split.seen_classes(i))
        predicted = learner.predict(x_test[np.concatenate(groups[: i + 1])])
        bounds = np.cumsum([0] + [len(g) for g in groups[: i + 1]])
        for j in range(i + 1):
            acc[i, j] = np.mean(predicted[bounds[j] : bounds[j + 1]] == y_test[groups[j]])
    return acc, np.array([len(g) for g in groups], dtype=np.int64)

"""The shared torch core of the gradient baselines: a head on frozen features, a seeded training loop, Fisher.

Every gradient baseline of the benchmarks (continual learning: fine-tuning, EWC, LwF, replay;
unlearning: retraining, fine-tuning, NegGrad+, SSD, SISA) trains the same small head on the same
frozen features as erasable, with the same loop, so the comparison is about the learning rule
and nothing else:

* :func:`make_head` -- a linear layer, or one hidden ReLU layer, initialised from a seed;
* :func:`train` -- minibatch training, deterministic for a seed, with an optional extra loss term
  (EWC's penalty, LwF's distillation) and per-sample weights whose negative values make those
  samples' gradients ascend (NegGrad-style unlearning);
* :func:`predict_proba` / :func:`accuracy` -- evaluation, optionally restricted to some classes;
* :func:`diagonal_fisher` -- the diagonal Fisher information of the parameters (EWC, SSD).

Labels are integers ``0..n_classes-1``; features are float arrays. Everything runs on the CPU.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((200, 5)).astype(np.float32)
>>> y = (x[:, 0] > 0).astype(np.int64)
>>> head = train(make_head(5, 2, seed=0), x, y, TrainConfig(epochs=20, lr=0.05, seed=0))
>>> accuracy(head, x, y) > 0.9
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

torch.set_num_threads(1)  # the benchmark machine is small and shared; heads on features are cheap anyway

#: ``extra_loss(model, x_batch, logits_batch) -> scalar``, added to the batch's cross-entropy.
ExtraLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]

__all__ = [
    "ExtraLoss",
    "TrainConfig",
    "accuracy",
    "class_mask",
    "diagonal_fisher",
    "make_head",
    "predict_proba",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train`.

    ``optimizer`` is Adam or SGD with momentum 0.9; ``weight_decay`` is L2 on all parameters;
    ``seed`` fixes the order of the minibatches (the head's initial weights have their own seed).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["adam", "sgd"] = "adam"
    seed: int = 0


def make_head(in_dim: int, n_classes: int, hidden: int = 0, seed: int = 0) -> nn.Module:
    """A linear head (``hidden=0``) or a one-hidden-layer ReLU MLP, initialised reproducibly from ``seed``.

    The global torch random state is left untouched, so heads built in any order are the same.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hidden <= 0:
            return nn.Linear(in_dim, n_classes)
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def class_mask(classes: ArrayLike, n_classes: int) -> Tensor:
    """A boolean mask of the output columns in ``classes``: the classes a head may predict so far."""
    mask = torch.zeros(n_classes, dtype=torch.bool)
    mask[torch.as_tensor(np.asarray(classes, dtype=np.int64))] = True
    return mask


def _masked(logits: Tensor, mask: Tensor | None) -> Tensor:
    """Logits with the columns outside ``mask`` at -inf (a head grown to the classes seen so far)."""
    return logits if mask is None else logits.masked_fill(~mask, float("-inf"))


def _tensors(x: ArrayLike, y: ArrayLike | None = None) -> tuple[Tensor, Tensor | None]:
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = None if y is None else torch.as_tensor(np.asarray(y, dtype=np.int64))
    return xt, yt


def train(
    model: nn.Module,
    x: ArrayLike,
    y: ArrayLike,
    config: TrainConfig,
    extra_loss: ExtraLoss | None = None,
    sample_weight: ArrayLike | None = None,
    mask: Tensor | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``(x, y)`` by minibatch gradient descent and return it.

    The loss of a batch is the mean of ``weight_i * CE_i`` (weights default to 1; a negative
    weight ascends that sample's loss, as NegGrad does on the forget set), plus
    ``extra_loss(model, x_batch, logits)`` when given. ``mask`` restricts the softmax to the
    output columns it marks (the classes seen so far in class-incremental learning).
    The batches are shuffled by a generator seeded with ``config.seed``: same inputs, same result.
    """
    xt, yt = _tensors(x, y)
    assert yt is not None
    weights = torch.ones(len(xt)) if sample_weight is None else torch.as_tensor(np.asarray(sample_weight, np.float32))
    params = list(model.parameters())
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.epochs):
        for batch in torch.randperm(len(xt), generator=generator).split(config.batch_size):
            xb = xt[batch]
            logits = _masked(model(xb), mask)
            loss = (weights[batch] * F.cross_entropy(logits, yt[batch], reduction="none")).mean()
            if extra_loss is not None:
                loss = loss + extra_loss(model, xb, logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    return model


@torch.no_grad()
def predict_proba(model: nn.Module, x: ArrayLike, mask: Tensor | None = None, batch_size: int = 4096) -> NDArray:
    """Softmax probabilities (n, n_classes) of ``model`` on ``x``; columns outside ``mask`` get 0."""
    model.eval()
    xt, _ = _tensors(x)
    parts = [torch.softmax(_masked(model(xb), mask), dim=1) for xb in xt.split(batch_size)]
    return torch.cat(parts).numpy()


def accuracy(model: nn.Module, x: ArrayLike, y: ArrayLike, mask: Tensor | None = None) -> float:
    """Fraction of ``x`` whose most probable class (among ``mask``) is ``y``."""
    return float(np.mean(predict_proba(model, x, mask).argmax(axis=1) == np.asarray(y)))


def diagonal_fisher(
    model: nn.Module,
    x: ArrayLike,
    y: ArrayLike | None = None,
    mask: Tensor | None = None,
    seed: int = 0,
    batch_size: int = 512,
) -> dict[str, Tensor]:
    """Diagonal Fisher information ``E[(d log p(y|x) / d theta)^2]`` per parameter, averaged over ``x``.

    With ``y`` given, the *empirical* Fisher at the true labels (SSD's parameter importance);
    with ``y=None``, labels are drawn from the model's own predictive distribution (a seeded
    one-sample Monte Carlo estimate of the true Fisher, as in EWC, Kirkpatrick et al. 2017).
    Per-sample gradients come from ``torch.func.vmap``, so the squares are of per-sample
    gradients, not of batch means.
    """
    model.eval()
    xt, yt = _tensors(x, y)
    if yt is None:
        generator = torch.Generator().manual_seed(seed)
        probs = torch.as_tensor(predict_proba(model, xt, mask))
        yt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    params = {name: p.detach() for name, p in model.named_parameters()}

    def nll(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = _masked(functional_call(model, p, (xi.unsqueeze(0),)), mask)
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_sample = vmap(grad(nll), in_dims=(None, 0, 0))
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    for xb, yb in zip(xt.split(batch_size), yt.split(batch_size), strict=True):
        for name, g in per_sample(params, xb, yb).items():
            fisher[name] += g.pow(2).sum(dim=0)
    return {name: f / len(xt) for name, f in fisher.items()}

"""Seeded, deterministic data splits for the continual-learning and federated protocols.

* :func:`class_incremental` -- the classes in a seeded random order, cut into phases: ``B0``
  (``n_phases`` equal phases) or ``B50`` (half of the classes first, then ``n_phases`` phases);
  every sample of a class arrives in its class's phase.
* :func:`generalized_incremental` -- generalized class-incremental learning (G-ACIL, Si-Blurry):
  each class first appears in some phase (phases introduce uneven numbers of classes), and its
  samples are spread over that phase and the later ones in Dirichlet proportions, so every phase
  mixes new and old classes with imbalanced counts.
* :func:`dirichlet_clients` -- a non-IID federated partition (Hsu et al. 2019): each class's
  samples are shared among the clients in Dirichlet(``alpha``) proportions.

A :class:`PhaseSplit` records, for each phase, the sample indices it trains on and the classes it
introduces; :func:`samples_of` selects the test samples of those classes, which is what the rows of
an accuracy matrix (:mod:`erasable.audit.continual`) are measured on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PhaseSplit",
    "class_incremental",
    "dirichlet_clients",
    "generalized_incremental",
    "samples_of",
]


@dataclass(frozen=True)
class PhaseSplit:
    """A sequence of training phases.

    ``indices[i]``: the training samples (indices into ``y``) of phase ``i``, sorted;
    ``new_classes[i]``: the classes that appear for the first time in phase ``i``, sorted.
    """

    indices: list[NDArray[np.int64]]
    new_classes: list[NDArray[np.int64]]

    @property
    def n_phases(self) -> int:
        return len(self.indices)

    def seen_classes(self, phase: int) -> NDArray[np.int64]:
        """All classes introduced up to and including ``phase``, sorted."""
        return np.sort(np.concatenate(self.new_classes[: phase + 1]))


def samples_of(y: ArrayLike, classes: ArrayLike) -> NDArray[np.int64]:
    """Indices of the samples of ``y`` whose label is in ``classes``, in increasing order.

    >>> samples_of([3, 1, 2, 1, 0], [1, 2])
    array([1, 2, 3])
    """
    return np.flatnonzero(np.isin(np.asarray(y), np.asarray(classes))).astype(np.int64)


def _labels(y: ArrayLike) -> NDArray[np.int64]:
    labels = np.asarray(y)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("y must be a 1-d array of integer class labels.")
    return labels.astype(np.int64)


def class_incremental(y: ArrayLike, n_phases: int, base_half: bool = False, seed: int = 0) -> PhaseSplit:
    """Class-incremental phases: B0 (``n_phases`` equal phases) or B50 (half first, then ``n_phases``).

    The class order is a seeded permutation; when the classes do not divide evenly the first
    phases get one more class each.

    >>> y = np.repeat(np.arange(6), 2)
    >>> split = class_incremental(y, 3, seed=0)
    >>> [c.tolist() for c in split.new_classes]
    [[2, 3], [4, 5], [0, 1]]
    >>> split.indices[0].tolist()
    [4, 5, 6, 7]
    >>> [len(c) for c in class_incremental(y, 3, base_half=True).new_classes]
    [3, 1, 1, 1]
    """
    labels = _labels(y)
    order = np.random.default_rng(seed).permutation(np.unique(labels))
    base = len(order) // 2 if base_half else 0
    if n_phases < 1 or len(order) - base < n_phases:
        raise ValueError(f"cannot cut {len(order) - base} classes into {n_phases} phases.")
    groups = ([order[:base]] if base else []) + np.array_split(order[base:], n_phases)
    new_classes = [np.sort(group) for group in groups]
    return PhaseSplit([samples_of(labels, group) for group in new_classes], new_classes)


def generalized_incremental(y: ArrayLike, n_phases: int, concentration: float = 1.0, seed: int = 0) -> PhaseSplit:
    """Generalized class-incremental phases: new and old classes mixed in every phase, imbalanced.

    Each class gets a first phase: the seeded class order is cut at random points, so phases
    introduce uneven numbers of classes (at least one each). The samples of a class whose first
    phase is ``p`` are then dealt to the phases ``p..n_phases-1`` in proportions drawn from a
    symmetric Dirichlet(``concentration``), at least one sample in phase ``p`` (so the class
    really appears there). Small ``concentration`` gives strong imbalance.

    >>> y = np.repeat(np.arange(8), 10)
    >>> split = generalized_incremental(y, 3, seed=1)
    >>> sorted(np.concatenate(split.indices).tolist()) == list(range(80))
    True
    >>> all(np.isin(c, y[i]).all() for c, i in zip(split.new_classes, split.indices))
    True
    """
    labels = _labels(y)
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.unique(labels))
    if n_phases < 1 or len(order) < n_phases:
        raise ValueError(f"cannot introduce {len(order)} classes over {n_phases} phases.")
    cuts = np.sort(rng.choice(np.arange(1, len(order)), size=n_phases - 1, replace=False))
    new_classes = [np.sort(group) for group in np.split(order, cuts)]
    phase_of = np.empty(len(labels), dtype=np.int64)
    for first, group in enumerate(new_classes):
        for cls in group:
            members = rng.permutation(np.flatnonzero(labels == cls))
            later = n_phases - first
            counts = rng.multinomial(len(members) - 1, rng.dirichlet(np.full(later, concentration)))
            counts[0] += 1
            phase_of[members] = np.repeat(np.arange(first, n_phases), counts)
    indices = [np.flatnonzero(phase_of == phase).astype(np.int64) for phase in range(n_phases)]
    return PhaseSplit(indices, new_classes)


def dirichlet_clients(y: ArrayLike, n_clients: int, alpha: float = 0.5, seed: int = 0) -> list[NDArray[np.int64]]:
    """A non-IID partition of the samples among ``n_clients``: per class, Dirichlet(``alpha``) shares.

    Returns one sorted index array per client; together they partition ``range(len(y))``.
    Small ``alpha`` concentrates each class on few clients (alpha -> infinity is IID).

    >>> parts = dirichlet_clients(np.repeat(np.arange(4), 25), 3, alpha=0.3, seed=0)
    >>> sorted(np.concatenate(parts).tolist()) == list(range(100))
    True
    """
    labels = _labels(y)
    if n_clients < 1:
        raise ValueError("n_clients must be at least 1.")
    rng = np.random.default_rng(seed)
    client_of = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        counts = rng.multinomial(len(members), rng.dirichlet(np.full(n_clients, alpha)))
        client_of[members] = np.repeat(np.arange(n_clients), counts)
    return [np.flatnonzero(client_of == client).astype(np.int64) for client in range(n_clients)]

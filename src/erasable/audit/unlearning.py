"""Unlearning metrics and forget requests, as plain functions of arrays.

What the unlearning literature measures (Kurmanji et al. 2023, Foster et al. 2024, the NeurIPS
2023 unlearning challenge), computed the same way for erasable and for the gradient baselines:

* accuracy on the forget set, the retained set and the test set;
* a membership-inference attack (MIA): how well the per-sample loss tells the forgotten samples
  (members, if unlearning failed) from held-out samples that were never learned. Its ROC AUC is
  0.5 when they are indistinguishable and 1.0 when every forgotten sample has a lower loss than
  every held-out one. The reference is the AUC of the model retrained without the forget set:
  an exact unlearner has the same;
* the divergence of predictions from the retrained model: label disagreement rate and mean
  total-variation distance between the probability rows;

and the forget requests the benchmarks and ``erasable audit`` draw, all deterministic given a
seed: a random fraction of the samples, a subject (or a synthetic group of samples, for data
that have none), a whole class, and a stream of single-sample requests interleaved with learning.

Probabilities of different models are compared column by column, so each is first laid out on
one common class order with :func:`aligned_proba` (a class a model does not know gets zero).

>>> import numpy as np
>>> proba = np.array([[0.9, 0.1], [0.2, 0.8]])
>>> losses = true_class_loss(proba, ["a", "b"], ["a", "a"])
>>> [round(float(v), 3) for v in losses]
[0.105, 1.609]
>>> mia_auc(member_losses=[0.1, 0.2], nonmember_losses=[1.0, 2.0])
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EPSILON",
    "Divergence",
    "LabelledSet",
    "StreamStep",
    "UnlearningScores",
    "accuracy",
    "aligned_proba",
    "class_request",
    "matched_nonmembers",
    "mia_auc",
    "prediction_divergence",
    "random_request",
    "score_unlearning",
    "streaming_schedule",
    "subject_request",
    "synthetic_subjects",
    "true_class_loss",
]

#: Probabilities are clipped to this before the logarithm: a class the model does not know has loss -log(EPSILON).
EPSILON = 1e-12


# -- metrics ---------------------------------------------------------------------------------


def aligned_proba(proba: ArrayLike, classes: Sequence[Any], universe: Sequence[Any]) -> NDArray[np.float64]:
    """Probabilities with columns ``classes`` rearranged into the order of ``universe``; absent classes get 0.

    A model that forgot a whole class has no column for it; aligning lets its rows be compared
    with those of a model that kept one.

    >>> aligned_proba([[0.3, 0.7]], classes=["b", "c"], universe=["a", "b", "c"]).tolist()
    [[0.0, 0.3, 0.7]]
    """
    rows = np.asarray(proba, dtype=np.float64)
    position = {c: i for i, c in enumerate(universe)}
    unknown = [c for c in classes if c not in position]
    if unknown:
        raise ValueError(f"Classes {unknown[:5]} are not in the universe.")
    out = np.zeros((rows.shape[0], len(universe)))
    out[:, [position[c] for c in classes]] = rows
    return out


def accuracy(proba: ArrayLike, universe: Sequence[Any], labels: ArrayLike) -> float:
    """Fraction of rows whose most probable class (ties: the first in ``universe``) is the label.

    >>> accuracy([[0.9, 0.1], [0.6, 0.4]], ["a", "b"], ["a", "b"])
    0.5
    """
    predicted = np.asarray(universe, dtype=object)[np.argmax(np.asarray(proba), axis=1)]
    return float(np.mean(predicted == np.asarray(labels, dtype=object)))


def true_class_loss(proba: ArrayLike, universe: Sequence[Any], labels: ArrayLike) -> NDArray[np.float64]:
    """Per-sample cross-entropy ``-log p(label)``, the signal of loss-based membership inference.

    A label outside ``universe`` (a forgotten class) has probability 0, clipped to :data:`EPSILON`.
    """
    rows = np.asarray(proba, dtype=np.float64)
    position = {c: i for i, c in enumerate(universe)}
    columns = np.array([position.get(label, -1) for label in np.asarray(labels, dtype=object).tolist()])
    p = np.where(columns >= 0, rows[np.arange(rows.shape[0]), np.maximum(columns, 0)], 0.0)
    return -np.log(np.maximum(p, EPSILON))


def mia_auc(member_losses: ArrayLike, nonmember_losses: ArrayLike) -> float:
    """ROC AUC of the loss-threshold attack: members are predicted where the loss is low.

    The probability that a random member has a lower loss than a random non-member (ties
    count half). 0.5: indistinguishable; 1.0: perfectly separated.

    >>> mia_auc([1.0, 2.0], [1.0, 2.0])
    0.5
    >>> mia_auc([3.0], [1.0, 2.0])
    0.0
    """
    members = np.asarray(member_losses, dtype=np.float64).ravel()
    nonmembers = np.asarray(nonmember_losses, dtype=np.float64).ravel()
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError("The attack needs at least one member and one non-member.")
    from sklearn.metrics import roc_auc_score  # here: importing scikit-learn costs a server's start 1 s

    truth = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return float(roc_auc_score(truth, -np.concatenate([members, nonmembers])))


@dataclass(frozen=True)
class Divergence:
    """How far one model's predictions are from another's, on the same inputs.

    ``disagreement``: fraction of inputs whose predicted classes differ; ``total_variation``:
    mean over inputs of half the L1 distance between the probability rows (0 = identical, 1 = disjoint).
    """

    disagreement: float
    total_variation: float


def prediction_divergence(proba_a: ArrayLike, proba_b: ArrayLike) -> Divergence:
    """The :class:`Divergence` between two aligned probability matrices of the same inputs.

    >>> prediction_divergence([[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]])
    Divergence(disagreement=0.5, total_variation=0.5)
    """
    a, b = np.asarray(proba_a, dtype=np.float64), np.asarray(proba_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Probabilities of different shapes {a.shape} and {b.shape}: align them first.")
    disagreement = float(np.mean(np.argmax(a, axis=1) != np.argmax(b, axis=1)))
    return Divergence(disagreement, float(np.mean(0.5 * np.abs(a - b).sum(axis=1))))


@dataclass(frozen=True)
class LabelledSet:
    """Inputs (n, d) and their labels: a forget, retained, test or held-out set."""

    X: NDArray[Any]
    y: NDArray[Any]

    def subset(self, rows: ArrayLike) -> LabelledSet:
        """The samples at positions ``rows``."""
        index = np.asarray(rows, dtype=np.int64)
        return LabelledSet(self.X[index], self.y[index])


@dataclass(frozen=True)
class UnlearningScores:
    """A model's accuracies on the forget, retained and test sets, and the MIA AUC on its forget set.

    ``test_proba`` (aligned to the universe the scores were computed with) is kept to measure
    the divergence from another model; the attack's losses are kept to plot them.
    """

    forget_accuracy: float
    retain_accuracy: float
    test_accuracy: float
    mia_auc: float
    test_proba: NDArray[np.float64] = field(repr=False, compare=False)
    forget_losses: NDArray[np.float64] = field(repr=False, compare=False)
    nonmember_losses: NDArray[np.float64] = field(repr=False, compare=False)


def score_unlearning(
    predict_proba: Callable[[NDArray[Any]], NDArray[np.float64]],
    universe: Sequence[Any],
    forget: LabelledSet,
    retain: LabelledSet,
    test: LabelledSet,
    nonmembers: LabelledSet,
) -> UnlearningScores:
    """Score one model: ``predict_proba(X)`` returns probabilities aligned to ``universe``.

    The attack compares the losses of ``forget`` with those of ``nonmembers`` (held-out
    samples, best chosen by :func:`matched_nonmembers` to have the forget set's labels).

    >>> import numpy as np
    >>> flip = lambda X: np.column_stack([X[:, 0], 1 - X[:, 0]])    # p(a) = x
    >>> data = LabelledSet(np.array([[0.9], [0.2]]), np.array(["a", "b"]))
    >>> scores = score_unlearning(flip, ["a", "b"], data, data, data, LabelledSet(np.array([[0.4]]), np.array(["a"])))
    >>> scores.test_accuracy, scores.mia_auc
    (1.0, 1.0)
    """
    forget_proba, test_proba = predict_proba(forget.X), predict_proba(test.X)
    forget_losses = true_class_loss(forget_proba, universe, forget.y)
    nonmember_losses = true_class_loss(predict_proba(nonmembers.X), universe, nonmembers.y)
    return UnlearningScores(
        forget_accuracy=accuracy(forget_proba, universe, forget.y),
        retain_accuracy=accuracy(predict_proba(retain.X), universe, retain.y),
        test_accuracy=accuracy(test_proba, universe, test.y),
        mia_auc=mia_auc(forget_losses, nonmember_losses),
        test_proba=test_proba,
        forget_losses=forget_losses,
        nonmember_losses=nonmember_losses,
    )


def matched_nonmembers(forget_labels: ArrayLike, heldout_labels: ArrayLike, seed: int = 0) -> NDArray[np.int64]:
    """Positions of held-out samples with the forget set's label counts (as far as there are enough).

    The attack then compares like with like: without matching, forgetting a whole class would
    be "detected" merely because that class is harder than the average held-out sample.

    >>> matched_nonmembers(["a", "a", "b"], ["b", "a", "c", "a", "a"], seed=0).tolist()
    [0, 3, 4]
    """
    held = np.asarray(heldout_labels, dtype=object)
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(np.asarray(forget_labels, dtype=object).astype(str), return_counts=True)
    chosen: list[NDArray[np.int64]] = []
    for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
        candidates = np.flatnonzero(held.astype(str) == label)
        chosen.append(rng.choice(candidates, size=min(count, candidates.size), replace=False))
    rows = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    if rows.size == 0:
        raise ValueError("No held-out sample has a label of the forget set.")
    return rows.astype(np.int64)


# -- forget requests -------------------------------------------------------------------------


def random_request(n: int, fraction: float, seed: int) -> NDArray[np.int64]:
    """Sorted positions of ``round(fraction * n)`` (at least one) samples drawn without replacement.

    >>> random_request(10, 0.3, seed=1).tolist()
    [3, 4, 7]
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    size = max(1, round(fraction * n))
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)).astype(np.int64)


def subject_request(subjects: Sequence[str | None], subject: str) -> NDArray[np.int64]:
    """Positions of every sample of ``subject``: a data-subject erasure request.

    >>> subject_request(["u1", "u2", "u1", None], "u1").tolist()
    [0, 2]
    """
    return np.flatnonzero(np.asarray(subjects, dtype=object) == subject).astype(np.int64)


def class_request(labels: ArrayLike, label: Any) -> NDArray[np.int64]:
    """Positions of every sample of class ``label``: forgetting a whole class.

    >>> class_request([3, 1, 3, 2], 3).tolist()
    [0, 2]
    """
    return np.flatnonzero(np.asarray(labels, dtype=object) == label).astype(np.int64)


def synthetic_subjects(n: int, n_subjects: int, seed: int) -> list[str]:
    """A deterministic subject (``customer-017``) for each of ``n`` samples, for data that have none.

    Subjects are assigned uniformly at random, independently of the labels, so a subject's
    samples are a random subset of the data (about ``n / n_subjects`` of them).

    >>> synthetic_subjects(5, 3, seed=0)
    ['customer-2', 'customer-1', 'customer-1', 'customer-0', 'customer-0']
    """
    digits = len(str(n_subjects - 1))
    groups = np.random.default_rng(seed).integers(0, n_subjects, size=n)
    return [f"customer-{g:0{digits}d}" for g in groups.tolist()]


@dataclass(frozen=True)
class StreamStep:
    """One step of a stream: learn or forget the samples at ``positions``."""

    kind: Literal["learn", "forget"]
    positions: NDArray[np.int64]


def streaming_schedule(n: int, initial: int, requests: int, seed: int) -> list[StreamStep]:
    """A stream over ``n`` samples: learn ``initial`` of them, then alternate learning and single forgets.

    The first step learns ``initial`` random samples; the rest arrive in ``requests`` equal
    batches (the last takes the remainder), each followed by the forget request of one random
    sample learned so far and not yet forgotten. Deterministic given the seed.

    >>> steps = streaming_schedule(10, initial=6, requests=2, seed=0)
    >>> [(s.kind, s.positions.size) for s in steps]
    [('learn', 6), ('learn', 2), ('forget', 1), ('learn', 2), ('forget', 1)]
    """
    if not 0 < initial < n or requests < 1 or requests > n - initial:
        raise ValueError(f"Cannot stream {requests} requests over {n} samples with {initial} learned first.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n).astype(np.int64)
    steps = [StreamStep("learn", np.sort(order[:initial]))]
    live = set(order[:initial].tolist())
    for batch in np.array_split(order[initial:], requests):
        steps.append(StreamStep("learn", np.sort(batch)))
        live.update(batch.tolist())
        victim = int(rng.choice(sorted(live)))
        live.remove(victim)
        steps.append(StreamStep("forget", np.array([victim], dtype=np.int64)))
    return steps

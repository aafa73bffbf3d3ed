"""Pruning and attribution for the visual memory (:class:`~erasable.heads.memory.MemoryHead`).

Both rest on leave-one-out votes: every memory sample is classified by its ``k`` nearest
*other* samples, with the memory's voting rule.

* :func:`hard_prune` -- the ids to remove: samples whose own leave-one-out vote is wrong
  (Wilson's editing), or samples that mislead others (more of their vote weight went to
  wrong decisions than to right ones).
* :func:`reliability` / :func:`soft_prune` -- per-sample weights ``(right + 1) / (right +
  wrong + 2)``, where ``right`` and ``wrong`` add up the sample's shares of the votes it
  cast in other samples' leave-one-out decisions (each decision shared out in proportion
  to the voting weights). Geirhos et al. (2025) down-weight neighbours that "contributed
  to wrong decisions on the training set" the same way.
* :func:`smallest_removal` -- the fewest memory samples whose removal changes a prediction.

Pruning and reliability weights are derived from the live samples: after the memory
forgets samples they must be recomputed, or they would keep information about them.

>>> import numpy as np
>>> from erasable.heads.memory import MemoryHead
>>> from erasable.heads.voting import Voting
>>> e_q = np.array([[100, 0], [99, 5], [98, 9], [97, 12], [0, 100]], dtype=np.int16)
>>> head = MemoryHead.from_samples(list("abcde"), e_q, [0, 0, 1, 0, 1], voting=Voting("plurality", 3))
>>> hard_prune(head)
['c', 'e']
>>> attribution = smallest_removal(head, np.array([100.0, 1.0]))
>>> attribution.removed, attribution.new_prediction, attribution.minimal
(('a', 'b'), 1, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from erasable.heads.memory import MemoryHead
from erasable.heads.voting import Voting, class_scores
from erasable.moments import Label

Criterion = Literal["wrong", "misleading"]

__all__ = ["Attribution", "LooVotes", "hard_prune", "loo_votes", "reliability", "smallest_removal", "soft_prune"]


@dataclass(frozen=True)
class LooVotes:
    """Leave-one-out decisions of every memory sample.

    ``neighbours`` (n, k) are rows, ``weights`` their votes, ``truth`` and ``predicted``
    class codes (indices into the head's classes).
    """

    neighbours: NDArray[np.int64]
    weights: NDArray[np.float64]
    truth: NDArray[np.int64]
    predicted: NDArray[np.int64]

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.truth == self.predicted))


def loo_votes(head: MemoryHead, voting: Voting | None = None) -> LooVotes:
    """Classify every memory sample by its nearest other samples (weights included)."""
    voting = voting or head.voting
    similarities, rows = head.loo_neighbours(voting.k)
    weights = head.neighbour_weights(voting, similarities, rows)
    codes = head.label_codes()
    neighbour_codes = np.where(rows >= 0, codes[rows], -1)
    predicted = class_scores(weights, neighbour_codes, len(head.classes)).argmax(axis=1)
    return LooVotes(rows, weights, codes, predicted)


def _vote_balance(votes: LooVotes, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per sample: the shares of decisions it voted rightly in, and wrongly in."""
    totals = votes.weights.sum(axis=1, keepdims=True)
    shares = np.divide(votes.weights, totals, out=np.zeros_like(votes.weights), where=totals > 0)
    valid = votes.neighbours >= 0
    agrees = votes.truth[np.where(valid, votes.neighbours, 0)] == votes.truth[:, None]
    right = np.bincount(votes.neighbours[valid & agrees], shares[valid & agrees], minlength=n)
    wrong = np.bincount(votes.neighbours[valid & ~agrees], shares[valid & ~agrees], minlength=n)
    return right.astype(np.float64), wrong.astype(np.float64)


def hard_prune(head: MemoryHead, criterion: Criterion = "wrong") -> list[str]:
    """Ids to remove: leave-one-out misclassified (``"wrong"``) or ``"misleading"`` samples."""
    votes = loo_votes(head)
    if criterion == "wrong":
        rows = np.flatnonzero(votes.predicted != votes.truth)
    elif criterion == "misleading":
        right, wrong = _vote_balance(votes, len(head))
        rows = np.flatnonzero(wrong > right)
    else:
        raise ValueError(f"criterion must be 'wrong' or 'misleading', got {criterion!r}.")
    ids = head.ids
    return [ids[r] for r in rows.tolist()]


def reliability(head: MemoryHead) -> NDArray[np.float64]:
    """Per-sample reliability in (0, 1) from leave-one-out votes cast with the plain voting rule.

    The sample weights in force are ignored, so the result does not feed on itself.
    """
    voting = head.voting
    similarities, rows = head.loo_neighbours(voting.k)
    weights = np.where(rows >= 0, voting.weights(similarities), 0.0)
    codes = head.label_codes()
    votes = LooVotes(rows, weights, codes, codes)
    right, wrong = _vote_balance(votes, len(head))
    return (right + 1.0) / (right + wrong + 2.0)


def soft_prune(head: MemoryHead) -> NDArray[np.float64]:
    """Set every sample's weight to its :func:`reliability`; returns the weights."""
    weights = reliability(head)
    head.set_sample_weights(head.ids, weights)
    return weights


# -- attribution --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    """Memory samples whose removal changes a prediction.

    ``removed`` are ledger ids, nearest first; ``new_prediction`` is
    ``None`` when no set within the budget changes it. ``minimal`` is true when the set is
    proven to be a smallest one (plurality voting with equal sample weights); otherwise it
    is an upper bound on the smallest size.
    """

    removed: tuple[str, ...]
    prediction: Label
    new_prediction: Label | None
    minimal: bool


def smallest_removal(head: MemoryHead, vector: ArrayLike, max_removals: int = 50) -> Attribution:
    """The fewest samples to remove from the memory so that ``vector``'s prediction changes.

    Greedy: while the prediction is still class ``c``, remove the neighbour of class ``c``
    with the largest vote in the current top ``k``; the next sample in the ranking takes
    its place. For plurality voting with equal sample weights (and any positive class
    weights) this is optimal. Proof: a smallest set ``R`` of size ``m`` lies within the
    first ``k + m`` ranked samples (removing a sample beyond the top ``k`` of the rest
    changes nothing), so the final top ``k`` is positions ``1..k+m`` minus ``R``. For every
    class ``e != c`` the margin ``w_e n_e - w_c n_c`` is then at most
    ``w_e #e(1..k+m) - w_c (#c(1..k+m) - |R of class c|)``, and the greedy choice -- the
    first ``m`` samples of class ``c`` in the ranking -- reaches this bound for every ``e``
    at once (or, if fewer than ``m`` of them lie in ``1..k+m``, leaves no ``c`` in the top
    ``k`` at all). Whatever changes the prediction for ``R`` therefore changes it for the
    greedy set. With other rules the greedy set is an upper bound.
    """
    voting = head.voting
    similarities, rows = head.search(np.atleast_2d(np.asarray(vector, dtype=np.float64)), voting.k + max_removals)
    found = rows[0] >= 0
    sims, ranked = similarities[0][found], rows[0][found]
    codes = head.label_codes()[ranked]
    removed = np.zeros(len(ranked), dtype=bool)
    original = _window_prediction(head, voting, sims, ranked, removed)
    current = original
    while current == original and removed.sum() < max_removals:
        window = np.flatnonzero(~removed)[: voting.k]
        votes = head.neighbour_weights(voting, sims[window][None], ranked[window][None])[0]
        candidates = np.flatnonzero(codes[window] == original)
        if not len(candidates):
            break
        removed[window[candidates[np.argmax(votes[candidates])]]] = True
        current = _window_prediction(head, voting, sims, ranked, removed)
    return _attribution(head, voting, ranked, removed, original, current)


def _window_prediction(
    head: MemoryHead, voting: Voting, sims: NDArray[np.float32], ranked: NDArray[np.int64], removed: NDArray[np.bool_]
) -> int:
    window = np.flatnonzero(~removed)[: voting.k]
    if not len(window):
        return -1
    return int(head.scores_from_neighbours(voting, sims[window][None], ranked[window][None])[0].argmax())


def _attribution(
    head: MemoryHead,
    voting: Voting,
    ranked: NDArray[np.int64],
    removed: NDArray[np.bool_],
    original: int,
    current: int,
) -> Attribution:
    ids, classes = head.ids, head.classes
    order = np.flatnonzero(removed)
    weights = head.sample_weights[ranked]
    minimal = voting.aggregation == "plurality" and bool(np.all(weights == weights[0]))
    return Attribution(
        removed=tuple(ids[r] for r in ranked[order].tolist()),
        prediction=classes[original],
        new_prediction=None if current in (original, -1) else classes[current],
        minimal=minimal and current != original,
    )

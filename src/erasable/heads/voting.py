"""How the k nearest neighbours of a query vote for its class.

Every rule turns the similarities of a query's ``k`` neighbours (sorted, most similar
first) into one non-negative weight per neighbour; a class's score is the sum of the
weights of its neighbours (times any per-sample and per-class weights), and its
probability is its share of the total.

* ``plurality`` -- every neighbour weighs 1.
* ``distance`` -- ``1 / (1 - s)``, the inverse cosine distance; as in scikit-learn's
  ``weights="distance"``, a query with exact matches (distance 0) is decided by them alone.
* ``softmax`` -- ``exp(s / tau)``, ``param`` = the temperature ``tau``.
* ``rank`` -- RankVoting (Geirhos et al., 2025, "Towards flexible perception with visual
  memory"): ``rank ** -p`` for ranks 1..k, ``param`` = the power ``p``. It ignores the
  similarity values, so it is robust to how similarities are scaled.

:func:`select_voting` chooses the rule, ``k`` and ``param`` by leave-one-out accuracy on the
memory itself. It is deterministic: the grid is scanned in a fixed order (rules in the
order above, then ``k``, then ``param``, each ascending) and the first best wins, so ties go
to the simplest rule and the smallest ``k``.

>>> import numpy as np
>>> sims = np.array([[0.9, 0.8, 0.7]])
>>> codes = np.array([[0, 1, 1]])
>>> class_scores(Voting("plurality", 3).weights(sims), codes, 2).tolist()
[[1.0, 2.0]]
>>> class_scores(Voting("rank", 3, 2.0).weights(sims), codes, 2).round(4).tolist()
[[1.0, 0.3611]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Aggregation = Literal["plurality", "distance", "softmax", "rank"]
AGGREGATIONS: tuple[Aggregation, ...] = ("plurality", "distance", "softmax", "rank")
#: The candidates :func:`select_voting` scans by default.
K_GRID = (1, 3, 5, 10, 20, 50)
PARAM_GRID: dict[Aggregation, tuple[float | None, ...]] = {
    "plurality": (None,),
    "distance": (None,),
    "softmax": (0.01, 0.02, 0.05, 0.1),
    "rank": (0.5, 1.0, 2.0, 4.0),
}

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "Voting",
    "class_scores",
    "loo_accuracy",
    "select_voting",
    "vote_shares",
]


@dataclass(frozen=True)
class Voting:
    """An aggregation rule with its ``k`` and parameter (temperature or rank power)."""

    aggregation: Aggregation = "rank"
    k: int = 10
    param: float | None = 1.0

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}.")
        if self.k < 1:
            raise ValueError(f"k must be positive, got {self.k}.")
        if self.aggregation in ("softmax", "rank") and not (self.param is not None and self.param > 0):
            raise ValueError(f"{self.aggregation} voting needs a positive param, got {self.param}.")
        if self.aggregation in ("plurality", "distance"):
            object.__setattr__(self, "param", None)

    def weights(self, similarities: NDArray[np.floating]) -> NDArray[np.float64]:
        """Per-neighbour weights (n, k) from similarities sorted in decreasing order.

        >>> Voting("distance", 2).weights(np.array([[1.0, 0.5], [0.75, 0.5]])).tolist()
        [[1.0, 0.0], [4.0, 2.0]]
        >>> Voting("softmax", 2, 0.5).weights(np.array([[0.5, 0.0]])).round(4).tolist()
        [[1.0, 0.3679]]
        """
        s = np.asarray(similarities, dtype=np.float64)
        if self.aggregation == "plurality":
            return np.ones_like(s)
        if self.aggregation == "rank":
            assert self.param is not None
            return np.broadcast_to(np.arange(1, s.shape[1] + 1, dtype=np.float64) ** -self.param, s.shape).copy()
        if self.aggregation == "softmax":
            assert self.param is not None
            return np.exp((s - s[:, :1]) / self.param)
        return _inverse_distance(s)


def _inverse_distance(similarities: NDArray[np.float64]) -> NDArray[np.float64]:
    distance = np.clip(1.0 - similarities, 0.0, None)
    exact = distance == 0.0
    with np.errstate(divide="ignore"):
        weights = 1.0 / distance
    has_exact = exact.any(axis=1)
    weights[has_exact] = exact[has_exact].astype(np.float64)
    return weights


def class_scores(weights: NDArray[np.float64], codes: NDArray[np.integer], n_classes: int) -> NDArray[np.float64]:
    """Sum of the neighbours' weights per class (n, n_classes); code -1 (no neighbour) is skipped.

    >>> class_scores(np.array([[2.0, 1.0, 5.0]]), np.array([[1, 1, -1]]), 2).tolist()
    [[0.0, 3.0]]
    """
    n = weights.shape[0]
    valid = codes >= 0
    flat = (np.arange(n)[:, None] * n_classes + codes)[valid]
    scores = np.bincount(flat, weights=weights[valid], minlength=n * n_classes).astype(np.float64)
    return scores.reshape(n, n_classes)


def vote_shares(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Scores normalized to probabilities; a row without votes becomes uniform.

    >>> vote_shares(np.array([[1.0, 3.0], [0.0, 0.0]])).tolist()
    [[0.25, 0.75], [0.5, 0.5]]
    """
    totals = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / scores.shape[1])
    return np.divide(scores, totals, out=uniform, where=totals > 0)


def loo_accuracy(
    voting: Voting,
    similarities: NDArray[np.floating],
    codes: NDArray[np.integer],
    truth: NDArray[np.integer],
    n_classes: int,
    neighbour_weights: NDArray[np.float64] | None = None,
) -> float:
    """Accuracy of ``voting`` on queries whose neighbour lists (self excluded) are given.

    ``neighbour_weights`` (n, k), optional, multiply the rule's weights (sample and class weights).
    """
    k = min(voting.k, similarities.shape[1])
    weights = voting.weights(similarities[:, :k])
    if neighbour_weights is not None:
        weights = weights * neighbour_weights[:, :k]
    predicted = class_scores(weights, codes[:, :k], n_classes).argmax(axis=1)
    return float(np.mean(predicted == truth))


def _candidates(max_k: int) -> list[Voting]:
    ks = [k for k in K_GRID if k <= max_k] or [max_k]
    return [Voting(rule, k, param) for rule in AGGREGATIONS for k in ks for param in PARAM_GRID[rule]]


def select_voting(
    similarities: NDArray[np.floating],
    codes: NDArray[np.integer],
    truth: NDArray[np.integer],
    n_classes: int,
    neighbour_weights: NDArray[np.float64] | None = None,
    candidates: list[Voting] | None = None,
) -> tuple[Voting, float]:
    """The candidate with the best leave-one-out accuracy, and that accuracy.

    ``similarities`` and ``codes`` are each query's neighbours with the query itself
    left out; ``neighbour_weights`` as for :func:`loo_accuracy`; ``candidates`` default
    to the grid of :data:`K_GRID` x :data:`PARAM_GRID` up to the number of neighbours given.

    >>> sims = np.array([[0.9, 0.1], [0.9, 0.1], [0.8, 0.7]])
    >>> codes = np.array([[0, 1], [1, 0], [1, 1]])
    >>> select_voting(sims, codes, np.array([0, 1, 1]), 2)
    (Voting(aggregation='plurality', k=1, param=None), 1.0)
    """
    best, best_accuracy = None, -1.0
    for voting in candidates or _candidates(similarities.shape[1]):
        accuracy = loo_accuracy(voting, similarities, codes, truth, n_classes, neighbour_weights)
        if accuracy > best_accuracy:
            best, best_accuracy = voting, accuracy
    assert best is not None
    return best, best_accuracy

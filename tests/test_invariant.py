"""The invariant: any learn / forget / merge history == a fit from scratch on the live samples."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from erasable.model import SMALL_BATCH, Model, ModelConfig
from tests.conftest import relu_config, unit_rows

DIM = 5
LABELS = np.array(["a", "b", "c"])

operation = st.one_of(
    st.tuples(st.just("learn"), st.integers(1, 6), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("merge"), st.integers(1, 6), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("forget_ids"), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("forget_samples"), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("forget_subject"), st.integers(0, 3), st.integers(0, 2**32 - 1)),
)
configs = st.sampled_from(
    [
        relu_config(DIM, width=12, alpha=0.3),
        ModelConfig(input_dim=DIM, scale_bits=12, alpha=0.3),
        relu_config(DIM, width=12, head="gaussian"),
    ]
)


class History:
    """Drives a model through operations while tracking the live samples independently."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.model = Model(config)
        self.live: dict[str, tuple[np.ndarray, str, str]] = {}
        self.counter = itertools.count()

    def new_batch(self, n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
        rng = np.random.default_rng(seed)
        ids = [f"id{next(self.counter)}" for _ in range(n)]
        x = unit_rows(rng, n, DIM)
        y = LABELS[rng.integers(0, len(LABELS), n)]
        subjects = [f"subject{rng.integers(0, 4)}" for _ in range(n)]
        return ids, x, y, subjects

    def remember(self, ids: list[str], x: np.ndarray, y: np.ndarray, subjects: list[str]) -> None:
        for i, sample_id in enumerate(ids):
            self.live[sample_id] = (x[i], str(y[i]), subjects[i])

    def apply(self, op: tuple[str, float, int]) -> None:
        kind, amount, seed = op
        rng = np.random.default_rng(seed)
        if kind in ("learn", "merge"):
            ids, x, y, subjects = self.new_batch(int(amount), seed)
            if kind == "learn":
                self.model.learn(x, y, ids=ids, subjects=subjects)
            else:
                other = Model(self.config)
                other.learn(x, y, ids=ids, subjects=subjects)
                self.model.merge(other)
            self.remember(ids, x, y, subjects)
            return
        if not self.live:
            return
        if kind == "forget_subject":
            subject = f"subject{int(amount)}"
            doomed = [i for i, (_, _, s) in self.live.items() if s == subject]
            if doomed:
                self.model.forget(subjects=[subject])
        else:
            k = max(1, int(amount * len(self.live)))
            doomed = list(rng.choice(sorted(self.live), size=k, replace=False))
            if kind == "forget_ids":
                self.model.forget(ids=doomed)
            else:
                x = np.array([self.live[i][0] for i in doomed])
                y = [self.live[i][1] for i in doomed]
                removed = self.model.forget(embeddings=x, labels=y).ids
                # Identical copies are interchangeable: the model may remove another one.
                content = sorted((self.live[i][0].tobytes(), self.live[i][1]) for i in removed)
                assert content == sorted((x[j].tobytes(), y[j]) for j in range(len(doomed)))
                doomed = list(removed)
        for sample_id in doomed:
            del self.live[sample_id]

    def scratch(self, seed: int) -> Model:
        """A model fitted on the live samples only, in a shuffled order and random batches."""
        model = Model(self.config)
        ids = sorted(self.live)
        np.random.default_rng(seed).shuffle(ids)
        cuts = sorted(np.random.default_rng(seed + 1).integers(0, len(ids) + 1, size=2).tolist())
        for part in np.split(np.array(ids, dtype=object), cuts):
            if len(part):
                model.learn(
                    np.array([self.live[i][0] for i in part]),
                    [self.live[i][1] for i in part],
                    ids=list(part),
                    subjects=[self.live[i][2] for i in part],
                )
        return model


@given(configs, st.lists(operation, min_size=1, max_size=8), st.integers(0, 1000))
@settings(max_examples=80, deadline=None)
def test_any_history_equals_a_fit_from_scratch(config: ModelConfig, ops: list, seed: int) -> None:
    history = History(config)
    for op in ops:
        history.apply(op)
    scratch = history.scratch(seed)
    model = history.model
    assert model.certificate() == scratch.certificate()
    assert model.embedding_moments.equals(scratch.embedding_moments)
    assert model.classes == scratch.classes
    assert sorted(model.registry.ids) == sorted(history.live)
    if model.count:
        probe = unit_rows(np.random.default_rng(seed), 7, DIM)
        model.refresh()
        for kind in ("ridge", "prototype", "gaussian"):
            assert np.array_equal(model.decision_function(probe, kind), scratch.decision_function(probe, kind))


@given(st.lists(st.integers(1, 5), min_size=2, max_size=5), st.integers(0, 1000))
@settings(max_examples=30, deadline=None)
def test_merge_order_does_not_matter(sizes: list[int], seed: int) -> None:
    config = relu_config(DIM, width=12)
    history = History(config)
    clients = []
    for i, size in enumerate(sizes):
        client = Model(config)
        client.learn(*history.new_batch(size, seed + i)[1:3], ids=[f"c{i}-{j}" for j in range(size)])
        clients.append(client)
    certificates = set()
    for order in (range(len(clients)), reversed(range(len(clients)))):
        server = Model(config)
        for i in order:
            server.merge(clients[i])
        certificates.add(server.certificate())
    assert len(certificates) == 1


@given(st.integers(0, 1000))
@settings(max_examples=5, deadline=None)
def test_large_and_small_batch_paths_agree(seed: int) -> None:
    """Batches above SMALL_BATCH accumulate their own Moments; smaller ones update in one pass."""
    config = relu_config(DIM, width=12)
    rng = np.random.default_rng(seed)
    x, y = unit_rows(rng, SMALL_BATCH + 50, DIM), LABELS[rng.integers(0, 3, SMALL_BATCH + 50)]
    at_once, in_pieces = Model(config), Model(config)
    at_once.learn(x, y)
    for start in range(0, len(y), 37):
        in_pieces.learn(x[start : start + 37], y[start : start + 37], ids=range(start, min(start + 37, len(y))))
    assert at_once.certificate() == in_pieces.certificate()
    doomed = list(range(0, SMALL_BATCH + 10))
    at_once.forget(ids=doomed)
    for start in range(0, len(doomed), 50):
        in_pieces.forget(ids=doomed[start : start + 50])
    assert at_once.certificate() == in_pieces.certificate()

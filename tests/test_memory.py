"""The visual-memory head: exact deletion, files without forgotten bytes, voting, evidence."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("faiss", reason="the memory head needs the 'memory' extra (faiss-cpu)")

from erasable.exact import quantize
from erasable.heads import memory as memory_module
from erasable.heads import memory_index
from erasable.heads.hybrid import HybridHead, choose_weight
from erasable.heads.memory import MemoryFileError, MemoryHead, unit_rows
from erasable.heads.voting import Voting, class_scores, select_voting
from erasable.memory_analysis import hard_prune, loo_votes, smallest_removal, soft_prune
from erasable.model import Model, ModelConfig

from .conftest import unit_rows as random_unit_rows


def clustered(rng: np.random.Generator, n: int, dim: int = 12, classes: int = 4, spread: float = 0.6):
    """Quantized embeddings of ``classes`` Gaussian clusters, their labels and ids."""
    centers = rng.standard_normal((classes, dim))
    labels = rng.integers(0, classes, n)
    x = centers[labels] + spread * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return [f"s{i}" for i in range(n)], quantize(x, 13), labels


def files_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()))


# -- deletion ------------------------------------------------------------------------------------


@pytest.mark.parametrize("voting", [Voting("rank", 7, 1.0), None])
def test_forgetting_equals_memory_built_without(rng, voting):
    ids, e_q, labels = clustered(rng, 300)
    forgotten = [ids[i] for i in rng.choice(300, 40, replace=False)]
    head = MemoryHead.from_samples(ids, e_q, labels, voting=voting)
    head.predict_proba(e_q[:5].astype(float))  # select the voting, fill caches
    head.remove(forgotten)
    keep = [i for i, sample in enumerate(ids) if sample not in set(forgotten)]
    rebuilt = MemoryHead.from_samples([ids[i] for i in keep], e_q[keep], labels[keep], voting=voting)
    queries = random_unit_rows(rng, 50, 12) * 2**13
    assert head.voting == rebuilt.voting
    np.testing.assert_array_equal(head.predict_proba(queries), rebuilt.predict_proba(queries))
    assert head.explain(queries, 5) == rebuilt.explain(queries, 5)
    assert not set(forgotten) & {n.id for row in head.explain(queries, 50) for n in row}


def test_saved_files_hold_no_forgotten_vector_and_equal_a_rebuilt_memory(rng, tmp_path):
    ids, e_q, labels = clustered(rng, 200)
    head = MemoryHead.from_samples(ids, e_q, labels, voting=Voting("plurality", 3))
    gone = [5, 77, 199]  # the last row too: compaction would leave it in spare capacity
    head.save(tmp_path / "before")
    head.remove([ids[i] for i in gone])
    head.save(tmp_path / "after")
    keep = np.setdiff1d(np.arange(200), gone)
    rebuilt = MemoryHead.from_samples([ids[i] for i in keep], e_q[keep], labels[keep], voting=Voting("plurality", 3))
    rebuilt.save(tmp_path / "rebuilt")
    before, after = files_bytes(tmp_path / "before"), files_bytes(tmp_path / "after")
    for row in gone:
        vector = unit_rows(e_q[row : row + 1]).tobytes()
        assert vector in before  # the search would find it
        assert vector not in after
        assert e_q[row].tobytes() not in after
        assert ids[row] not in json.loads((tmp_path / "after" / "memory.json").read_text())["ids"]
    assert after == files_bytes(tmp_path / "rebuilt")


def test_ivf_removal_scrubs_vectors_and_retrains_without_forgotten_samples(rng, tmp_path):
    ids, e_q, labels = clustered(rng, 1500, dim=16)
    head = MemoryHead.from_samples(ids, e_q, labels, index="ivf", voting=Voting("plurality", 5))
    assert head.index_type == "ivf"
    store = head._store
    trained = set(store.trained_on.tolist())
    untrained = [i for i in range(1500) if i not in trained][:3]
    head.remove([ids[i] for i in untrained])
    assert head._store is store  # no training sample forgotten: same index, vectors removed in place
    assert store.index.ntotal == 1497
    head.remove([ids[min(trained)]])
    assert head._store is not store and min(trained) not in head._store.trained_on
    head.save(tmp_path / "m")
    saved = files_bytes(tmp_path / "m")
    for row in [*untrained, min(trained)]:
        assert unit_rows(e_q[row : row + 1]).tobytes() not in saved
    loaded = MemoryHead.load(tmp_path / "m")
    queries = e_q[:40].astype(float)
    np.testing.assert_array_equal(loaded.predict_proba(queries), head.predict_proba(queries))
    first = loaded.ids[0]
    loaded.remove([first])
    assert first not in {n.id for n in loaded.explain(e_q[:40].astype(float), 3)[0]}


@given(st.data())
@settings(max_examples=25, deadline=None)
def test_ivf_store_knows_where_every_vector_is_through_adds_and_removals(data):
    """Removals of a few keys (one at a time) and of many (list by list) keep each key's list and offset exact."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    ids, e_q, labels = clustered(rng, 2400, dim=8)
    head = MemoryHead.from_samples(ids[:2000], e_q[:2000], labels[:2000], index="ivf", voting=Voting("plurality", 1))
    store = head._store
    assert store.index.nlist == 32  # so up to 32 keys go one at a time
    trained = {head.ids[row] for row in store.trained_on.tolist()}
    live, added = list(ids[:2000]), 2000
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):
            count = data.draw(st.integers(1, 400 - (added - 2000))) if added < 2400 else 0
            head.add(ids[added : added + count], e_q[added : added + count], labels[added : added + count])
            live += ids[added : added + count]
            added += count
        else:
            removable = [i for i in live if i not in trained]
            count = data.draw(st.one_of(st.integers(1, 32), st.integers(33, 120)))
            gone = rng.choice(removable, count, replace=False).tolist()
            head.remove(gone)
            live = [i for i in live if i not in set(gone)]
        assert head._store is store  # changed in place, never rebuilt
        assert store.index.ntotal == len(live) and sorted(head.ids) == sorted(live)
        for list_no in range(store.index.nlist):
            keys = store._list(list_no)[0]
            np.testing.assert_array_equal(store.list_of_key[keys], list_no)
            np.testing.assert_array_equal(store.offset_of_key[keys], np.arange(len(keys)))
        rows = head.rows_for_ids(live)
        expected = unit_rows(e_q[[int(i[1:]) for i in live]])
        np.testing.assert_array_equal(store.vectors(rows, head._keys), expected)


def test_auto_index_switches_with_size(rng, monkeypatch):
    monkeypatch.setattr(memory_module, "IVF_THRESHOLD", 300)
    ids, e_q, labels = clustered(rng, 400)
    head = MemoryHead.from_samples(ids[:250], e_q[:250], labels[:250], voting=Voting("plurality", 1))
    assert head.index_type == "flat"
    head.add(ids[250:], e_q[250:], labels[250:])
    assert head.index_type == "ivf"
    head.remove(ids[:200])
    assert head.index_type == "flat" and len(head) == 200
    np.testing.assert_array_equal(head.predict(e_q[200:].astype(float)), labels[200:])


def test_save_load_roundtrip_and_corruption(rng, tmp_path):
    ids, e_q, labels = clustered(rng, 80)
    head = MemoryHead.from_samples(ids, e_q, np.array(["ab"[i % 2] for i in labels]))
    head.set_sample_weights(ids[:3], [0.5, 0.0, 2.0])
    head.set_class_weights({"a": 0.7})
    head.save(tmp_path)
    loaded = MemoryHead.load(tmp_path)
    queries = e_q[:20].astype(float)
    np.testing.assert_array_equal(loaded.decision_function(queries), head.decision_function(queries))
    assert loaded.classes == ("a", "b") and loaded.class_weights == {"a": 0.7}
    manifest = json.loads((tmp_path / "memory.json").read_text())
    manifest["ids"] = manifest["ids"][:-1]
    (tmp_path / "memory.json").write_text(json.dumps(manifest))
    with pytest.raises(MemoryFileError):
        MemoryHead.load(tmp_path)


def test_invalid_requests_raise(rng):
    ids, e_q, labels = clustered(rng, 10)
    head = MemoryHead.from_samples(ids, e_q, labels)
    with pytest.raises(KeyError):
        head.remove(["nope"])
    with pytest.raises(ValueError, match="new"):
        head.add(ids[:1], e_q[:1], labels[:1])
    with pytest.raises(ValueError, match="non-negative"):
        head.set_sample_weights(ids[:1], [-1.0])


# -- voting ---------------------------------------------------------------------------------------

# Memory a=(100, 0) "x", b=(80, 60) "y", c=(60, 80) "y": similarities to (1, 0) are 1, 0.8, 0.6,
# to (96, 28) they are 0.96, 0.936, 0.8. Softmax weights exp((s - 1) / 0.1) are 1, e^-2, e^-4.
TRIANGLE = np.array([[100, 0], [80, 60], [60, 80]], dtype=np.int16)


@pytest.mark.parametrize(
    ("voting", "query", "expected"),
    [
        (Voting("plurality", 3), [1.0, 0.0], [1 / 3, 2 / 3]),
        (Voting("distance", 3), [1.0, 0.0], [1.0, 0.0]),  # an exact match decides alone
        (Voting("distance", 3), [96.0, 28.0], [25 / 45.625, 20.625 / 45.625]),  # 1/0.04 vs 1/0.064 + 1/0.2
        (Voting("softmax", 3, 0.1), [1.0, 0.0], np.array([1, np.exp(-2) + np.exp(-4)]) / (1 + np.exp(-2) + np.exp(-4))),
        (Voting("rank", 3, 1.0), [1.0, 0.0], [1 / (1 + 1 / 2 + 1 / 3), (1 / 2 + 1 / 3) / (1 + 1 / 2 + 1 / 3)]),
        (Voting("rank", 3, 2.0), [1.0, 0.0], [1 / (1 + 1 / 4 + 1 / 9), (1 / 4 + 1 / 9) / (1 + 1 / 4 + 1 / 9)]),
    ],
)
def test_each_aggregation_on_a_hand_computed_case(voting, query, expected):
    head = MemoryHead.from_samples(["a", "b", "c"], TRIANGLE, ["x", "y", "y"], voting=voting)
    np.testing.assert_allclose(head.predict_proba(np.array([query])), [expected], rtol=1e-4)


def test_leave_one_out_selection_is_deterministic_and_best(rng):
    ids, e_q, labels = clustered(rng, 400, spread=0.9)
    noisy = labels.copy()
    noisy[rng.choice(400, 60, replace=False)] = rng.integers(0, 4, 60)
    first = MemoryHead.from_samples(ids, e_q, noisy).voting
    assert first == MemoryHead.from_samples(ids, e_q, noisy).voting
    head = MemoryHead.from_samples(ids, e_q, noisy)
    sims, rows = head.loo_neighbours(50)
    codes = head.label_codes()
    best, accuracy = select_voting(sims, codes[rows], codes, 4)
    assert best == first and first.k > 1  # noisy labels: one neighbour is not enough
    for candidate in [Voting("plurality", 1), Voting("rank", 10, 1.0), Voting("softmax", 20, 0.05)]:
        k = candidate.k
        predicted = class_scores(candidate.weights(sims[:, :k]), codes[rows[:, :k]], 4).argmax(axis=1)
        assert np.mean(predicted == codes) <= accuracy


def test_loo_neighbours_leave_the_query_out(rng):
    ids, e_q, labels = clustered(rng, 50)
    head = MemoryHead.from_samples(ids, e_q, labels)
    _, rows = head.loo_neighbours(5)
    assert rows.shape == (50, 5) and not (rows == np.arange(50)[:, None]).any()


# -- evidence and steering ------------------------------------------------------------------------


def test_explain_returns_the_neighbours_behind_the_scores(rng):
    ids, e_q, labels = clustered(rng, 100)
    head = MemoryHead.from_samples(ids, e_q, labels, voting=Voting("rank", 5, 1.0))
    head.set_sample_weights(ids[:50], 0.5)
    queries = e_q[:3].astype(float) + 50
    scores = head.decision_function(queries)
    for row, neighbours in enumerate(head.explain(queries)):
        assert len(neighbours) == 5
        sims = [n.similarity for n in neighbours]
        assert sims == sorted(sims, reverse=True)
        for n in neighbours:
            assert n.label == labels[ids.index(n.id)]
        totals = {c: sum(n.weight for n in neighbours if n.label == c) for c in head.classes}
        np.testing.assert_allclose([totals[c] for c in head.classes], scores[row])


def test_class_and_sample_weights_steer_decisions():
    head = MemoryHead.from_samples(["a", "b", "c"], TRIANGLE, ["x", "y", "y"], voting=Voting("plurality", 3))
    query = np.array([[1.0, 0.0]])
    assert head.predict(query).tolist() == ["y"]
    head.set_class_weights({"x": 3.0})
    assert head.predict(query).tolist() == ["x"]
    head.set_class_weights({})
    head.set_sample_weights(["b", "c"], 0.25)
    assert head.predict(query).tolist() == ["x"]


# -- pruning and attribution ----------------------------------------------------------------------


def noisy_toy(rng: np.random.Generator):
    ids, e_q, labels = clustered(rng, 600, dim=8, classes=3, spread=0.5)
    noisy = labels.copy()
    flipped = rng.choice(400, 80, replace=False)
    noisy[flipped] = (labels[flipped] + rng.integers(1, 3, 80)) % 3
    return ids[:400], e_q[:400], noisy[:400], e_q[400:].astype(float), labels[400:]


def test_hard_pruning_keeps_or_improves_accuracy_on_noisy_labels(rng):
    ids, e_q, labels, test_x, test_y = noisy_toy(rng)
    head = MemoryHead.from_samples(ids, e_q, labels, voting=Voting("plurality", 1))
    before_loo, before_test = loo_votes(head).accuracy, np.mean(head.predict(test_x) == test_y)
    for criterion in ("wrong", "misleading"):
        pruned = MemoryHead.from_samples(ids, e_q, labels, voting=Voting("plurality", 1))
        pruned.remove(hard_prune(pruned, criterion))
        assert loo_votes(pruned).accuracy >= before_loo
        assert np.mean(pruned.predict(test_x) == test_y) >= before_test


def test_soft_pruning_down_weights_mislabelled_samples(rng):
    ids, e_q, labels, test_x, test_y = noisy_toy(rng)
    head = MemoryHead.from_samples(ids, e_q, labels, voting=Voting("rank", 10, 0.5))
    before = np.mean(head.predict(test_x) == test_y)
    weights = soft_prune(head)
    clean = clustered(np.random.default_rng(12345), 600, dim=8, classes=3, spread=0.5)[2][:400]
    assert weights[labels != clean].mean() < weights[labels == clean].mean()
    assert np.mean(head.predict(test_x) == test_y) >= before


def test_attribution_changes_the_prediction_and_is_minimal_for_plurality(rng):
    ids, e_q, labels = clustered(rng, 40, dim=4, classes=2, spread=1.0)
    voting = Voting("plurality", 3)
    head = MemoryHead.from_samples(ids, e_q, labels, voting=voting)
    for query in random_unit_rows(rng, 6, 4) * 2**13:
        result = smallest_removal(head, query)
        assert result.minimal and result.new_prediction is not None
        keep = [i for i in range(40) if ids[i] not in result.removed]
        rest = MemoryHead.from_samples([ids[i] for i in keep], e_q[keep], labels[keep], voting=voting)
        assert rest.predict(query[None])[0] == result.new_prediction != result.prediction
        nearest = [n.id for n in head.explain(query[None], 3 + len(result.removed))[0]]
        for smaller in combinations(nearest, len(result.removed) - 1):
            keep = [i for i in range(40) if ids[i] not in smaller]
            rest = MemoryHead.from_samples([ids[i] for i in keep], e_q[keep], labels[keep], voting=voting)
            assert rest.predict(query[None])[0] == result.prediction


def test_attribution_for_weighted_voting_is_an_upper_bound(rng):
    ids, e_q, labels = clustered(rng, 60)
    head = MemoryHead.from_samples(ids, e_q, labels, voting=Voting("rank", 5, 1.0))
    result = smallest_removal(head, e_q[0].astype(float))
    assert not result.minimal and result.new_prediction != result.prediction
    head.remove(result.removed)
    assert head.predict(e_q[:1].astype(float))[0] == result.new_prediction


# -- hybrid and real data ---------------------------------------------------------------------------


def test_hybrid_mixes_memory_and_ridge(rng):
    x = random_unit_rows(rng, 120, 6)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    model = Model(ModelConfig(input_dim=6, scale_bits=13))
    model.learn(x, labels)
    memory = MemoryHead.from_registry(model.registry)

    def ridge_proba(vectors: np.ndarray) -> np.ndarray:
        return model.predict_proba(vectors / 2**13, "ridge")

    queries = model.quantize(x[:10]).astype(float)
    for weight, expected in [(0.0, ridge_proba(queries)), (1.0, memory.predict_proba(queries))]:
        hybrid = HybridHead(memory, ridge_proba, model.classes, weight)
        np.testing.assert_allclose(hybrid.predict_proba(queries), expected)
    weight, accuracy = choose_weight(memory.predict_proba(queries), ridge_proba(queries), labels[:10])
    assert 0.0 <= weight <= 1.0 and accuracy >= 0.5


@pytest.mark.shared_data
def test_banking77_memory_accuracy(banking77):
    e_q = quantize(banking77["X_train"], 13)
    head = MemoryHead.from_samples([str(i) for i in range(len(e_q))], e_q, banking77["y_train"], cv_queries=1000)
    test = quantize(banking77["X_test"][:1000], 13, saturate=True).astype(float)
    assert np.mean(head.predict(test) == banking77["y_test"][:1000]) > 0.88


def test_removal_leaves_nothing_in_spare_capacity(rng):
    """Removed rows are cut off the end of every array after the moves, and blanked there."""
    ids, e_q, labels = clustered(rng, 60)
    head = MemoryHead.from_samples(ids, e_q, labels, voting=Voting("plurality", 1))
    forgotten = [ids[3], ids[10], ids[59]]
    head.remove(forgotten)
    assert len(head) == 57 and not set(forgotten) & set(head.ids)
    assert all(x is None for x in head._ids.base[57:])
    assert not head._sample_weights.base[57:].any() and not head._keys.base[57:].any()
    storage = memory_index.faiss.rev_swig_ptr(head._store.index.get_xb(), 60 * 12).reshape(60, 12)  # its capacity
    assert not storage[57:].any()
    assert {n.id for row in head.explain(e_q.astype(float), 1) for n in row} == set(head.ids)


@given(st.data())
def test_swap_plan_keeps_exactly_the_surviving_rows(data):
    n = data.draw(st.integers(1, 40))
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1))), dtype=np.int64)
    sources, targets = memory_index.swap_plan(n, rows)
    values = np.arange(n)
    values[targets] = values[sources]
    kept = values[: n - len(rows)]
    assert sorted(kept.tolist()) == sorted(set(range(n)) - set(rows.tolist()))
    assert len(sources) == len(targets) <= len(rows)

"""Distributed fitting and forgetting on a LocalCluster: bit-identical to the in-process model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'erasable[distributed]')")
pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'erasable[distributed]')")

import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, LocalCluster

from erasable import distributed
from erasable.distributed import PartitionError, PartitionProgress
from erasable.io import Columns, InputError
from erasable.model import Model
from erasable.model_file import load_model, save_model
from tests.conftest import relu_config, unit_rows

DIM = 8
COLUMNS = Columns(items="X", labels="y", ids="ids", subjects="subjects")
SIZES = {"a.npz": 37, "sub/b.parquet": 5, "c.csv": 100, "d.npy": 1}  # uneven, nested, four formats


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as connected,
    ):
        yield connected


def _samples(n: int, offset: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    x = unit_rows(rng, n, DIM)
    y = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, n)]
    ids = [f"s{offset + i}" for i in range(n)]
    subjects = [f"u{(offset + i) % 7}" for i in range(n)]
    return x, y, ids, subjects


def _write(path: Path, x: np.ndarray, y: np.ndarray, ids: list[str], subjects: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, X=x, y=y, ids=np.array(ids), subjects=np.array(subjects))
    elif path.suffix == ".npy":
        np.save(path, x)
        for key, values in (("y", y), ("ids", ids), ("subjects", subjects)):
            np.save(path.with_suffix(f".{key}.npy"), np.array(values))
    elif path.suffix == ".parquet":
        table = pa.table({"X": list(x), "y": y, "ids": ids, "subjects": subjects})
        pq.write_table(table, path)
    else:
        columns = {"y": y, "ids": ids, "subjects": subjects, **{f"x{j}": x[:, j] for j in range(DIM)}}
        pa.csv.write_csv(pa.table(columns), path)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Model]:
    """Four uneven shards, and the model learned in-process from the same samples."""
    import pyarrow.csv  # noqa: F401  (registers pa.csv)

    root = tmp_path_factory.mktemp("shards")
    reference = Model(relu_config(DIM, width=32))
    offset = 0
    for seed, (name, n) in enumerate(sorted(SIZES.items())):
        x, y, ids, subjects = _samples(n, offset, seed)
        _write(root / name, x, y, ids, subjects)
        reference.learn(x, y, ids=ids, subjects=subjects)
        offset += n
    return root, reference


def test_fit_is_bit_identical_to_the_in_process_fit(client: Client, shards: tuple[Path, Model]) -> None:
    root, reference = shards
    model = distributed.fit(reference.config, str(root), client=client, columns=COLUMNS)
    assert model.certificate() == reference.certificate()
    assert sorted(model.registry.ids) == sorted(reference.registry.ids)
    assert model.count == sum(SIZES.values())
    x = unit_rows(np.random.default_rng(9), 5, DIM)
    np.testing.assert_array_equal(model.predict_proba(x), reference.predict_proba(x))


def test_partial_fit_by_scheduler_address_adds_to_a_model(client: Client, shards: tuple[Path, Model]) -> None:
    root, reference = shards
    prior = _samples(20, 1000, 99)
    model, expected = Model(reference.config), Model(reference.config)
    for target in (model, expected):
        target.learn(prior[0], prior[1], ids=prior[2], subjects=prior[3])
    distributed.partial_fit(model, f"file://{root}/*.n*", client=client.scheduler_info()["address"], columns=COLUMNS)
    for offset, seed, name in ((0, 0, "a.npz"), (137, 2, "d.npy")):  # what the glob matches
        x, y, ids, subjects = _samples(SIZES[name], offset, seed)
        expected.learn(x, y, ids=ids, subjects=subjects)
    assert model.certificate() == expected.certificate()
    assert len(model.registry) == 20 + 37 + 1


def test_default_local_cluster_reports_progress_per_partition(shards: tuple[Path, Model]) -> None:
    root, reference = shards
    events: list[PartitionProgress] = []
    model = distributed.fit(reference.config, str(root), n_workers=1, columns=COLUMNS, progress=events.append)
    assert model.certificate() == reference.certificate()
    assert [e.done for e in events] == [1, 2, 3, 4]
    assert {e.total for e in events} == {4}
    assert sorted(e.rows for e in events) == sorted(SIZES.values())
    assert not any(e.failed for e in events)


def test_failed_partitions_are_reported_by_name_and_change_nothing(
    client: Client, shards: tuple[Path, Model], tmp_path: Path
) -> None:
    root, reference = shards
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    good = distributed.list_shards(str(root), COLUMNS)
    model = Model(reference.config)
    with pytest.raises(PartitionError, match=r"1 partition\(s\) failed:\n.*broken\.npz") as caught:
        distributed.partial_fit(model, [*good, str(broken)], client=client, columns=COLUMNS, retries=1)
    assert list(caught.value.failures) == [str(broken)]
    assert model.count == 0 and len(model.registry) == 0


@pytest.mark.parametrize("on_cluster", [True, False])
def test_forget_by_subject_and_ids_matches_the_refit(
    client: Client, shards: tuple[Path, Model], on_cluster: bool
) -> None:
    root, reference = shards
    model = distributed.fit(reference.config, str(root), client=client, columns=COLUMNS)
    where = client if on_cluster else None
    receipt = distributed.forget(model, subjects=["u3"], client=where, block_rows=4)
    assert receipt.certificate_after == model.refit().certificate()
    assert all(subject != "u3" for subject in model.registry.subjects)
    distributed.forget(model, ids=["s0", "s100", "s137", "s140"], client=where)  # one id in each shard
    assert model.certificate() == model.refit().certificate()
    assert "s140" not in model.registry and model.count == len(model.registry)


@pytest.mark.parametrize("on_cluster", [True, False])
def test_forgetting_steered_samples_drops_their_weights_and_the_model_still_loads(
    client: Client, shards: tuple[Path, Model], tmp_path: Path, on_cluster: bool
) -> None:
    """Issue 13: the Dask forget went around plan/apply, so the steering kept a forgotten subject's (and
    sample's) name; the model then saved, but loading it failed with "No live samples for subjects"."""
    _, reference = shards
    model = reference.refit()
    model.steer(subjects={"u3": 0.0, "u4": 0.5}, ids={"s0": 0.0, "s1": 2.0})
    where = client if on_cluster else None
    distributed.forget(model, subjects=["u3"], client=where, block_rows=4)
    distributed.forget(model, ids=["s0"], client=where)
    assert model.steering.subjects == {"u4": 0.5} and model.steering.samples == {"s1": 2.0}
    save_model(model, tmp_path / "steered.erasable")
    loaded = load_model(tmp_path / "steered.erasable")
    assert loaded.certificate() == model.certificate() == model.refit().certificate()
    assert loaded.steering == model.steering


def test_forgetting_everything_leaves_an_empty_model(shards: tuple[Path, Model]) -> None:
    _, reference = shards
    model = reference.refit()
    model.predict_proba(unit_rows(np.random.default_rng(1), 2, DIM))  # caches a head
    distributed.forget(model, ids=list(model.registry.ids))
    assert model.certificate() == Model(reference.config).certificate()
    with pytest.raises(ValueError, match="no samples"):
        model.predict_proba(unit_rows(np.random.default_rng(1), 2, DIM))


def test_shard_errors_name_the_shard(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", X=np.eye(2), y=np.array([1, 2]))
    with pytest.raises(InputError, match=r"p\.npz: no array 'ids'"):
        distributed.read_shard(str(tmp_path / "p.npz"), COLUMNS)
    np.savez(tmp_path / "q.npz", X=np.eye(2), y=np.array([1, 2, 3]))
    with pytest.raises(InputError, match=r"q\.npz: vectors of shape \(2, 2\) for 3 labels"):
        distributed.read_shard(str(tmp_path / "q.npz"))
    with pytest.raises(InputError, match="No shards"):
        distributed.list_shards(str(tmp_path / "*.csv"))


def test_workers_encode_raw_text_bit_identically(client: Client, tmp_path: Path) -> None:
    """Each worker embeds its shard's texts; batch-invariant encoders keep the fit exact."""
    pytest.importorskip("sentence_transformers", reason="the text extra is not installed")
    from erasable.estimator import ErasableClassifier

    texts = [f"{verb} my {thing}" for verb in ("block", "top up", "find", "close") for thing in ("card", "account")]
    labels = [t.split(" my ")[0] for t in texts]
    for part, rows in enumerate((slice(0, 3), slice(3, 8))):
        table = pa.table({"X": texts[rows], "y": labels[rows], "id": [f"t{i}" for i in range(8)][rows]})
        pq.write_table(table, tmp_path / f"part{part}.parquet")
    config = ErasableClassifier(encoder="text", width=32).model_config()
    model = distributed.fit(config, str(tmp_path), client=client, columns=Columns(ids="id"))
    reference = Model(config)
    reference.learn(reference.embed(texts), labels, ids=[f"t{i}" for i in range(8)])
    assert model.certificate() == reference.certificate()

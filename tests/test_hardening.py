"""Attacks on the library and its files that once got through (issue 12); each is replayed and must be refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from erasable.exact import OverflowRiskError, quantize
from erasable.ledger.store import LedgerError, LedgerStore
from erasable.model import Model, ModelConfig
from erasable.model_file import ModelFileError, load_model, read_container, save_model, write_container
from erasable.moments import canonical_labels

LONE = "\udfff"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([1, "a"], "not a mix"),
        (["a", 1], "not a mix"),
        ([2**70], "int64"),
        ([2**64 - 1], "int64"),  # NumPy makes this uint64, which int64 would wrap to -1
        ([-(2**63) - 1], "int64"),
        ([1e30], "int64"),
        ([LONE], "Unicode"),
        (np.array(["ok", "x\ud800"]), "Unicode"),
    ],
)
def test_labels_that_cannot_be_stored_faithfully_are_refused(labels: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        canonical_labels(labels)  # type: ignore[arg-type]
    model = Model(ModelConfig(input_dim=2, scale_bits=8))
    n = len(labels)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        model.learn(np.full((n, 2), 0.5), labels)  # type: ignore[arg-type]
    assert model.count == 0


def test_int64_edges_and_plain_labels_still_pass() -> None:
    assert canonical_labels([2**63 - 1, -(2**63)]).tolist() == [2**63 - 1, -(2**63)]
    assert canonical_labels(["café", "x"]).tolist() == ["café", "x"]
    assert canonical_labels([True, 2.0]).tolist() == [1, 2]


def test_ids_and_subjects_must_be_valid_unicode() -> None:
    model = Model(ModelConfig(input_dim=2, scale_bits=8))
    with pytest.raises(ValueError, match="Sample ids"):
        model.learn(np.full((1, 2), 0.5), ["a"], ids=[LONE])
    with pytest.raises(ValueError, match="Subjects"):
        model.learn(np.full((1, 2), 0.5), ["a"], ids=["x"], subjects=[LONE])
    assert model.count == 0


def test_a_resealed_file_with_a_surrogate_class_is_refused(tmp_path: Path) -> None:
    model = Model(ModelConfig(input_dim=2, scale_bits=8))
    model.learn(np.array([[0.5, 0.1], [0.1, 0.5]]), ["a", "b"], ids=["x", "y"])
    path = tmp_path / "m.erasable"
    save_model(model, path)
    manifest, tensors = read_container(path)
    manifest["classes"] = ["a", LONE]
    write_container(path, manifest, tensors)  # the digest is unkeyed: anyone can reseal
    with pytest.raises(ModelFileError, match="Unicode"):
        load_model(path)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_nul_is_refused_by_the_store_on_every_backend(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sqlite = backend == "sqlite"
    store = LedgerStore(str(tmp_path / "ledger.db") if sqlite else request.getfixturevalue("postgres_database_url"))
    model = store.create_model("m", ModelConfig(input_dim=2, scale_bits=8))
    for ids, subjects in ((["a\0b"], [None]), (["a"], ["c\0d"])):
        with pytest.raises(LedgerError, match="NUL"):
            store.commit("m", model.plan_learn(np.full((1, 2), 0.5), ["a"], ids=ids, subjects=subjects))
    assert store.verify("m").ok and store.load_model("m").count == 0
    store.close()


def test_the_overflow_message_states_the_bound_the_check_applies() -> None:
    """scale_bits=8 once said |x| <= 128 but refused -128.0: the bound printed must be the bound enforced."""
    with pytest.raises(OverflowRiskError) as refused:
        quantize([[-128.0]], scale_bits=8)
    found = re.search(r"\|x\| < ([0-9]+\.[0-9]+)", str(refused.value))
    assert found is not None, str(refused.value)
    bound = float(found.group(1))
    assert quantize([[np.nextafter(bound, 0)]], scale_bits=8)[0, 0] == 32767
    assert quantize([[-np.nextafter(bound, 0)]], scale_bits=8)[0, 0] == -32767
    for edge in (bound, -bound, 128.0):
        with pytest.raises(OverflowRiskError):
            quantize([[edge]], scale_bits=8)
    assert json.dumps(bound) == "127.998046875"


def _resealed(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A small valid model file whose config was edited and whose (unkeyed) digest was recomputed."""
    model = Model(ModelConfig(input_dim=2, scale_bits=8, feature_map=relu(2, 8)))
    model.learn(np.array([[0.5, 0.1], [0.1, 0.5]]), ["a", "b"], ids=["x", "y"])
    path = tmp_path / "bomb.erasable"
    save_model(model, path)
    manifest, tensors = read_container(path)
    edit(manifest["config"])
    write_container(path, manifest, tensors)
    return path


def relu(dim: int, width: int) -> dict[str, Any]:
    return {"kind": "random_relu", "input_dim": dim, "width": width, "seed": 0, "shift": 0}


def _limit_memory() -> None:  # in the child: 1 GiB of address space, far below what the bombs ask for
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))


@pytest.mark.parametrize(
    ("edit", "by_cli"),
    [
        (lambda c: c["feature_map"].update(width=2**28), True),  # once 34 s and 4.1 GB, then MemoryError
        (lambda c: c["feature_map"].update(width=2**15), False),  # within the bound, but not what the file holds
        (lambda c: (c.update(input_dim=200_000), c["feature_map"].update(input_dim=200_000)), True),  # a traceback
        (lambda c: (c.update(input_dim=20_000), c["feature_map"].update(input_dim=20_000)), False),
        (lambda c: c.update(input_dim="2"), False),
    ],
)
def test_a_resealed_file_cannot_make_the_loader_allocate(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], by_cli: bool
) -> None:
    path = _resealed(tmp_path, edit)
    with pytest.raises(ModelFileError):
        load_model(path)
    if not by_cli:
        return
    started = time.perf_counter()
    shown = subprocess.run(
        [sys.executable, "-m", "erasable", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    assert shown.returncode != 0 and "Traceback" not in shown.stdout + shown.stderr
    assert "MemoryError" not in shown.stdout + shown.stderr
    assert "Inconsistent model file" in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"input_dim": 2**15 + 1}, "input_dim"),
        ({"input_dim": True}, "input_dim"),
        ({"input_dim": 4, "feature_map": relu(4, 2**15 + 1)}, "width"),
        ({"input_dim": 2**14, "feature_map": relu(2**14, 2**15)}, "width"),  # 2**29 projection entries
        ({"input_dim": 4, "scale_bits": 8.0}, "scale_bits"),
        ({"input_dim": 4, "feature_map": {**relu(4, 8), "seed": 0.0}}, "integers"),  # 0.0 would draw 0's projection
    ],
)
def test_config_sizes_are_bounded_before_anything_is_allocated(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(config)


def test_memory_predictions_do_not_depend_on_the_order_ties_were_learned_in(tmp_path: Path) -> None:
    """The issue's case: two copies of one vector, labels a and b; learned a-then-b or b-then-a, saved and loaded."""
    pytest.importorskip("faiss")
    from erasable import ErasableClassifier

    x = np.array([[1, 0], [1, 0], [0, 1], [0.1, 1]])
    answers = set()
    for ids in (["i0", "i1", "i2", "i3"], ["i1", "i0", "i2", "i3"]):
        labels = ["a", "b", "c", "c"] if ids[0] == "i0" else ["b", "a", "c", "c"]  # i0 is a, i1 is b, both times
        clf = ErasableClassifier(scale_bits=8, head="memory").fit(x, labels, ids=ids)
        path = tmp_path / f"{ids[0]}.erasable"
        clf.save(path)
        answers.add((clf.certificate(), clf.predict([[1, 0]])[0], ErasableClassifier.load(path).predict([[1, 0]])[0]))
    assert len(answers) == 1, answers
    assert next(iter(answers))[1] == "a"  # the tie goes to the smaller id, i0


def test_memory_neighbours_are_a_function_of_the_live_samples(rng: np.random.Generator) -> None:
    """Many exact duplicates, learned in shuffled orders with forgets between: neighbours, votes and the voting
    rule chosen by leave-one-out equal those of a memory built at once in id order."""
    pytest.importorskip("faiss")
    from erasable.heads.memory import MemoryHead

    base = rng.integers(-50, 50, size=(12, 6)).astype(np.int16)
    e_q = base[rng.integers(0, 12, 300)]  # every vector has about 25 copies
    ids = [f"s{i:03d}" for i in range(300)]
    labels = rng.integers(0, 3, 300)
    queries = base.astype(np.float64) + rng.normal(0, 0.01, base.shape)
    forgotten = set(rng.choice(300, 60, replace=False).tolist())
    live = [i for i in range(300) if i not in forgotten]
    reference = MemoryHead.from_samples([ids[i] for i in live], e_q[live], labels[live])
    expected = [[(n.id, n.weight) for n in row] for row in reference.explain(queries, 20)]
    for trial in range(3):
        order = rng.permutation(300)
        head = MemoryHead.from_samples([ids[i] for i in order[:150]], e_q[order[:150]], labels[order[:150]])
        head.remove([ids[i] for i in order[:150] if i in forgotten])
        rest = order[150:].tolist()
        head.add([ids[i] for i in rest], e_q[rest], labels[rest])
        head.remove([ids[i] for i in rest if i in forgotten])
        assert [[(n.id, n.weight) for n in row] for row in head.explain(queries, 20)] == expected, trial
        assert head.voting == reference.voting
        assert np.array_equal(head.decision_function(queries), reference.decision_function(queries))


CRASH_BETWEEN_COMMIT_AND_ERASURE = """
import os, signal, sys
import numpy as np
from erasable.ledger.store import LedgerStore
from erasable.model import ModelConfig

store = LedgerStore(sys.argv[1])
model = store.create_model("m", ModelConfig(input_dim=16, scale_bits=13))
x = np.random.default_rng(7).standard_normal((20, 16)) / 8
change = model.plan_learn(x, ["a", "b"] * 10, ids=[f"s{i}" for i in range(20)], subjects=["u-victim"] + [None] * 19)
store.commit("m", change)
model.apply(change)
LedgerStore.erase_residues = lambda self, seconds=0.0: os.kill(os.getpid(), signal.SIGKILL)
store.commit("m", model.plan_forget(subjects=["u-victim"]))
"""


def _victim_bytes() -> list[bytes]:
    x = np.random.default_rng(7).standard_normal((20, 16)) / 8
    return [Model(ModelConfig(input_dim=16, scale_bits=13)).quantize(x[:1]).astype("<i2").tobytes(), b"u-victim"]


def _found(directory: Path, needles: list[bytes]) -> list[bytes]:
    files = [path.read_bytes() for path in directory.iterdir() if path.is_file()]
    return [needle for needle in needles if any(needle in data for data in files)]


def test_a_crash_between_a_forget_and_its_erasure_leaves_nothing_once_the_store_reopens(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    directory.mkdir()
    path = directory / "ledger.db"
    crashed = subprocess.run([sys.executable, "-c", CRASH_BETWEEN_COMMIT_AND_ERASURE, str(path)], timeout=120)
    assert crashed.returncode == -9  # killed after the forget's commit, before the WAL was truncated
    assert _found(directory, _victim_bytes()) == _victim_bytes()  # the attack: the bytes are still on disk
    store = LedgerStore(path)  # a restart
    assert _found(directory, _victim_bytes()) == []
    result = store.verify("m")
    assert result.ok and result.residues_erased is True
    assert store.load_model("m").count == 19
    store.close()


def test_verify_reports_residue_a_reader_keeps_on_disk(tmp_path: Path) -> None:
    import sqlite3

    directory = tmp_path / "store"
    directory.mkdir()
    path = directory / "ledger.db"
    crashed = subprocess.run([sys.executable, "-c", CRASH_BETWEEN_COMMIT_AND_ERASURE, str(path)], timeout=120)
    assert crashed.returncode == -9
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM samples").fetchone()  # holds a snapshot: the WAL cannot be truncated
    store = LedgerStore(path)
    assert store.residue_pending
    started = time.perf_counter()
    result = store.verify("m")
    assert time.perf_counter() - started < 30  # bounded, not 50 tries of a 30 s busy timeout
    assert result.residues_erased is False and not result.ok
    assert _found(directory, _victim_bytes()) == _victim_bytes()
    reader.rollback()
    reader.close()
    result = store.verify("m")
    assert result.ok and result.residues_erased is True and not store.residue_pending
    assert _found(directory, _victim_bytes()) == []
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_verify_reads_one_committed_state_while_writes_go_on(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import threading

    sqlite = backend == "sqlite"
    store = LedgerStore(str(tmp_path / "ledger.db") if sqlite else request.getfixturevalue("postgres_database_url"))
    model = store.create_model("m", ModelConfig(input_dim=8, scale_bits=13))
    rng = np.random.default_rng(3)
    writing = True

    def write() -> None:
        nonlocal writing
        for i in range(40):
            ids = [f"w{i}-{j}" for j in range(3)]
            change = model.plan_learn(rng.standard_normal((3, 8)) / 4, ["a", "b", "c"], ids=ids)
            store.commit("m", change)
            model.apply(change)
            if i % 2:
                store.commit("m", change := model.plan_forget(ids=[f"w{i}-0"]))
                model.apply(change)
        writing = False

    writer = threading.Thread(target=write)
    writer.start()
    verdicts = []
    while writing:
        verdicts.append(store.verify("m"))
    writer.join()
    assert len(verdicts) >= 5  # the verifications overlapped with the writes
    torn = [v for v in verdicts if not (v.live_ids_match_log and v.certificate_recorded == v.certificate_recomputed)]
    assert not torn, f"{len(torn)} of {len(verdicts)} verifications saw a torn state"
    assert all(v.chain.ok and v.statistics_at_last_event for v in verdicts)
    store.close()


SAVE_KILLED_AFTER_FSYNC = """
import os, signal, sys
import numpy as np
from erasable.model_file import load_model, save_model

model = load_model(sys.argv[1])
model.learn(np.full((1, 8), 0.25), ["a"], ids=["late"])
os.replace = lambda *_: os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written and synced
save_model(model, sys.argv[1])
"""


def test_a_killed_save_leaves_no_copy_once_a_forget_returns(tmp_path: Path) -> None:
    """The CLI: a save killed after fsync left `.MODEL.erasable.*.tmp` with the rows, ids and subject of a sample
    forgotten later; a kill mid-write left a partial one. The next write removes both; a live write's is kept."""
    from typer.testing import CliRunner

    from erasable.cli import app

    directory = tmp_path / "models"
    directory.mkdir()
    x = np.random.default_rng(5).standard_normal((5, 8)) / 4
    np.savez(
        tmp_path / "train.npz",
        X=x,
        y=np.array(["a", "b", "a", "b", "a"]),
        ids=np.array([f"q{i}" for i in range(5)]),
        subjects=np.array(["victim-subject"] + ["someone"] * 4),
    )
    model_path = directory / "m.erasable"
    runner = CliRunner()
    assert runner.invoke(app, ["learn", str(model_path), str(tmp_path / "train.npz"), "--width", "32"]).exit_code == 0
    victim = [load_model(model_path).quantize(x[:1]).astype("<i2").tobytes(), b"victim-subject"]
    killed = subprocess.run([sys.executable, "-c", SAVE_KILLED_AFTER_FSYNC, str(model_path)], timeout=120)
    assert killed.returncode == -9
    (directory / ".m.erasable.partial.tmp").write_bytes(b"\\0" * 1000 + victim[0] + b"...")  # killed mid-write
    assert len(list(directory.glob(".m.erasable.*.tmp"))) == 2
    assert _found(directory, victim) == victim  # the attack: copies of the victim outside the model file
    live = directory / ".m.erasable.live.tmp"  # a save in progress (its writer holds the lock): not touched
    live.write_bytes(b"in progress")
    import fcntl

    with live.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        forgot = runner.invoke(app, ["forget", str(model_path), "--subject", "victim-subject"])
        assert forgot.exit_code == 0, forgot.output
        assert sorted(p.name for p in directory.iterdir()) == [".m.erasable.live.tmp", "m.erasable"]
    assert _found(directory, victim) == []
    assert load_model(model_path).count == 4


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ledger_compact_runs_and_keeps_the_ledger_verified(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`erasable ledger compact` failed on every SQLite ledger ("cannot VACUUM from within a transaction")."""
    from typer.testing import CliRunner

    from erasable.cli import app

    sqlite = backend == "sqlite"
    location = str(tmp_path / "ledger.db") if sqlite else request.getfixturevalue("postgres_database_url")
    store = LedgerStore(location)
    model = store.create_model("m", ModelConfig(input_dim=4, scale_bits=8))
    x = np.random.default_rng(2).standard_normal((30, 4)) / 4
    store.commit("m", change := model.plan_learn(x, ["a", "b", "c"] * 10, ids=[f"s{i}" for i in range(30)]))
    model.apply(change)
    store.commit("m", model.plan_forget(ids=["s3", "s4"]))
    compacted = CliRunner().invoke(app, ["ledger", "compact", "--store", location])
    assert compacted.exit_code == 0 and "compacted" in compacted.output, compacted.output
    assert store.verify("m").ok and store.load_model("m").count == 28
    store.close()

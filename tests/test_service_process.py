"""The real server in a child process: crashes (SIGKILL) lose nothing, concurrent clients see committed states."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from benchmarks.crash_test import crash_iterations  # noqa: E402

from erasable.ledger.keys import KeyRing  # noqa: E402
from erasable.ledger.store import LedgerStore  # noqa: E402
from erasable.model import Model, ModelConfig  # noqa: E402
from erasable.service.process import ServerProcess  # noqa: E402

DIM = 16


def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    outcomes = crash_iterations(tmp_path, iterations=2, seed=1)
    assert all(o.verified for o in outcomes), outcomes
    assert all(o.nothing_lost for o in outcomes), outcomes
    assert sum(o.requests_acknowledged for o in outcomes) > 0
    assert all(o.residue_free for o in outcomes) and all(o.survived for o in outcomes), outcomes


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("postgres_database_url"))


def test_concurrent_clients_see_only_committed_states(store_location: str, tmp_path: Path) -> None:
    store = LedgerStore(store_location)
    token, _ = KeyRing(store).create(scopes=["admin"])
    store.close()
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3 * 12 * 8, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [str(i % 5) for i in range(len(vectors))]
    done: dict[int, tuple[str, list[str], str]] = {}  # seq -> (kind, ids, certificate) of acknowledged writes
    learned: list[str] = []
    predictions: list[tuple[int, str]] = []
    failures: list[Any] = []
    lock = threading.Lock()

    with ServerProcess(store_location, log=tmp_path / "server.log") as server:
        base = f"{server.url}/v1/models/c"
        httpx.post(f"{server.url}/v1/models", json={"name": "c", "input_dim": DIM}, headers=headers).raise_for_status()
        first = [{"id": "seed", "label": "0", "vector": vectors[0].tolist()}]
        seeded = httpx.post(f"{base}/learn", json={"samples": first}, headers=headers).json()
        done[seeded["seq"]] = ("learn", ["seed"], seeded["certificate"])

        def learner(worker: int) -> None:
            with httpx.Client(headers=headers, timeout=60) as http:
                for batch in range(12):
                    rows = range((worker * 12 + batch) * 8, (worker * 12 + batch + 1) * 8)
                    batch_samples = [{"id": f"w{r}", "label": labels[r], "vector": vectors[r].tolist()} for r in rows]
                    answer = http.post(f"{base}/learn", json={"samples": batch_samples})
                    if answer.status_code != 200:
                        failures.append(answer.text)
                        continue
                    reply = answer.json()
                    with lock:
                        done[reply["seq"]] = ("learn", [f"w{r}" for r in rows], reply["certificate"])
                        learned.extend(f"w{r}" for r in rows)

        def forgetter() -> None:
            with httpx.Client(headers=headers, timeout=60) as http:
                for _ in range(10):
                    with lock:
                        doomed, learned[:] = learned[:3], learned[3:]
                    if not doomed:
                        continue
                    answer = http.post(f"{base}/forget", json={"ids": doomed})
                    if answer.status_code != 200:
                        failures.append(answer.text)
                        continue
                    reply = answer.json()
                    with lock:
                        done[reply["seq"]] = ("forget", doomed, reply["certificate_after"])

        def predictor() -> None:
            with httpx.Client(headers=headers, timeout=60) as http:
                for _ in range(15):
                    answer = http.post(f"{base}/predict", json={"vectors": vectors[:4].tolist()})
                    if answer.status_code != 200:
                        failures.append(answer.text)
                        continue
                    reply = answer.json()
                    with lock:
                        predictions.append((reply["seq"], reply["certificate"]))

        threads = [threading.Thread(target=learner, args=(w,)) for w in range(3)]
        threads += [threading.Thread(target=forgetter)] + [threading.Thread(target=predictor) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = httpx.get(f"{base}/events", params={"limit": 1000}, headers=headers).json()
        final = httpx.get(base, headers=headers).json()
        verdict = httpx.get(f"{base}/verify", headers=headers).json()

    assert not failures, failures[:3]
    certificate_at = {e["seq"]: e["event"]["certificate_after"] for e in events}
    assert sorted(certificate_at) == list(range(1, len(events) + 1)) and verdict["ok"]
    assert len(predictions) == 45 and all(certificate_at[seq] == cert for seq, cert in predictions)
    assert len(done) == len(events) - 1  # every write but the create was acknowledged, each with its own event
    # A serial replay of the acknowledged writes, in commit order, passes through every committed state.
    replay = Model(ModelConfig.from_dict(final["config"]))
    row_of = {f"w{r}": r for r in range(len(vectors))} | {"seed": 0}
    for seq in sorted(done):
        kind, ids, certificate = done[seq]
        if kind == "learn":
            replay.learn(vectors[[row_of[i] for i in ids]], [labels[row_of[i]] for i in ids], ids=ids)
        else:
            replay.forget(ids=ids)
        assert replay.certificate() == certificate == certificate_at[seq]
    assert replay.certificate() == final["certificate"]


@pytest.mark.parametrize(("options", "threads"), [((), "1"), (("--blas-threads", "2"), "2")])
def test_a_server_runs_each_blas_call_on_one_thread_unless_told(
    tmp_path: Path, options: tuple[str, ...], threads: str
) -> None:
    """Requests run in parallel threads; BLAS threads of concurrent requests would contend for the same cores."""
    log = tmp_path / "server.log"
    with ServerProcess(tmp_path / "ledger.db", log=log, options=options) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
    assert f"BLAS threads per call: {threads}\n" in log.read_text()

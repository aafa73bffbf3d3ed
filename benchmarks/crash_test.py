"""Crash test: SIGKILL the server at random points during a stream of learns and forgets, restart, check.

Each iteration starts ``erasable serve`` on the same SQLite ledger, streams random learn and
forget requests from a client that remembers every sample it sent, kills the server with
SIGKILL after a random delay, restarts it and checks:

* ``/verify``: the hash chain is unbroken, the statistics carry the last event's
  certificate, a refit of the stored samples reproduces it, and the live ids are exactly
  those the log says were learned and not forgotten;
* nothing acknowledged is lost: the server's certificate equals that of a model fitted
  from scratch on the samples the client saw acknowledged -- or on those plus the one
  request in flight at the kill, applied whole (never a part of it).

Run: ``python benchmarks/crash_test.py --iterations 100`` (the tests run 3).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.model import Model, ModelConfig
from erasable.service.process import ServerProcess

DIM = 16
CONFIG = {"name": "crash", "input_dim": DIM, "scale_bits": 12}


@dataclass
class Client:
    """The client's own record: every sample it sent, and which are live as far as it was told."""

    url: str
    token: str
    rng: np.random.Generator
    sent: dict[str, tuple[list[float], str]] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)
    next_id: int = 0
    acknowledged: int = 0
    #: The request in flight when the server died: ("learn" | "forget", ids), or None.
    in_flight: tuple[str, list[str]] | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def one_request(self, http: httpx.Client) -> None:
        if self.live and self.rng.random() < 0.35:
            ids = [str(i) for i in self.rng.choice(sorted(self.live), size=min(len(self.live), 5), replace=False)]
            self.in_flight = ("forget", ids)
            response = http.post(f"{self.url}/v1/models/crash/forget", json={"ids": ids}, headers=self.headers())
            response.raise_for_status()
            self.live.difference_update(ids)
        else:
            n = int(self.rng.integers(1, 40))
            ids = [f"c{self.next_id + i}" for i in range(n)]
            self.next_id += n
            vectors = self.rng.standard_normal((n, DIM))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            labels = [str(label) for label in self.rng.integers(0, 4, n)]
            self.sent.update({i: (v.tolist(), y) for i, y, v in zip(ids, labels, vectors, strict=True)})
            samples = [{"id": i, "label": self.sent[i][1], "vector": self.sent[i][0]} for i in ids]
            self.in_flight = ("learn", ids)
            response = http.post(f"{self.url}/v1/models/crash/learn", json={"samples": samples}, headers=self.headers())
            response.raise_for_status()
            self.live.update(ids)
        self.in_flight = None
        self.acknowledged += 1

    def stream(self, stop: threading.Event) -> None:
        """Send requests until the server dies (or ``stop`` is set)."""
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                try:
                    self.one_request(http)
                except httpx.TransportError:
                    return

    def certificate_of(self, ids: set[str], config: ModelConfig) -> str:
        model = Model(config)
        if ids:
            order = sorted(ids)
            model.learn(np.array([self.sent[i][0] for i in order]), [self.sent[i][1] for i in order], ids=order)
        return model.certificate()


@dataclass(frozen=True)
class Outcome:
    requests_acknowledged: int
    in_flight: str
    in_flight_applied: bool | None
    verified: bool
    nothing_lost: bool
    live_samples: int


def crash_iterations(directory: Path, iterations: int, seed: int = 0) -> list[Outcome]:
    """Run ``iterations`` kill/restart cycles on one ledger in ``directory``; see the module docstring."""
    store_path = directory / "ledger.db"
    store = LedgerStore(store_path)
    token, _ = KeyRing(store).create(scopes=["admin"])
    store.close()
    rng = np.random.default_rng(seed)
    client: Client | None = None
    outcomes = []
    for _ in range(iterations):
        server = ServerProcess(store_path, log=directory / "server.log").start()
        if client is None:
            client = Client(server.url, token, rng)
            httpx.post(f"{server.url}/v1/models", json=CONFIG, headers=client.headers()).raise_for_status()
        client.url = server.url
        before = client.acknowledged
        stop = threading.Event()
        worker = threading.Thread(target=client.stream, args=(stop,))
        worker.start()
        time.sleep(float(rng.uniform(0.1, 0.8)))
        server.kill()
        worker.join()
        outcomes.append(_check(client, store_path, directory, client.acknowledged - before))
    return outcomes


def _check(client: Client, store_path: Path, directory: Path, acknowledged: int) -> Outcome:
    server = ServerProcess(store_path, log=directory / "server.log").start()
    try:
        verdict = httpx.get(f"{server.url}/v1/models/crash/verify", headers=client.headers(), timeout=120).json()
        info = httpx.get(f"{server.url}/v1/models/crash", headers=client.headers()).json()
    finally:
        server.stop()
    config = ModelConfig.from_dict(info["config"])
    applied: bool | None = None
    nothing_lost = info["certificate"] == client.certificate_of(client.live, config)
    if client.in_flight is not None:
        kind, ids = client.in_flight
        with_it = client.live | set(ids) if kind == "learn" else client.live - set(ids)
        if not nothing_lost and info["certificate"] == client.certificate_of(with_it, config):
            nothing_lost, applied, client.live = True, True, with_it
        elif nothing_lost:
            applied = False
    outcome = Outcome(
        requests_acknowledged=acknowledged,
        in_flight="none" if client.in_flight is None else client.in_flight[0],
        in_flight_applied=applied,
        verified=bool(verdict["ok"]),
        nothing_lost=nothing_lost,
        live_samples=info["count"],
    )
    client.in_flight = None
    return outcome


def main(argv: list[str] | None = None) -> None:
    from common import ROOT, table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        outcomes = crash_iterations(Path(directory), args.iterations, args.seed)
        elapsed = time.perf_counter() - start
    survived = sum(o.verified and o.nothing_lost for o in outcomes)
    rows: list[list[Any]] = [
        ["iterations (SIGKILL + restart)", str(len(outcomes))],
        ["survived: chain verified and nothing acknowledged lost", f"{survived} / {len(outcomes)}"],
        ["requests acknowledged before the kills", str(sum(o.requests_acknowledged for o in outcomes))],
        ["kills with a request in flight", str(sum(o.in_flight != "none" for o in outcomes))],
        [
            "... of which applied whole / not at all",
            f"{sum(o.in_flight_applied is True for o in outcomes)} / "
            f"{sum(o.in_flight_applied is False for o in outcomes)}",
        ],
        ["live samples at the end", str(outcomes[-1].live_samples if outcomes else 0)],
        ["wall time", f"{elapsed:.0f} s"],
    ]
    report = table("Crash test (SQLite ledger, SIGKILL at random points)", ["measure", "result"], rows)
    print(report)
    (ROOT / "benchmarks" / "results" / "crash.md").write_text(report)


if __name__ == "__main__":
    main()

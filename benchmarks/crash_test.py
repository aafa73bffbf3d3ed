"""Crash test: SIGKILL the server and the CLI at random points during streams of changes, restart, check.

**Server** (SQLite or PostgreSQL ledger). Each iteration starts ``erasable serve``, streams
random requests from a client that remembers every sample it sent -- learns (with an
``Idempotency-Key``, some sent twice), forgets by ids, by subject and by class -- kills the
server with SIGKILL after a random delay, and at the next start checks:

* ``/verify`` is ok: the hash chain is unbroken, the statistics carry the last event's
  certificate, a refit of the stored samples reproduces it, the live ids are exactly those
  the log says were learned and not forgotten, and no residue of deleted rows is on disk;
* acknowledged ⊆ live ⊆ acknowledged ∪ in flight (for a forget in flight: acknowledged minus
  it ⊆ live ⊆ acknowledged), and the request in flight applied whole or not at all;
* the server's certificate equals that of a model fitted offline on exactly the live samples;
* no byte of any forgotten sample -- its id, its subject, its int16 row -- is in any file of
  the store's directory (SQLite; PostgreSQL keeps bytes until its own compaction, see
  docs/ledger.md, so that check is SQLite's);
* a learn in flight at the kill, retried with its idempotency key, is applied exactly once.

**CLI** (a model file). Each iteration runs ``erasable learn`` or ``erasable forget`` (by id,
subject or class) on one model file and kills it after a random delay up to its usual
duration; then the file must load, hold exactly the acknowledged samples or those plus the
change in flight, certify, and no file of the model's directory may hold a byte of a sample
whose forget returned.

Run: ``python benchmarks/crash_test.py --server-kills 700 --cli-kills 300 --postgres-kills 50``
(the tests run 2 server kills). ``--until 14:20`` (UTC) stops starting kills at that time, the
time shared among the runs in proportion to their expected length, and reports how many of
those asked for were done; the results file is rewritten as each run ends.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.model import Model, ModelConfig
from erasable.model_file import ModelFileError, load_model
from erasable.service.process import ServerProcess

DIM = 16
CONFIG = {"name": "crash", "input_dim": DIM, "scale_bits": 12, "feature_map": "identity"}
#: Live samples beyond which the client forgets more than it learns (keeps the ledger and the scans small).
LIVE_TARGET = 400
ID_PATTERN = re.compile(rb"(?:id|sj)-[0-9a-f]{16}")
#: Seconds a request may take: generous, the machine is shared (a timeout is reported, never taken for a crash).
TIMEOUT = 120.0
#: Seconds one kill took in the earlier runs (restart and checks included), to share a time limit among the runs.
SECONDS_PER_KILL = {"server": 5.0, "cli": 3.0, "postgresql": 7.0}


def fresh(prefix: str) -> str:
    """A name that is no substring of another (fixed width), so that a byte search for it is exact."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass
class Samples:
    """Every sample sent, which are live as far as the sender was told, and what was forgotten."""

    rng: np.random.Generator
    sent: dict[str, tuple[list[float], str, str]] = field(default_factory=dict)  # id -> vector, label, subject
    live: set[str] = field(default_factory=set)
    forgotten: set[str] = field(default_factory=set)

    def new_batch(self) -> list[str]:
        n = int(self.rng.integers(1, 20))
        vectors = self.rng.standard_normal((n, DIM))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        subjects = [fresh("sj") for _ in range(int(self.rng.integers(1, 4)))]  # never reused after a forget
        ids = [fresh("id") for _ in range(n)]
        for i, sample_id in enumerate(ids):
            label = str(int(self.rng.integers(0, 4)))
            self.sent[sample_id] = (vectors[i].tolist(), label, subjects[i % len(subjects)])
        return ids

    def pick_forget(self) -> tuple[str, list[Any], list[str]]:
        """A forget request on live samples: by ids, by subject or by class; and the ids it removes."""
        live = sorted(self.live)
        roll = self.rng.random()
        if roll < 0.6:
            ids = [
                str(i) for i in self.rng.choice(live, size=min(len(live), int(self.rng.integers(1, 6))), replace=False)
            ]
            return "ids", ids, ids
        if roll < 0.95 or len({self.sent[i][1] for i in live}) < 2:
            subject = self.sent[str(self.rng.choice(live))][2]
            return "subjects", [subject], [i for i in live if self.sent[i][2] == subject]
        label = self.sent[str(self.rng.choice(live))][1]
        return "classes", [label], [i for i in live if self.sent[i][1] == label]

    def apply(self, kind: str, ids: Iterable[str]) -> None:
        ids = set(ids)
        if kind == "learn":
            self.live |= ids
        else:
            self.live -= ids
            self.forgotten |= ids

    def certificate_of(self, ids: set[str], config: ModelConfig) -> str:
        model = Model(config)
        if ids:
            order = sorted(ids)
            vectors = np.array([self.sent[i][0] for i in order])
            model.learn(vectors, [self.sent[i][1] for i in order], ids=order, subjects=[self.sent[i][2] for i in order])
        return model.certificate()

    def forgotten_bytes(self, config: ModelConfig) -> tuple[set[bytes], dict[bytes, bytes]]:
        """The names (ids, and subjects with no live sample) and the int16 rows (keyed by their first 8 bytes)
        of the forgotten samples."""
        live_subjects = {self.sent[i][2] for i in self.live}
        names = {i.encode() for i in self.forgotten}
        names |= {self.sent[i][2].encode() for i in self.forgotten if self.sent[i][2] not in live_subjects}
        rows: dict[bytes, bytes] = {}
        if self.forgotten:
            order = sorted(self.forgotten)
            quantized = Model(config).quantize(np.array([self.sent[i][0] for i in order])).astype("<i2")
            rows = {row.tobytes()[:8]: row.tobytes() for row in quantized}
        return names, rows


def residues(directory: Path, names: set[bytes], rows: dict[bytes, bytes]) -> list[str]:
    """Which forgotten names or rows some file of ``directory`` still holds (``file: what``)."""
    found = []
    prefixes = np.array(sorted(int.from_bytes(p, "little") for p in rows), dtype=np.uint64)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.name}: {m.decode()}" for m in set(ID_PATTERN.findall(data)) if m in names]
        if len(data) < 8 or not len(prefixes):
            continue
        raw = np.frombuffer(data, dtype=np.uint8)
        windows = np.zeros(len(raw) - 7, dtype=np.uint64)
        for k in range(8):  # the little-endian uint64 at every byte offset
            windows |= raw[k : len(raw) - 7 + k].astype(np.uint64) << np.uint64(8 * k)
        for offset in np.flatnonzero(np.isin(windows, prefixes)).tolist():
            row = rows[data[offset : offset + 8]]
            if data[offset : offset + len(row)] == row:
                found.append(f"{path.name}: an int16 row at byte {offset}")
    return found


# -- the server ------------------------------------------------------------------------------


@dataclass
class InFlight:
    kind: str  # "learn" or "forget"
    ids: list[str]
    body: dict[str, Any]
    key: str | None = None


@dataclass
class Client:
    """Streams requests to the server and remembers what each acknowledged."""

    url: str
    token: str
    samples: Samples
    acknowledged: int = 0
    retries_checked: int = 0
    in_flight: InFlight | None = None

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **({"Idempotency-Key": key} if key else {})}

    def one_request(self, http: httpx.Client) -> None:
        rng, live = self.samples.rng, self.samples.live
        forget_share = 0.35 if len(live) < LIVE_TARGET else 0.7
        if live and rng.random() < forget_share:
            by, names, ids = self.samples.pick_forget()
            self.in_flight = InFlight("forget", ids, {by: names})
            response = http.post(f"{self.url}/v1/models/crash/forget", json={by: names}, headers=self.headers())
            if response.status_code not in (200, 202):  # 202: committed, residue erased later
                response.raise_for_status()
        else:
            ids = self.samples.new_batch()
            body = {"samples": [self.sample(i) for i in ids]}
            key = fresh("key") if rng.random() < 0.8 else None
            self.in_flight = InFlight("learn", ids, body, key)
            response = http.post(f"{self.url}/v1/models/crash/learn", json=body, headers=self.headers(key))
            response.raise_for_status()
            if key and rng.random() < 0.1:  # a client that did not see the answer sends it again
                again = http.post(f"{self.url}/v1/models/crash/learn", json=body, headers=self.headers(key))
                if again.json() != response.json():
                    raise AssertionError(f"an idempotent retry was answered differently: {again.text}")
                self.retries_checked += 1
        self.samples.apply(self.in_flight.kind, self.in_flight.ids)
        self.in_flight = None
        self.acknowledged += 1

    def sample(self, sample_id: str) -> dict[str, Any]:
        vector, label, subject = self.samples.sent[sample_id]
        return {"id": sample_id, "label": label, "subject": subject, "vector": vector}

    def stream(self, stop: threading.Event, failures: list[str]) -> None:
        """Send requests until the server dies (or ``stop`` is set)."""
        with httpx.Client(timeout=TIMEOUT) as http:
            while not stop.is_set():
                try:
                    self.one_request(http)
                except httpx.TransportError:
                    return
                except (httpx.HTTPStatusError, AssertionError) as error:
                    failures.append(str(error))
                    return


@dataclass(frozen=True)
class Outcome:
    requests_acknowledged: int
    in_flight: str
    in_flight_applied: bool | None
    verified: bool
    nothing_lost: bool
    live_samples: int
    #: No byte of a forgotten sample in the store's files (``None``: not checked, PostgreSQL).
    residue_free: bool | None = None
    #: The learn in flight, retried with its idempotency key, was applied exactly once (``None``: none to retry).
    retry_exactly_once: bool | None = None
    problems: tuple[str, ...] = ()
    #: False for a CLI command left to run to its end (checked all the same).
    killed: bool = True

    @property
    def survived(self) -> bool:
        return (
            self.verified
            and self.nothing_lost
            and self.residue_free is not False
            and self.retry_exactly_once is not False
            and not self.problems
        )


def crash_iterations(
    directory: Path, iterations: int, seed: int = 0, store: str | None = None, deadline: float | None = None
) -> list[Outcome]:
    """Kill the server ``iterations`` times on one ledger (SQLite in ``directory``, or the ``store`` URL),
    or fewer if the wall-clock time ``deadline`` (``time.time()``) passes first."""
    store_dir = directory / "store"
    store_dir.mkdir(parents=True, exist_ok=True)
    location = store or str(store_dir / "ledger.db")
    ledger = LedgerStore(location)
    token, _ = KeyRing(ledger).create(scopes=["admin"])
    ledger.close()
    client = Client("", token, Samples(np.random.default_rng(seed)))
    log = directory / "server.log"  # outside the store's directory, which is searched for residues
    outcomes: list[Outcome] = []
    server = ServerProcess(location, log=log).start(timeout=TIMEOUT)
    try:
        client.url = server.url
        httpx.post(f"{server.url}/v1/models", json=CONFIG, headers=client.headers(), timeout=TIMEOUT).raise_for_status()
        for _ in range(iterations):
            if deadline is not None and time.time() >= deadline:
                break
            before, failures = client.acknowledged, []
            stop = threading.Event()
            worker = threading.Thread(target=client.stream, args=(stop, failures))
            worker.start()
            time.sleep(float(client.samples.rng.uniform(0.05, 0.8)))
            server.kill()
            worker.join()
            server = ServerProcess(location, log=log).start(timeout=TIMEOUT)  # the restart, then the checks
            client.url = server.url
            acknowledged = client.acknowledged - before
            outcomes.append(_check(client, location, None if store else store_dir, acknowledged, failures))
            _progress("server", outcomes)
    finally:
        server.stop()
    return outcomes


def _check(client: Client, location: str, store_dir: Path | None, acknowledged: int, failures: list[str]) -> Outcome:
    problems = list(failures)
    verdict = httpx.get(f"{client.url}/v1/models/crash/verify", headers=client.headers(), timeout=TIMEOUT).json()
    info = httpx.get(f"{client.url}/v1/models/crash", headers=client.headers(), timeout=TIMEOUT).json()
    config = ModelConfig.from_dict(info["config"])
    samples, flight = client.samples, client.in_flight
    ledger = LedgerStore(location)
    try:
        live = set(ledger.load_model("crash").registry.ids)
    finally:
        ledger.close()
    applied: bool | None = None
    if flight is None:
        nothing_lost = live == samples.live
    else:
        after = samples.live | set(flight.ids) if flight.kind == "learn" else samples.live - set(flight.ids)
        nothing_lost = live in (samples.live, after)
        applied = nothing_lost and live == after and after != samples.live
        if nothing_lost and applied:
            samples.apply(flight.kind, flight.ids)
    if nothing_lost and info["certificate"] != samples.certificate_of(samples.live, config):
        problems.append("the certificate is not that of an offline refit of the live samples")
        nothing_lost = False
    residue_free = None
    if store_dir is not None:
        found = residues(store_dir, *samples.forgotten_bytes(config))
        residue_free = not found
        problems += found[:3]
    retried = None
    if flight is not None and flight.kind == "learn" and flight.key and nothing_lost:
        retry = httpx.post(
            f"{client.url}/v1/models/crash/learn", json=flight.body, headers=client.headers(flight.key), timeout=TIMEOUT
        )
        now = httpx.get(f"{client.url}/v1/models/crash", headers=client.headers(), timeout=TIMEOUT).json()
        expected = samples.live | set(flight.ids)
        retried = retry.status_code == 200 and now["certificate"] == samples.certificate_of(expected, config)
        if applied:  # it was committed before the kill: the retry is answered from the record, not applied again
            retried = retried and now["seq"] == info["seq"]
        samples.apply("learn", flight.ids)
    client.in_flight = None
    return Outcome(
        requests_acknowledged=acknowledged,
        in_flight="none" if flight is None else flight.kind,
        in_flight_applied=applied,
        verified=bool(verdict["ok"]),
        nothing_lost=nothing_lost,
        live_samples=len(samples.live),
        residue_free=residue_free,
        retry_exactly_once=retried,
        problems=tuple(problems),
    )


# -- the CLI ---------------------------------------------------------------------------------


def cli_iterations(directory: Path, iterations: int, seed: int = 0, deadline: float | None = None) -> list[Outcome]:
    """Kill ``erasable learn`` / ``erasable forget`` on one model file ``iterations`` times (fewer if the
    wall-clock time ``deadline`` passes first); see the module docstring."""
    model_dir, inputs = directory / "model", directory / "inputs"
    model_dir.mkdir(parents=True, exist_ok=True)
    inputs.mkdir(exist_ok=True)
    model_path = model_dir / "m.erasable"
    samples = Samples(np.random.default_rng(seed))
    first = samples.new_batch()
    started = time.monotonic()
    _run_cli(_learn_command(model_path, inputs, samples, first))
    samples.apply("learn", first)
    usual = [time.monotonic() - started]  # seconds an unkilled command took, to aim the kills over its whole life
    outcomes: list[Outcome] = []
    while sum(o.killed for o in outcomes) < iterations and (deadline is None or time.time() < deadline):
        if samples.live and samples.rng.random() < (0.4 if len(samples.live) < LIVE_TARGET else 0.7):
            by, names, ids = samples.pick_forget()
            option = {"ids": "--id", "subjects": "--subject", "classes": "--class"}[by]
            command = ["forget", str(model_path), *[x for name in names for x in (option, str(name))]]
            flight = InFlight("forget", ids, {})
        else:
            ids = samples.new_batch()
            command = _learn_command(model_path, inputs, samples, ids)
            flight = InFlight("learn", ids, {})
        # A quarter of the commands run to the end (their forgets are then acknowledged, and checked for residue).
        delay = float(samples.rng.uniform(0.0, 1.1 * float(np.median(usual)))) if samples.rng.random() < 0.75 else 600
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "erasable", *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        stderr = process.stderr.read().decode() if process.stderr else ""
        if process.returncode == 0:
            usual.append(time.monotonic() - started)
            samples.apply(flight.kind, flight.ids)
            flight = None  # acknowledged: its forget returned
        outcomes.append(_check_file(samples, model_path, model_dir, flight, process.returncode, stderr))
        _progress("cli", outcomes)
    return outcomes


def _progress(what: str, outcomes: list[Outcome]) -> None:
    """One line on stderr every 10 kills: a long run shows where it is."""
    kills = sum(o.killed for o in outcomes)
    if outcomes[-1].killed and kills % 10 == 0:
        print(f"{what}: {kills} kills, {sum(o.survived for o in outcomes)} / {len(outcomes)} survived", file=sys.stderr)


def _learn_command(model_path: Path, inputs: Path, samples: Samples, ids: list[str]) -> list[str]:
    batch = inputs / f"{ids[0]}.npz"  # outside the model's directory: it holds the vectors by design
    np.savez(
        batch,
        X=np.array([samples.sent[i][0] for i in ids]),
        y=np.array([samples.sent[i][1] for i in ids]),
        ids=np.array(ids),
        subjects=np.array([samples.sent[i][2] for i in ids]),
    )
    return ["learn", str(model_path), str(batch), "--width", "32", "--alpha", "1.0"]


def _run_cli(command: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "erasable", *command], check=True, capture_output=True)


def _check_file(
    samples: Samples, model_path: Path, model_dir: Path, flight: InFlight | None, code: int, stderr: str
) -> Outcome:
    problems = [] if code in (0, -signal.SIGKILL) else [f"the command failed ({code}): {stderr[-300:]}"]
    try:
        model = load_model(model_path)
    except ModelFileError as error:
        problems.append(f"the model file does not load: {error}")
        return Outcome(0, "cli", None, False, False, len(samples.live), None, None, tuple(problems), code != 0)
    live = set(model.registry.ids)
    verified = model.refit().certificate() == model.certificate()
    applied = None
    nothing_lost = live == samples.live
    if flight is not None:
        after = samples.live | set(flight.ids) if flight.kind == "learn" else samples.live - set(flight.ids)
        if live == after:
            nothing_lost, applied = True, True
            samples.apply(flight.kind, flight.ids)
        elif nothing_lost:
            applied = False
    found = residues(model_dir, *samples.forgotten_bytes(model.config))
    problems += found[:3]
    return Outcome(
        requests_acknowledged=int(code == 0),
        in_flight="none" if flight is None else f"cli {flight.kind}",
        in_flight_applied=applied,
        verified=verified,
        nothing_lost=nothing_lost and model.certificate() == samples.certificate_of(live, model.config),
        live_samples=len(samples.live),
        residue_free=not found,
        problems=tuple(problems),
        killed=code == -signal.SIGKILL,
    )


# -- the report ------------------------------------------------------------------------------


def summary(title: str, outcomes: list[Outcome], seconds: float, asked: int | None = None) -> list[list[str]]:
    survived = sum(o.survived for o in outcomes)
    kills = sum(o.killed for o in outcomes)
    done = str(kills) if asked is None or kills >= asked else f"{kills} (of {asked} asked: stopped at the time limit)"
    checked = [o for o in outcomes if o.residue_free is not None]
    retried = [o for o in outcomes if o.retry_exactly_once is not None]
    return [
        [f"**{title}**: kills (SIGKILL, then restart and check)", done],
        ["checks (after each kill, and after each command run to its end)", str(len(outcomes))],
        ["survived every check", f"{survived} / {len(outcomes)}"],
        ["requests acknowledged before the kills", str(sum(o.requests_acknowledged for o in outcomes))],
        [
            "kills with a change in flight: applied whole / not at all",
            f"{sum(o.in_flight_applied is True for o in outcomes)} / "
            f"{sum(o.in_flight_applied is False for o in outcomes)}",
        ],
        [
            "no byte of a forgotten sample in any file (ids, subjects, int16 rows)",
            f"{sum(bool(o.residue_free) for o in checked)} / {len(checked)} checks" if checked else "not checked",
        ],
        [
            "learns in flight retried with their idempotency key: applied exactly once",
            f"{sum(bool(o.retry_exactly_once) for o in retried)} / {len(retried)}" if retried else "none",
        ],
        ["wall time", f"{seconds:.0f} s"],
    ]


def main(argv: list[str] | None = None) -> None:
    from common import ROOT, table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-kills", type=int, default=700)
    parser.add_argument("--cli-kills", type=int, default=300)
    parser.add_argument("--postgres-kills", type=int, default=50, help="0 skips; needs PostgreSQL's binaries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--until", help="HH:MM (UTC, today): start no kill after it; the runs share the time")
    args = parser.parse_args(argv)
    started = time.time()
    limit = None
    if args.until:
        hours, minutes = (int(part) for part in args.until.split(":"))
        limit = datetime.now(UTC).replace(hour=hours, minute=minutes, second=0, microsecond=0).timestamp()
        if limit <= started:
            parser.error(f"--until {args.until} UTC has passed already")
    rows: list[list[str]] = []
    failures: list[str] = []
    runs = [("server, SQLite", args.server_kills, "server"), ("CLI, model file", args.cli_kills, "cli")]
    if args.postgres_kills:
        runs.append(("server, PostgreSQL", args.postgres_kills, "postgresql"))
    runs = [run for run in runs if run[1]]
    weights = [kills * SECONDS_PER_KILL[kind] for _, kills, kind in runs]
    results, report = ROOT / "benchmarks" / "results" / "crash.md", ""
    for index, (title, kills, kind) in enumerate(runs):
        # Each run ends by its share of the time limit, counted from the start: time a run leaves goes to the next.
        deadline = None if limit is None else started + (limit - started) * sum(weights[: index + 1]) / sum(weights)
        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            if kind == "cli":
                outcomes = cli_iterations(Path(directory), kills, args.seed, deadline)
            elif kind == "postgresql":
                sys.path.insert(0, str(ROOT))
                from tests.postgres_server import PostgresServer

                server = PostgresServer().start()
                try:
                    outcomes = crash_iterations(Path(directory), kills, args.seed, server.url(), deadline)
                finally:
                    server.stop()
            else:
                outcomes = crash_iterations(Path(directory), kills, args.seed, deadline=deadline)
            rows += summary(title, outcomes, time.perf_counter() - start, kills)
            failures += [f"{title}: {o}" for o in outcomes if not o.survived][:5]
            print(table(title, ["measure", "result"], rows[-8:]), file=sys.stderr)  # each run's, as it ends
        report = table("Crash test (SIGKILL at random points)", ["measure", "result"], rows)
        results.write_text(report + "".join(f"\n{failure}\n" for failure in failures))  # so far, if stopped later
    print(report)
    for failure in failures:
        print(failure)


if __name__ == "__main__":
    main()

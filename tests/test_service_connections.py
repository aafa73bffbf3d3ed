"""The real server against slow and numerous connections (issue 12, item 8): bounded, and each told why."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from erasable.ledger.keys import KeyRing  # noqa: E402
from erasable.ledger.store import LedgerStore  # noqa: E402
from erasable.service.process import ServerProcess  # noqa: E402

LIMIT = 20
HEAD_SECONDS = 1.5


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    store = LedgerStore(tmp_path / "ledger.db")
    token, _ = KeyRing(store).create(scopes=["admin"])
    store.close()
    options = ["--max-connections", str(LIMIT), "--header-timeout", str(HEAD_SECONDS), "--body-timeout", "2"]
    with ServerProcess(tmp_path / "ledger.db", options=options) as running:
        yield running, token


def dripper(server: ServerProcess) -> socket.socket:
    """A connection that sends the first bytes of a request head, and then nothing."""
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.sendall(b"GET /health HTTP/1.1\r\nHo")
    return connection


def answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(4096):
        received += chunk
    return received


def open_descriptors(server: ServerProcess) -> int:
    assert server.process is not None
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def test_connections_beyond_the_limit_are_refused_at_once(server: tuple[ServerProcess, str]) -> None:
    running, _ = server
    baseline = open_descriptors(running)
    held = [dripper(running) for _ in range(LIMIT - 2)]
    time.sleep(0.3)
    extra = [dripper(running) for _ in range(3 * LIMIT)]  # the attack: far more than the limit
    refused = [answer(c) for c in extra[5:]]
    assert all(r.startswith(b"HTTP/1.1 503") and b"Too many open connections" in r for r in refused), refused[:3]
    time.sleep(1.0)  # a refused connection lingers half-closed for 0.5 s
    assert open_descriptors(running) <= baseline + LIMIT + 2  # not one descriptor per attacking connection
    for c in held + extra:
        c.close()


def test_a_request_head_that_drips_is_cut_off_and_a_real_request_then_served(
    server: tuple[ServerProcess, str],
) -> None:
    running, token = server
    started = time.monotonic()
    held = [dripper(running) for _ in range(LIMIT)]
    busy = httpx.get(running.url + "/health", timeout=10)
    assert busy.status_code == 503  # a clear answer while the limit is taken, not a timeout
    answers = [answer(c) for c in held]
    waited = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
    assert HEAD_SECONDS - 0.2 < waited < HEAD_SECONDS + 5
    served = httpx.get(running.url + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert served.status_code == 200 and served.json() == []


def test_a_body_that_drips_is_cut_off(server: tuple[ServerProcess, str]) -> None:
    running, token = server
    connection = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    head = f"POST /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
    connection.sendall(head.encode() + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    started = time.monotonic()
    received = answer(connection)
    assert received.startswith(b"HTTP/1.1 408") and 1.5 < time.monotonic() - started < 8, received
    keep_alive = httpx.Client(timeout=10)
    for _ in range(3):  # a keep-alive client between requests is not cut off by the head deadline
        assert keep_alive.get(running.url + "/health").status_code == 200
        time.sleep(0.5)
    keep_alive.close()

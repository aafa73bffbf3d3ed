"""Run ``erasable serve`` in a child process: for crash tests, concurrency tests and benchmarks.

The server binds 127.0.0.1 on a free port; :meth:`ServerProcess.start` waits until
``/health`` answers, :meth:`ServerProcess.kill` sends SIGKILL (a crash, not a shutdown),
:meth:`ServerProcess.stop` asks politely first.

>>> import tempfile, os, httpx
>>> with ServerProcess(os.path.join(tempfile.mkdtemp(), "ledger.db")) as server:  # doctest: +SKIP
...     httpx.get(server.url + "/health").json()["status"]
'ok'
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["ServerProcess"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``python -m erasable serve --store STORE`` on 127.0.0.1, with its output in a log file."""

    def __init__(
        self, store: str | Path, *, port: int | None = None, log: str | Path | None = None, options: Sequence[str] = ()
    ) -> None:
        self.store = str(store)
        self.options = list(options)  # more ``erasable serve`` options, e.g. ["--max-connections", "20"]
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log) if log else Path(f"{self.store}.server.log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        command = [sys.executable, "-m", "erasable", "serve", "--store", self.store, "--port", str(self.port)]
        command += ["--log-level", "warning", *self.options]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The server exited with {self.process.returncode}; see {self.log}.")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"The server did not answer within {timeout} s; see {self.log}.")

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is, as in a power cut of the process."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

"""A throwaway PostgreSQL server for the tests: a real server, started and removed by the test session.

:class:`PostgresServer` runs ``initdb`` into a fresh temporary directory and starts the server with
``pg_ctl``, listening only on a Unix socket in that directory (``listen_addresses = ''``: no TCP port, so
parallel pytest-xdist workers, each with a server of its own, cannot collide). PostgreSQL refuses to run as
root, so as root the server binaries run as the ``postgres`` system user (via ``runuser``), which then owns
the directory. Durability is switched off (``fsync = off``): the data is thrown away anyway.

The binaries come from Debian's ``postgresql`` package (``scripts/ensure_postgres.sh`` installs it when
missing); :func:`find_bin_dir` looks on ``PATH`` and then in ``/usr/lib/postgresql/<version>/bin``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

PG_LIB_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # the system user the server runs as when we are root
SUPERUSER = "postgres"  # the database superuser initdb creates; connections use trust authentication
DEFAULT_DATABASE = "erasable"
PORT = 5432  # only names the socket file (.s.PGSQL.5432); each server has its own socket directory
_MAX_SOCKET_PATH = 100  # Unix socket paths are limited to about 107 bytes


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited server waiting to be reaped by init)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to signal 0, which cannot tell zombies apart
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing, or the server could not be started."""


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>/bin``: the version as a tuple of numbers."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``PATH`` first, then the newest Debian version."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        directory = Path(initdb).resolve().parent
        if (directory / "pg_ctl").is_file():
            return directory
    candidates = [d for d in PG_LIB_ROOT.glob("*/bin") if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    return max(candidates, key=_version_key, default=None)


def _is_root() -> bool:
    return os.geteuid() == 0


def _base_dir() -> str:
    """Where to make the temporary directory: short enough for a socket path, reachable by the server user."""
    base = tempfile.gettempdir()
    if len(base) > _MAX_SOCKET_PATH - 40:
        return "/tmp"
    if _is_root():  # the server user must be able to traverse every parent directory
        for parent in [Path(base), *Path(base).parents]:
            if not parent.stat().st_mode & 0o001:
                return "/tmp"
    return base


def _tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, or an empty string when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class PostgresServer:
    """A PostgreSQL server in a temporary directory, reachable only through a Unix socket.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. :meth:`stop` also deletes the directory.
    """

    def __init__(self, bin_dir: Path | None = None, database: str = DEFAULT_DATABASE) -> None:
        found = bin_dir if bin_dir is not None else find_bin_dir()
        if found is None:
            raise PostgresUnavailable(
                f"PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in {PG_LIB_ROOT}/*/bin "
                "(scripts/ensure_postgres.sh installs Debian's postgresql package)"
            )
        self.bin_dir = found
        self.database = database
        self.directory: Path | None = None
        self.startup_seconds: float | None = None
        self._running = False

    # -- paths -------------------------------------------------------------------------------------------
    def _dir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("the server has not been started")
        return self.directory

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._dir() / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory holding the server's Unix socket (the ``host`` of a connection)."""
        return self._dir()

    @property
    def log_file(self) -> Path:
        """The server log."""
        return self._dir() / "server.log"

    # -- running the binaries ----------------------------------------------------------------------------
    def _run(self, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the ``postgres`` user when we are root; raise on failure."""
        command = [str(self.bin_dir / program), *args]
        if _is_root():
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            command, cwd=self._dir(), env=env, capture_output=True, text=True, timeout=timeout, check=True
        )

    def start(self) -> PostgresServer:
        """initdb a fresh cluster, start it and create :attr:`database`; raise :class:`PostgresUnavailable`."""
        begun = time.perf_counter()
        self.directory = Path(tempfile.mkdtemp(prefix="erasable-pg-", dir=_base_dir()))
        try:
            if _is_root():
                try:
                    user = pwd.getpwnam(SERVER_USER)
                except KeyError:
                    raise PostgresUnavailable(f"running as root and there is no {SERVER_USER!r} system user") from None
                os.chown(self.directory, user.pw_uid, user.pw_gid)
            self._run(
                "initdb", "--pgdata", str(self.data_dir), "--username", SUPERUSER, "--auth", "trust",
                "--encoding", "UTF8", "--locale", "C", "--no-sync",
            )  # fmt: skip
            settings = {
                "listen_addresses": "''",
                "unix_socket_directories": f"'{self.socket_dir}'",
                "port": str(PORT),
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "50",
                "shared_buffers": "'32MB'",
            }
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("\n# erasable tests\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
            self._run("pg_ctl", "start", "--wait", "--timeout", "60", "--pgdata", str(self.data_dir),
                      "--log", str(self.log_file), timeout=90)  # fmt: skip
            self._running = True
            self._execute(f'CREATE DATABASE "{self.database}"')
        except Exception as error:  # OSError, subprocess errors, psycopg errors, a missing psycopg ...
            detail = self._describe(error)
            self.stop()
            raise PostgresUnavailable(detail) from error
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - begun
        return self

    def _describe(self, error: BaseException) -> str:
        """A one-paragraph account of a failed start: the error, the program's output and the log tail."""
        parts = [f"PostgreSQL test server failed to start: {error}"]
        if isinstance(error, subprocess.CalledProcessError | subprocess.TimeoutExpired):
            streams = [s.decode(errors="replace") if isinstance(s, bytes) else s for s in (error.stdout, error.stderr)]
            output = "".join(s for s in streams if s).strip()
            if output:
                parts.append(f"output:\n{output[-2000:]}")
        if self.directory is not None:
            log = _tail(self.log_file)
            if log:
                parts.append(f"server log tail:\n{log}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the server (if running) and delete its directory. Safe to call more than once."""
        if self.directory is None:
            return
        if self._running or (self.data_dir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "stop", "--wait", "--mode", "immediate", "--pgdata", str(self.data_dir),
                          timeout=60)  # fmt: skip
            except (OSError, subprocess.SubprocessError):
                self._kill_postmaster()
        self._running = False
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def _kill_postmaster(self) -> None:
        """Last resort when ``pg_ctl stop`` failed: SIGQUIT the postmaster named in ``postmaster.pid``."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)
            for _ in range(100):
                if not process_running(pid):
                    return
                time.sleep(0.05)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # -- databases -----------------------------------------------------------------------------------------
    def url(self, database: str | None = None) -> str:
        """A SQLAlchemy URL (driver psycopg 3) for a database on this server, over its Unix socket."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database or self.database}?host={self.socket_dir}&port={PORT}"

    def _execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE), as the superuser."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir), port=PORT, user=SUPERUSER, dbname="postgres", autocommit=True, connect_timeout=10
        ) as connection:
            connection.execute(sql.encode())

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name unless given) and return its name."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"unsafe database name {name!r}")
        self._execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting any sessions still attached to it."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"unsafe database name {name!r}")
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

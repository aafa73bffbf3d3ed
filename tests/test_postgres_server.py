"""The throwaway PostgreSQL server the store tests run against (tests/postgres_server.py) really works."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.postgres_server import PostgresServer, process_running


def _scalar(url: str, sql: str) -> object:
    """Run one query on a fresh engine and return its single value."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def _tables(url: str) -> list[str]:
    """The table names of the database at ``url``."""
    engine = sa.create_engine(url)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def other_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A second fresh database, made the same way as ``postgres_database_url``."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def test_url_is_a_unix_socket_url(postgres_server: PostgresServer, postgres_url: str) -> None:
    url = sa.make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.host is None
    assert url.database == "erasable"
    assert url.query["host"] == str(postgres_server.socket_dir)
    assert (postgres_server.socket_dir / ".s.PGSQL.5432").is_socket()


def test_server_is_real_and_socket_only(postgres_url: str) -> None:
    version = str(_scalar(postgres_url, "SHOW server_version"))
    assert int(version.split(".")[0]) >= 12
    assert "PostgreSQL" in str(_scalar(postgres_url, "SELECT version()"))
    assert _scalar(postgres_url, "SHOW listen_addresses") == ""
    assert _scalar(postgres_url, "SELECT current_database()") == "erasable"
    assert _scalar(postgres_url, "SELECT inet_server_addr()") is None  # connected over the Unix socket


def test_bytea_round_trip(postgres_database_url: str) -> None:
    metadata = sa.MetaData()
    blobs = sa.Table(
        "blobs", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("data", sa.LargeBinary)
    )
    payload = bytes(range(256)) + os.urandom(4096) + b"\x00"
    engine = sa.create_engine(postgres_database_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(blobs.insert(), [{"id": 1, "data": payload}, {"id": 2, "data": b""}])
        with engine.connect() as connection:
            rows = dict(connection.execute(sa.select(blobs.c.id, blobs.c.data)).all())
        assert rows == {1: payload, 2: b""}
        assert isinstance(rows[1], bytes)
        column = {c["name"]: c for c in sa.inspect(engine).get_columns("blobs")}["data"]
        assert isinstance(column["type"], sa.LargeBinary)  # BYTEA
    finally:
        engine.dispose()


def test_fresh_databases_are_isolated(postgres_database_url: str, other_database_url: str) -> None:
    assert postgres_database_url != other_database_url
    assert _tables(postgres_database_url) == []
    assert _tables(other_database_url) == []
    engine = sa.create_engine(postgres_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE only_here (x integer)"))
    finally:
        engine.dispose()
    assert _tables(postgres_database_url) == ["only_here"]
    assert _tables(other_database_url) == []


def test_drop_disconnects_open_sessions(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()
    engine = sa.create_engine(postgres_server.url(name))
    connection = engine.connect()
    connection.execute(sa.text("SELECT 1"))
    postgres_server.drop_database(name)
    try:
        databases = _scalar(
            postgres_server.url("postgres"), f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        )
        assert databases == 0
    finally:
        connection.invalidate()
        engine.dispose()


def test_stop_removes_server_and_directory(postgres_server: PostgresServer) -> None:
    with PostgresServer(postgres_server.bin_dir) as server:
        directory = server.socket_dir
        pid = int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])
        assert process_running(pid)
        assert server.startup_seconds is not None
        assert _scalar(server.url(), "SELECT 1") == 1
    assert not directory.exists()
    assert not process_running(pid)

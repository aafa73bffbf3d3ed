"""Shared fixtures: small synthetic data and the location of the real shared data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from erasable.model import Model, ModelConfig
from tests.postgres_server import PostgresServer, PostgresUnavailable

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BANKING77 = SHARED_DATA / "banking77" / "all-MiniLM-L6-v2.npz"
HWU64 = SHARED_DATA / "hwu64" / "all-MiniLM-L6-v2.npz"


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Random unit-norm rows, like sentence embeddings."""
    x = rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def relu_config(dim: int = 6, width: int = 24, **kwargs: object) -> ModelConfig:
    feature_map = {"kind": "random_relu", "input_dim": dim, "width": width, "seed": 3, "shift": 1}
    return ModelConfig(input_dim=dim, scale_bits=13, feature_map=feature_map, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def small_model(rng: np.random.Generator) -> Model:
    """A model with 60 samples of 3 classes, ids s0..s59, subjects u0..u5."""
    model = Model(relu_config(alpha=0.1))
    x = unit_rows(rng, 60, 6)
    labels = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 60)]
    model.learn(x, labels, ids=[f"s{i}" for i in range(60)], subjects=[f"u{i % 6}" for i in range(60)])
    return model


@pytest.fixture
def banking77() -> dict[str, np.ndarray]:
    if not BANKING77.exists():
        pytest.skip(f"shared data not found at {BANKING77}")
    with np.load(BANKING77) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this session (one per xdist worker), on a Unix socket only; removed after.

    Skipped with the reason (and the server log tail) when the binaries are missing or the server fails to
    start; with ``ERASABLE_REQUIRE_POSTGRES=1`` in the environment that is a failure instead.
    """
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as error:
        if os.environ.get("ERASABLE_REQUIRE_POSTGRES", "") not in ("", "0"):
            pytest.fail(str(error), pytrace=False)
        pytest.skip(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session's database, e.g. ``postgresql+psycopg://postgres@/erasable?host=/tmp/…``."""
    return postgres_server.url()


@pytest.fixture
def postgres_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database for this test alone; dropped (connections and all) after it."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)

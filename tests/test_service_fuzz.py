"""Fuzz the OpenAPI spec with schemathesis: whatever the request, the service never answers 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from schemathesis.checks import not_a_server_error  # noqa: E402

from erasable.ledger.keys import KeyRing  # noqa: E402
from erasable.ledger.store import LedgerStore  # noqa: E402
from erasable.model import ModelConfig  # noqa: E402
from erasable.service.app import create_app  # noqa: E402


def _app_with_a_model() -> tuple[object, str]:
    """An app over a fresh ledger holding model ``m`` (4-d vectors, 12 samples), and an admin token."""
    store = LedgerStore(Path(tempfile.mkdtemp(prefix="erasable-fuzz-")) / "ledger.db")
    token, _ = KeyRing(store).create(scopes=["admin"])
    model = store.create_model("m", ModelConfig(input_dim=4))
    x = np.random.default_rng(0).standard_normal((12, 4))
    store.commit("m", model.plan_learn(x / np.linalg.norm(x, axis=1, keepdims=True), ["a", "b", "c"] * 4))
    return create_app(store, max_body=2**20), token


APP, TOKEN = _app_with_a_model()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])

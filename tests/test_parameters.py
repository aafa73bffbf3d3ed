"""One default everywhere: the library, ``erasable learn`` and ``POST /v1/models`` build the same model from nothing."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from erasable.cli import app
from erasable.estimator import ErasableClassifier
from erasable.model_file import load_model
from erasable.parameters import DEFAULTS, PARAMETERS
from tests.conftest import unit_rows

DIM = 8


def test_the_estimator_declares_every_parameter_with_the_table_default() -> None:
    signature = inspect.signature(ErasableClassifier.__init__).parameters
    for parameter in PARAMETERS:
        assert signature[parameter.name].default == parameter.default, parameter.name


def test_library_cli_and_service_build_the_same_model_from_nothing(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from erasable.ledger.store import LedgerStore
    from tests.test_service import Api

    library = ErasableClassifier().model_config(DIM).to_dict()

    vectors = tmp_path / "train.npz"
    rows = unit_rows(np.random.default_rng(0), 6, DIM)
    np.savez(vectors, X=rows, y=np.array(["a", "b", "c"] * 2))
    result = CliRunner().invoke(app, ["learn", str(tmp_path / "m.erasable"), str(vectors)])
    assert result.exit_code == 0, result.output
    cli = load_model(tmp_path / "m.erasable").config.to_dict()

    store = LedgerStore(tmp_path / "ledger.db")
    try:
        api = Api(store)
        assert api.call("POST", "/v1/models", json={"name": "m", "input_dim": DIM}).status_code == 201
        service = api.call("GET", "/v1/models/m").json()["config"]
    finally:
        store.close()

    assert library == cli == service
    assert library["feature_map"]["kind"] == DEFAULTS["feature_map"] == "random_relu"
    assert library["feature_map"]["width"] == DEFAULTS["width"]


def test_the_cli_and_the_service_build_models_without_the_estimator(tmp_path: Path) -> None:
    """They build their configurations with ``ModelConfig.from_parameters``: importing scikit-learn (the
    estimator's base) cost ``erasable learn`` and a server's start or first model 1-1.7 s."""
    pytest.importorskip("fastapi")
    vectors = tmp_path / "train.npz"
    np.savez(vectors, X=unit_rows(np.random.default_rng(0), 6, DIM), y=np.array(["a", "b", "c"] * 2))
    script = f"""
import sys
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from erasable.cli import app
from erasable.ledger.keys import KeyRing
from erasable.ledger.store import LedgerStore
from erasable.service.app import create_app
result = CliRunner().invoke(app, ["learn", {str(tmp_path / "m.erasable")!r}, {str(vectors)!r}])
assert result.exit_code == 0, result.output
store = LedgerStore({str(tmp_path / "ledger.db")!r})
token = KeyRing(store).create(scopes=["admin"])[0]
created = TestClient(create_app(store)).post(
    "/v1/models", json={{"name": "m", "input_dim": {DIM}}}, headers={{"Authorization": "Bearer " + token}}
)
assert created.status_code == 201, created.text
store.close()
print(sorted(name for name in sys.modules if name.startswith("sklearn") or name == "erasable.estimator"))
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

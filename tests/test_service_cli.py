"""The service's commands: keys made, listed and revoked; a ledger verified; serve's help."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa
from typer.testing import CliRunner

from erasable.cli import app
from erasable.ledger.keys import KeyRing
from erasable.ledger.schema import samples
from erasable.ledger.store import LedgerStore
from erasable.model import ModelConfig

runner = CliRunner()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    store = str(tmp_path / "ledger.db")
    made = runner.invoke(app, ["keys", "create", "--store", store, "--model", "bank", "--scope", "predict"])
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    key = KeyRing(LedgerStore(store)).authenticate(token)
    assert key is not None and key.allows("predict", "bank") and not key.allows("learn", "bank")
    listed = runner.invoke(app, ["keys", "list", "--store", store])
    assert key.key_id in listed.output and token.split("_")[-1] not in listed.output  # never the secret
    assert runner.invoke(app, ["keys", "revoke", key.key_id, "--store", store]).exit_code == 0
    assert KeyRing(LedgerStore(store)).authenticate(token) is None
    refused = runner.invoke(app, ["keys", "create", "--store", store, "--scope", "everything"])
    assert refused.exit_code == 2 and "Scopes must be" in refused.output


def test_ledger_verify_reports_tampering(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = LedgerStore(path)
    model = store.create_model("bank", ModelConfig(input_dim=2, scale_bits=8))
    store.commit("bank", model.plan_learn(np.array([[0.5, 0.1], [0.1, 0.5]]), ["a", "b"], ids=["x", "y"]))
    ok = runner.invoke(app, ["ledger", "verify", "bank", "--store", str(path)])
    assert ok.exit_code == 0 and "verified" in ok.output
    with store.engine.begin() as connection:
        connection.execute(sa.delete(samples).where(samples.c.id == "x"))
    bad = runner.invoke(app, ["ledger", "verify", "bank", "--store", str(path)])
    assert bad.exit_code == 1 and "verification failed" in bad.output
    missing = runner.invoke(app, ["ledger", "verify", "nope", "--store", str(path)])
    assert missing.exit_code == 2 and "No model named" in missing.output


def test_serve_help_says_it_binds_locally() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "127.0.0.1" in result.output


def test_keys_can_be_made_to_expire(tmp_path: Path) -> None:
    store = str(tmp_path / "ledger.db")
    made = runner.invoke(app, ["keys", "create", "--store", store, "--scope", "predict", "--expires-in-days", "30"])
    assert made.exit_code == 0 and "expires" in made.output, made.output
    key = KeyRing(LedgerStore(store)).authenticate(made.output.strip().splitlines()[-1])
    assert key is not None and key.expires_at is not None and not key.expired()
    listed = runner.invoke(app, ["keys", "list", "--store", store, "--json"])
    assert listed.exit_code == 0 and '"expires_at": "20' in listed.output and '"expired": false' in listed.output
    refused = runner.invoke(app, ["keys", "create", "--store", store, "--scope", "predict", "--expires-in-days", "0"])
    assert refused.exit_code == 2

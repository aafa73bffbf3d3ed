"""Model files and ledgers interchange (issue 14, item 13): ``erasable ledger import`` and ``export`` keep the
certificate (and the steering) on both sides; the imported model verifies; an import that fails leaves nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from erasable.ledger.store import LedgerStore
from erasable.model_file import load_model, read_container
from tests.test_cli import assert_user_error, learned, make_data, run
from tests.test_cli_json import document


def test_import_then_export_keeps_the_certificate(tmp_path: Path) -> None:
    X, y = make_data(50)
    ids, subjects = np.array([f"s{i}" for i in range(50)]), np.array(["ann", "bob", "cy"] * 16 + ["ann", "bob"])
    model = learned(tmp_path, "bank", X, y, ids=ids, subjects=subjects)
    assert run("forget", model, "--id", "s3").exit_code == 0
    assert run("steer", model, "--subject", "bob=0.5").exit_code == 0
    original = load_model(model)
    store = tmp_path / "models.db"
    imported = document("ledger", "import", model, "--store", store)
    assert imported == {"samples": 49, "certificate": original.certificate()}
    ledger = LedgerStore(store)
    held = ledger.load_model("bank")
    assert held.certificate() == original.certificate() and held.steering == original.steering
    assert sorted(held.registry.ids) == sorted(original.registry.ids) and ledger.verify("bank").ok
    assert run("ledger", "verify", "bank", "--store", store).exit_code == 0
    out = tmp_path / "back.erasable"
    exported = document("ledger", "export", "bank", out, "--store", store)
    assert exported["certificate"] == original.certificate() == load_model(out).certificate()
    assert load_model(out).steering == original.steering
    assert run("certify", out).exit_code == 0
    assert_user_error(run("ledger", "export", "bank", out, "--store", store), "exists")


def test_an_import_that_fails_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    X, y = make_data(20)
    model = learned(tmp_path, "bank", X, y)
    store = tmp_path / "models.db"
    assert "ridge.weights" in read_container(model)[1]  # a primal head, which solving would factor
    assert run("ledger", "import", model, "--store", store).exit_code == 0
    before = LedgerStore(store).load_model("bank").certificate()
    assert_user_error(run("ledger", "import", model, "--store", store), "bank")  # the name is taken
    assert LedgerStore(store).load_model("bank").certificate() == before
    (tmp_path / "broken.erasable").write_bytes(model.read_bytes()[:-10])
    assert_user_error(run("ledger", "import", tmp_path / "broken.erasable", "--store", store))
    assert LedgerStore(store).model_names() == ["bank"]


def test_an_imported_model_file_brings_its_ridge_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's canonical ridge head goes into the ledger: a server loading it predicts without solving."""
    from erasable.heads import ridge as ridge_module

    X, y = make_data(50)
    model = learned(tmp_path, "bank", X, y)
    store = tmp_path / "models.db"
    assert "ridge.weights" in read_container(model)[1]  # a primal head, which solving would factor
    assert run("ledger", "import", model, "--store", store).exit_code == 0

    def no_solve(*args: object, **kwargs: object) -> None:
        raise AssertionError("the ridge system was factored although the ledger keeps the head")

    monkeypatch.setattr(ridge_module.PenalizedGram, "cholesky", no_solve)
    held = LedgerStore(store).load_model("bank")
    assert np.array_equal(held.decision_function(X[:5]), load_model(model).decision_function(X[:5]))

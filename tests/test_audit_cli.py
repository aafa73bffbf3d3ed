"""``erasable audit``: a forget request (or one already served) checked against a refit, written as a report."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from erasable.cli import app
from erasable.model_file import load_model
from tests.test_cli import ids_and_subjects, learned, make_data, run, write_npz

pytest.importorskip("matplotlib")
runner = CliRunner()


@pytest.fixture
def model_and_test(tmp_path: Path) -> tuple[Path, Path]:
    X, y = make_data(120, seed=0)
    ids, subjects = ids_and_subjects(120)
    model_path = learned(tmp_path, "m", X, y, ids=ids, subjects=subjects)
    X_test, y_test = make_data(60, seed=1)
    return model_path, write_npz(tmp_path / "test.npz", X_test, y_test)


def test_audit_of_a_subject_request_writes_the_report(tmp_path: Path, model_and_test: tuple[Path, Path]) -> None:
    model_path, test_path = model_and_test
    before = load_model(model_path).certificate()
    result = run("audit", model_path, "--subject", "alice", "--test", test_path, "--out", tmp_path / "audit")
    assert result.exit_code == 0, result.output
    assert "certificates EQUAL" in result.output
    assert load_model(model_path).certificate() == before  # the audit does not change the model
    report = (tmp_path / "audit" / "report.md").read_text()
    assert "30 samples forgotten, 120 -> 90 samples" in report
    assert "ledger hash chain not checked" in report
    for name in ("accuracy.png", "mia.png", "report.html"):
        assert (tmp_path / "audit" / name).stat().st_size > 0


def test_audit_of_an_already_served_forget(tmp_path: Path, model_and_test: tuple[Path, Path]) -> None:
    model_path, test_path = model_and_test
    X, y = make_data(120, seed=0)
    assert run("forget", model_path, "--id", "s0", "--id", "s5").exit_code == 0
    forgotten = write_npz(tmp_path / "forgotten.npz", X[[0, 5]], y[[0, 5]])
    result = run("audit", model_path, "--forgotten", forgotten, "--test", test_path, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "2 samples forgotten, 120 -> 118 samples" in (tmp_path / "a" / "report.md").read_text()


def test_audit_refuses_a_request_and_forgotten_samples_together(
    tmp_path: Path, model_and_test: tuple[Path, Path]
) -> None:
    model_path, test_path = model_and_test
    result = run(
        "audit", model_path, "--id", "s1", "--forgotten", test_path, "--test", test_path, "--out", tmp_path / "a"
    )
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_audit_of_unknown_ids_is_a_user_error(tmp_path: Path, model_and_test: tuple[Path, Path]) -> None:
    model_path, test_path = model_and_test
    result = run("audit", model_path, "--id", "nope", "--test", test_path, "--out", tmp_path / "a")
    assert result.exit_code == 2
    assert "nope" in result.stderr
    assert not (tmp_path / "a").exists()


def test_audit_help_is_listed() -> None:
    assert "audit" in runner.invoke(app, ["--help"]).output


def test_audit_of_a_model_in_a_ledger_verifies_the_ledger(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from erasable.ledger.schema import events
    from erasable.ledger.store import LedgerStore
    from erasable.model import ModelConfig

    X, y = make_data(120, seed=0)
    ids, subjects = ids_and_subjects(120)
    store = LedgerStore(tmp_path / "ledger.db")
    model = store.create_model("bank", ModelConfig(input_dim=X.shape[1], scale_bits=8))
    store.commit("bank", model.plan_learn(X, y, ids=ids, subjects=subjects))
    X_test, y_test = make_data(60, seed=1)
    test_path = write_npz(tmp_path / "test.npz", X_test, y_test)
    command = ["audit", "bank", "--store", tmp_path / "ledger.db", "--subject", "alice", "--test", test_path]
    result = run(*command, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "ledger hash chain verified (2 events)" in (tmp_path / "a" / "report.md").read_text()
    assert store.load_model("bank").count == 120  # the audit serves the request on a copy

    with store.engine.begin() as connection:  # rewrite history
        forged = sa.func.replace(events.c.body, '"count": 120', '"count": 121')
        connection.execute(sa.update(events).where(events.c.seq == 2).values(body=forged))
    result = run(*command, "--out", tmp_path / "b")
    assert result.exit_code == 1
    assert "BROKEN" in (tmp_path / "b" / "report.md").read_text()

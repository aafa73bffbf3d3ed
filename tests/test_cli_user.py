"""The command line as a user meets it (issue 14, items 6-8): commands that read a ledger refuse a missing one,
flags that look like flags, ``--output -``, ``forget`` by ids and an ids file or by class, one error style,
progress lines off a terminal, and the penalty GCV chose in ``info``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from erasable import integer_gram, terminal
from erasable.model_file import load_model
from tests.test_cli import assert_user_error, learned, make_data, run, write_npz


def option_row(line: str, option: str) -> bool:
    """Whether ``line`` is the row of ``option`` in a help panel (``│ * --scope ...``)."""
    return line.startswith("│") and line.lstrip("│ *").startswith(option + " ")


@pytest.mark.parametrize(
    "command", [["keys", "list"], ["keys", "revoke", "k1"], ["ledger", "verify", "bank"], ["ledger", "compact"]]
)
def test_commands_that_read_a_ledger_refuse_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_user_error(run(*command, "--store", "typo.db"), "No ledger at typo.db")
    assert_user_error(run(*command), "No ledger at erasable.db")  # the default --store
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_keys_create_makes_the_ledger_and_needs_a_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = run("keys", "create", "--store", "new.db")
    assert missing.exit_code == 2 and "Missing option '--scope'" in missing.output
    assert not (tmp_path / "new.db").exists()
    help_text = run("keys", "create", "--help").stdout
    scope_line = next(line for line in help_text.splitlines() if option_row(line, "--scope"))
    assert "*" in scope_line  # marked required
    assert run("keys", "create", "--store", "new.db", "--scope", "admin").exit_code == 0
    assert run("keys", "list", "--store", "new.db").exit_code == 0
    assert_user_error(run("keys", "revoke", "nope", "--store", "new.db"), "nope")  # "Error:", like every command


def test_flags_show_no_value_in_help() -> None:
    lines = run("predict", "--help").stdout.splitlines()
    proba = next(line for line in lines if option_row(line, "--proba"))
    assert "<bool>" not in proba
    for group in (["--help"], ["keys", "--help"], ["ledger", "--help"]):
        assert "<bool>" not in run(*group).stdout  # --version, --help of the groups too
    top_k = next(line for line in lines if option_row(line, "--top-k"))
    assert "<int range>" in top_k  # options that take a value keep its type


def test_output_dash_writes_the_csv_to_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    X, y = make_data(40)
    model = learned(tmp_path, "m", X, y)
    result = run("predict", model, write_npz(tmp_path / "q.npz", X[:3], y[:3]), "--output", "-", "--proba")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "id,prediction,probability,ood_score"
    assert len(result.stdout.splitlines()) == 4
    assert not (tmp_path / "-").exists()


def test_forget_by_ids_and_an_ids_file_together_and_by_class(tmp_path: Path) -> None:
    X, y = make_data(40)
    model = learned(tmp_path, "m", X, y, ids=np.array([f"s{i}" for i in range(40)]))
    (tmp_path / "ids.txt").write_text("s1\ns2\n")
    both = run("forget", model, "--id", "s0", "--id", "s1", "--ids-file", tmp_path / "ids.txt")
    assert both.exit_code == 0, both.output
    assert "Forgot 3 samples" in both.stdout
    by_class = run("forget", model, "--class", "a")
    assert by_class.exit_code == 0, by_class.output
    assert load_model(model).classes == ("b", "c")
    assert_user_error(run("forget", model, "--class", "zebra"), "No class 'zebra'")
    assert_user_error(run("forget", model, "--class", "b", "--id", "s5"), "--class cannot be combined")


def test_long_work_prints_progress_lines_off_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = make_data(40)
    quick = run("learn", tmp_path / "quick.erasable", write_npz(tmp_path / "d.npz", X, y), "--width", "32")
    assert quick.exit_code == 0 and quick.stderr == ""  # short work: nothing
    monkeypatch.setattr(terminal, "PLAIN_EVERY", 0.0)  # every step counts as long
    slow = run("learn", tmp_path / "slow.erasable", tmp_path / "d.npz", "--width", "32")
    assert slow.exit_code == 0, slow.output
    assert "Learning: 40/40 (100%)" in slow.stderr
    assert "Saving the model" in slow.stderr and "\x1b[" not in slow.stderr  # plain lines, no bar


def test_info_shows_the_penalty_gcv_chose(tmp_path: Path) -> None:
    X, y = make_data(40)
    model = learned(tmp_path, "m", X, y)
    chosen = load_model(model).gcv_alpha()
    assert chosen is not None
    shown = run("info", model)
    assert shown.exit_code == 0
    line = next(line for line in shown.stdout.splitlines() if "alpha chosen by GCV" in line)
    assert f"{chosen:.6g}" in line


def test_learn_writes_the_same_file_whichever_kernel_sums_the_gram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int8 Gram (ONNX Runtime) and the float path it falls back to (ERASABLE_INTEGER_GRAM=0, a forked
    child) sum the same integers: ``erasable learn`` writes byte-identical files either way."""
    X, y = make_data(700)  # more than SMALL_BATCH rows: the batch's Gram goes through the accumulator
    calls: list[tuple[int, ...]] = []
    kernel = integer_gram.integer_gram
    monkeypatch.setattr(integer_gram, "integer_gram", lambda rows: calls.append(rows.shape) or kernel(rows))
    fast = learned(tmp_path, "fast", X, y)
    assert calls == [(700, 32)]  # one call for the whole batch
    monkeypatch.setenv("ERASABLE_INTEGER_GRAM", "0")
    switched_off = learned(tmp_path, "float", X, y)
    assert calls == [(700, 32)]
    assert fast.read_bytes() == switched_off.read_bytes()

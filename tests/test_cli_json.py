"""A scriptable command line (issue 14, item 11): ``--json`` prints one JSON document on stdout for info,
predict, forget, certify, audit and keys; predictions carry their input text; ``.txt`` files of one text per
line; ``--limit N``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from erasable.model_file import load_model
from tests.test_cli import learned, make_data, run, write_npz
from tests.test_cli_inputs import text_model  # noqa: F401  (a module-scoped text model fixture)
from tests.test_encoders import needs_text


def document(*args: object) -> Any:
    """The JSON document a command prints (it must exit 0 and print exactly one)."""
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ids_of(n: int) -> np.ndarray:
    return np.array([f"s{i}" for i in range(n)])


def test_info_forget_certify_as_json(tmp_path: Path) -> None:
    X, y = make_data(40)
    model = learned(tmp_path, "m", X, y, ids=ids_of(40), subjects=np.array(["ann", "bob"] * 20))
    info = document("info", model)
    assert info["samples"] == 40 and info["certificate"] == load_model(model).certificate()
    assert (
        sorted(c["label"] for c in info["classes"]) == ["a", "b", "c"]
        and sum(c["samples"] for c in info["classes"]) == 40
    )
    assert info["config"]["head"] == "ridge" and info["alpha_chosen_by_gcv"] > 0
    forgot = document("forget", model, "--subject", "bob")
    assert forgot["forgot"] == 20 and forgot["samples_left"] == 20 and len(forgot["ids"]) == 20
    assert forgot["certificate_after"] == load_model(model).certificate() != forgot["certificate_before"]
    certified = document("certify", model)
    assert certified["ok"] is True and certified["refit_certificate"] == forgot["certificate_after"]


def test_predict_as_json_and_limit(tmp_path: Path) -> None:
    X, y = make_data(40)
    model = learned(tmp_path, "m", X, y)
    queries = write_npz(tmp_path / "q.npz", X[:10], y[:10])
    answer = document("predict", model, queries, "--limit", "3", "--top-k", "2", "--proba")
    assert answer["clipped"] == 0 and [p["id"] for p in answer["predictions"]] == ["0", "1", "2"]
    first = answer["predictions"][0]
    assert len(first["labels"]) == 2 and len(first["probabilities"]) == 2 and first["ood_score"] >= 0
    assert sum(p["labels"][0] == label for p, label in zip(answer["predictions"], y[:3], strict=True)) >= 2
    limited = run("learn", tmp_path / "few.erasable", queries, "--width", "32", "--limit", "4")
    assert limited.exit_code == 0 and load_model(tmp_path / "few.erasable").count == 4


def test_audit_and_keys_as_json(tmp_path: Path) -> None:
    X, y = make_data(60)
    model = learned(tmp_path, "m", X[:40], y[:40], ids=ids_of(40))
    test = write_npz(tmp_path / "t.npz", X[40:], y[40:])
    report = document("audit", model, "--id", "s1", "--id", "s2", "--test", test, "--out", tmp_path / "audit")
    assert report["certificates_equal"] is True and report["forgotten"] == 2
    assert report["verdict"].startswith("certificates EQUAL") and len(report["files"]) >= 2
    store = tmp_path / "ledger.db"
    made = document("keys", "create", "--store", store, "--scope", "predict", "--model", "bank")
    assert made["scopes"] == ["predict"] and made["model"] == "bank" and made["token"]
    listed = document("keys", "list", "--store", store)
    assert [k["key_id"] for k in listed] == [made["key_id"]] and "token" not in listed[0]


@needs_text
def test_predictions_carry_their_texts_and_txt_files_hold_one_text_per_line(
    text_model: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    answer = document("predict", text_model, "--text", "my card was declined again", "--text", "refund please")
    assert [p["input"] for p in answer["predictions"]] == ["my card was declined again", "refund please"]
    lines = tmp_path / "queries.txt"
    lines.write_text("my card was declined again\n\nrefund please\n", encoding="utf-8")
    from_file = document("predict", text_model, lines)
    assert [(p["id"], p["input"]) for p in from_file["predictions"]] == [
        ("1", "my card was declined again"),
        ("3", "refund please"),
    ]
    assert [p["labels"] for p in from_file["predictions"]] == [p["labels"] for p in answer["predictions"]]
    table = run("predict", text_model, lines, "--output", "-")
    assert table.stdout.splitlines()[0] == "id,input,prediction,ood_score"

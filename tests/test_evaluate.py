"""``erasable evaluate`` (issue 14, item 12): accuracy, macro-F1, per-class scores, calibration, the OOD AUROC
of samples marked out of scope, Markdown and PNG -- on synthetic data and on BANKING77 embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from erasable import ErasableClassifier
from erasable.model_file import load_model
from tests.conftest import BANKING77
from tests.test_cli import DIM, learned, make_data, run, write_npz


def test_evaluate_scores_and_marks_out_of_scope_samples(tmp_path: Path) -> None:
    X, y = make_data(200)
    model = learned(tmp_path, "m", X[:120], y[:120])
    far = np.random.default_rng(5).normal(size=(30, DIM))
    far = -far / np.linalg.norm(far, axis=1, keepdims=True)  # unit vectors, not near the three classes
    test = write_npz(tmp_path / "t.npz", np.vstack([X[120:], far]), np.concatenate([y[120:], ["oos"] * 30]))
    result = run("evaluate", model, test, "--ood-label", "oos", "--out", tmp_path / "eval", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    clf = ErasableClassifier.from_model(load_model(model))
    assert report["samples"] == 80 and report["out_of_scope"] == 30
    assert report["accuracy"] == pytest.approx(clf.score(X[120:], y[120:]))
    assert report["macro_f1"] == pytest.approx(f1_score(y[120:], clf.predict(X[120:]), average="macro"))
    assert [c["label"] for c in report["per_class"]] == ["a", "b", "c"]
    assert 0 <= report["ece"] < 0.1
    is_ood = np.r_[np.zeros(80), np.ones(30)]  # the model's own OOD score, ranked against the marked samples
    assert report["ood_auroc"] == pytest.approx(roc_auc_score(is_ood, clf.ood_score(np.vstack([X[120:], far]))))
    for name in ("evaluation.md", "reliability.png", "worst_classes.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 100
    assert "OOD AUROC (30 out-of-scope samples)" in (tmp_path / "eval" / "evaluation.md").read_text()
    table = run("evaluate", model, write_npz(tmp_path / "in.npz", X[120:], y[120:]), "--out", tmp_path / "e2")
    assert table.exit_code == 0 and "n/a (no --ood-label samples)" in table.stdout


def test_evaluate_on_banking77_embeddings(tmp_path: Path, banking77: dict[str, np.ndarray]) -> None:
    if not BANKING77.exists():
        pytest.skip(f"shared data not found at {BANKING77}")
    model = tmp_path / "bank.erasable"
    train = write_npz(tmp_path / "train.npz", banking77["X_train"][::3], banking77["y_train"][::3])
    assert run("learn", model, train, "--feature-map", "identity").exit_code == 0
    test = write_npz(tmp_path / "test.npz", banking77["X_test"][::3], banking77["y_test"][::3])
    result = run("evaluate", model, test, "--out", tmp_path / "eval", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 0.7 < report["accuracy"] < 1 and len(report["per_class"]) == 77
    assert report["confusions"] and all(t != p for t, p, _ in report["confusions"])

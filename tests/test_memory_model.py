"""The memory head inside a model: kept in step with learn and forget, explained by the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from erasable.cli import app
from erasable.model import Model, ModelConfig
from erasable.model_file import save_model
from tests.conftest import unit_rows

pytest.importorskip("faiss", reason="the memory extra (faiss-cpu) is not installed")


def labelled(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    centers = unit_rows(rng, 3, 8)
    y = rng.integers(0, 3, n)
    x = centers[y] + 0.3 * unit_rows(rng, n, 8)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.array(["a", "b", "c"])[y]


def test_memory_follows_learn_and_forget_exactly() -> None:
    rng = np.random.default_rng(3)
    x, y = labelled(rng, 300)
    model = Model(ModelConfig(input_dim=8, head="memory"))
    model.learn(x[:250], y[:250], ids=range(250))
    model.memory()  # built now, then kept in step
    model.learn(x[250:], y[250:], ids=range(250, 300))
    model.forget(ids=[str(i) for i in range(0, 300, 3)])
    probe = unit_rows(rng, 40, 8)
    rebuilt = model.refit()
    assert set(model.memory().ids) == set(rebuilt.registry.ids)
    assert np.array_equal(model.decision_function(probe), rebuilt.decision_function(probe))
    assert np.array_equal(model.predict_proba(probe), rebuilt.predict_proba(probe))


def test_explain_prints_the_neighbours(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x, y = labelled(rng, 60)
    model = Model(ModelConfig(input_dim=8))
    model.learn(x, y, ids=[f"sample{i}" for i in range(60)])
    path, queries = tmp_path / "m.erasable", tmp_path / "q.npy"
    save_model(model, path)
    np.save(queries, x[:2])
    result = CliRunner().invoke(app, ["explain", str(path), str(queries), "--k", "3"])
    assert result.exit_code == 0, result.output
    assert "sample0" in result.output and "sample1" in result.output  # each query's own sample is nearest
    assert result.output.count("predicted") == 2


def test_prune_forgets_exactly_what_hard_pruning_names(tmp_path: Path) -> None:
    from erasable.memory_analysis import hard_prune
    from erasable.model_file import load_model

    rng = np.random.default_rng(5)
    x, y = labelled(rng, 90)
    y[:6] = np.roll(y[:6], 1)  # a few wrong labels for the votes to single out
    model = Model(ModelConfig(input_dim=8, head="memory"))
    model.learn(x, y, ids=[f"s{i}" for i in range(90)])
    path = tmp_path / "m.erasable"
    save_model(model, path)
    expected = hard_prune(model.memory(), "misleading")
    assert expected  # the test can fail: there is something to prune

    runner = CliRunner()
    dry = runner.invoke(app, ["prune", str(path), "--criterion", "misleading", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"Would forget {len(expected)} of 90" in dry.output and load_model(path).count == 90
    done = runner.invoke(app, ["prune", str(path), "--criterion", "misleading"])
    assert done.exit_code == 0, done.output
    pruned = load_model(path)
    assert set(pruned.registry.ids) == {f"s{i}" for i in range(90)} - set(expected)
    model.forget(ids=expected)
    assert pruned.certificate() == model.certificate() and model.certificate() in done.output

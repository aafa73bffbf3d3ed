"""The command line: learn / forget / predict / certify / info on small synthetic data."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner, Result

from erasable import ErasableClassifier, __version__
from erasable.cli import app
from erasable.model import CHUNK_ROWS
from erasable.model_file import load_model

runner = CliRunner()
DIM = 8
SMALL = ("--width", "32")  # fast random ReLU features


def run(*args: object) -> Result:
    """Invoke the CLI with ``args`` (converted to strings)."""
    return runner.invoke(app, [str(a) for a in args])


def make_data(n: int, seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.str_]]:
    """Unit-norm vectors around three class centers, labels ``a``, ``b``, ``c``."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, DIM))
    labels = rng.integers(0, 3, size=n)
    X = centers[labels] + 0.3 * rng.normal(size=(n, DIM))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.array(["a", "b", "c"])[labels]


def ids_and_subjects(n: int) -> tuple[NDArray[np.str_], NDArray[np.str_]]:
    return np.array([f"s{i}" for i in range(n)]), np.array(["alice", "bob", "carol", "dave"])[np.arange(n) % 4]


def write_npz(path: Path, X: NDArray[np.float64], y: NDArray[Any], **arrays: NDArray[np.str_]) -> Path:
    """An NPZ file with arrays ``X``, ``y`` and ``arrays`` (e.g. ``ids``, ``subjects``)."""
    contents: dict[str, Any] = {"X": X, "y": y, **arrays}
    np.savez(path, **contents)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def learned(tmp_path: Path, name: str, X: NDArray[np.float64], y: NDArray[np.str_], **arrays: NDArray[np.str_]) -> Path:
    """A model file learned (through the CLI) from ``X``, ``y`` and optional ids/subjects."""
    model_path = tmp_path / f"{name}.erasable"
    result = run("learn", model_path, write_npz(tmp_path / f"{name}.npz", X, y, **arrays), *SMALL)
    assert result.exit_code == 0, result.output
    return model_path


def certificate(model_path: Path) -> str:
    return load_model(model_path).certificate()


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# -- learn and predict -------------------------------------------------------------------------


def test_learn_then_predict(tmp_path: Path) -> None:
    X, y = make_data(90)
    data, model_path = write_npz(tmp_path / "d.npz", X, y), tmp_path / "m.erasable"
    result = run("learn", model_path, data, *SMALL)
    assert result.exit_code == 0, result.output
    assert certificate(model_path) in result.stdout
    assert "samples: 90" in result.stdout

    output = tmp_path / "predictions.csv"
    result = run("predict", model_path, data, "--output", output, "--proba", "--top-k", 2)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(output.open()))
    assert list(rows[0]) == ["id", "prediction", "probability", "prediction_2", "probability_2", "ood_score"]
    assert np.mean([row["prediction"] == label for row, label in zip(rows, y, strict=True)]) > 0.9
    assert all(float(row["probability"]) >= float(row["probability_2"]) for row in rows)
    ood = [float(row["ood_score"]) for row in rows]  # the library's score, leverage-softened
    np.testing.assert_allclose(ood, load_model(model_path).ood_score(X), rtol=1e-6, atol=1e-9)

    table = run("predict", model_path, data, "--head", "prototype")
    assert table.exit_code == 0, table.output
    assert "ood_score" in table.stdout


def test_learn_matches_the_estimator_across_chunks(tmp_path: Path) -> None:
    X, y = make_data(CHUNK_ROWS + 100)
    model_path = learned(tmp_path, "m", X, y)
    assert certificate(model_path) == ErasableClassifier(width=32).fit(X, y).certificate()


def test_learn_twice_equals_learn_once(tmp_path: Path) -> None:
    X, y = make_data(60)
    twice = learned(tmp_path, "twice", X[:25], y[:25])
    result = run("learn", twice, write_npz(tmp_path / "rest.npz", X[25:], y[25:]), *SMALL)
    assert result.exit_code == 0, result.output
    assert certificate(twice) == certificate(learned(tmp_path, "once", X, y))
    assert sorted(load_model(twice).registry.ids, key=int) == [str(i) for i in range(60)]


def test_learn_into_a_model_of_another_configuration_fails(tmp_path: Path) -> None:
    X, y = make_data(30)
    model_path = learned(tmp_path, "m", X, y)
    before = model_path.read_bytes()
    assert_user_error(run("learn", model_path, tmp_path / "m.npz", "--width", "64"), "feature_map")
    assert_user_error(run("learn", model_path, tmp_path / "m.npz", "--head", "gaussian"), "head")
    assert model_path.read_bytes() == before


def test_csv_and_npy_inputs_give_the_npz_model(tmp_path: Path) -> None:
    X, y = make_data(40)
    ids, subjects = ids_and_subjects(40)
    expected = certificate(learned(tmp_path, "npz", X, y))
    header = ["sid", *(f"f{j}" for j in range(DIM)), "who", "label"]
    rows = [[i, *map(repr, x.tolist()), s, label] for i, x, s, label in zip(ids, X, subjects, y, strict=True)]
    data = write_csv(tmp_path / "d.csv", header, rows)
    from_csv = tmp_path / "csv.erasable"
    result = run("learn", from_csv, data, "--id-column", "sid", "--subject-column", "who", *SMALL)
    assert result.exit_code == 0, result.output
    assert certificate(from_csv) == expected
    assert load_model(from_csv).registry.subjects[:2] == ["alice", "bob"]

    np.save(tmp_path / "d.npy", X)
    (tmp_path / "labels.txt").write_text("\n".join(y) + "\n")
    from_npy = tmp_path / "npy.erasable"
    result = run("learn", from_npy, tmp_path / "d.npy", "--labels-file", tmp_path / "labels.txt", *SMALL)
    assert result.exit_code == 0, result.output
    assert certificate(from_npy) == expected


def test_split_reads_the_shared_data_convention(tmp_path: Path) -> None:
    X, y = make_data(30)
    np.savez(tmp_path / "shared.npz", X_train=X, y_train=y)
    model_path = tmp_path / "m.erasable"
    assert run("learn", model_path, tmp_path / "shared.npz", "--split", "train", *SMALL).exit_code == 0
    assert certificate(model_path) == certificate(learned(tmp_path, "plain", X, y))
    assert_user_error(run("learn", model_path, tmp_path / "shared.npz"), "X_train", "--split")


# -- forget and certify ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "removed"),
    [
        (["--id", "s3", "--id", "s10"], [3, 10]),
        (["--subject", "bob"], [i for i in range(48) if i % 4 == 1]),
        (["--subject", "alice", "--subject", "dave"], [i for i in range(48) if i % 4 in (0, 3)]),
    ],
)
def test_forget_equals_learning_only_the_rest(tmp_path: Path, how: list[str], removed: list[int]) -> None:
    X, y = make_data(48)
    ids, subjects = ids_and_subjects(48)
    model_path = learned(tmp_path, "all", X, y, ids=ids, subjects=subjects)
    before = certificate(model_path)
    result = run("forget", model_path, *how)
    assert result.exit_code == 0, result.output
    keep = np.setdiff1d(np.arange(48), removed)
    expected = certificate(learned(tmp_path, "rest", X[keep], y[keep], ids=ids[keep], subjects=subjects[keep]))
    assert certificate(model_path) == expected
    assert f"Forgot {len(removed)} samples" in result.stdout
    assert before in result.stdout and expected in result.stdout


def test_forget_ids_file(tmp_path: Path) -> None:
    X, y = make_data(20)
    ids, _ = ids_and_subjects(20)
    model_path = learned(tmp_path, "m", X, y, ids=ids)
    (tmp_path / "ids.txt").write_text("s1\n\ns2\n")
    assert run("forget", model_path, "--ids-file", tmp_path / "ids.txt").exit_code == 0
    assert load_model(model_path).count == 18


def test_certify_succeeds_after_learn_and_forget(tmp_path: Path) -> None:
    X, y = make_data(40)
    model_path = learned(tmp_path, "m", X, y)
    assert run("forget", model_path, "--id", "7").exit_code == 0
    result = run("certify", model_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.count(certificate(model_path)) == 2
    assert "OK" in result.stdout and "ridge penalty" in result.stdout


def test_certify_catches_a_forged_ridge_penalty(tmp_path: Path) -> None:
    """A file whose penalty was changed (digest recomputed) keeps its certificate, but not its GCV choice."""
    from erasable.model_file import read_container, write_container

    X, y = make_data(40)
    model_path = learned(tmp_path, "m", X, y)
    manifest, tensors = read_container(model_path)
    write_container(model_path, {**manifest, "ridge_alpha": manifest["ridge_alpha"] * 10}, tensors)
    result = run("certify", model_path)
    assert result.exit_code == 1
    assert "ridge penalty is not the one GCV chooses" in result.stderr


def test_certify_catches_forged_ridge_weights(tmp_path: Path) -> None:
    """The weights a file keeps must be those its statistics give: a forger who changes them is caught."""
    from erasable.model_file import read_container, write_container

    X, y = make_data(40)
    model_path = learned(tmp_path, "m", X, y)
    manifest, tensors = read_container(model_path)
    assert run("certify", model_path).exit_code == 0
    write_container(model_path, manifest, {**tensors, "ridge.weights": tensors["ridge.weights"] * 1.001})
    result = run("certify", model_path)
    assert result.exit_code == 1
    assert "ridge weights are not those its statistics give" in result.stderr


def test_info(tmp_path: Path) -> None:
    X, y = make_data(40)
    model_path = learned(tmp_path, "m", X, y)
    result = run("info", model_path, "--top", 2)
    assert result.exit_code == 0, result.output
    assert certificate(model_path) in result.stdout
    assert "classes: 3, the 2 largest:" in result.stdout
    assert "file size" in result.stdout and "statistics memory" in result.stdout


# -- user errors -------------------------------------------------------------------------------


def test_corrupted_model_file(tmp_path: Path) -> None:
    X, y = make_data(20)
    model_path = learned(tmp_path, "m", X, y)
    blob = bytearray(model_path.read_bytes())
    blob[-5] ^= 0xFF
    model_path.write_bytes(bytes(blob))
    for command in (["info"], ["certify"], ["forget", "--id", "1"], ["predict"]):
        extra = [tmp_path / "m.npz"] if command == ["predict"] else []
        assert_user_error(run(command[0], model_path, *command[1:], *extra), "corrupted")
    assert model_path.read_bytes() == bytes(blob)


def test_unknown_id_leaves_the_model_file_unchanged(tmp_path: Path) -> None:
    X, y = make_data(20)
    model_path = learned(tmp_path, "m", X, y)
    before = model_path.read_bytes()
    assert_user_error(run("forget", model_path, "--id", "3", "--id", "nope"), "Unknown sample ids", "nope")
    assert_user_error(run("forget", model_path, "--subject", "nobody"), "nobody")
    assert_user_error(run("forget", model_path), "Name what to forget")
    assert model_path.read_bytes() == before


def test_nan_in_csv_is_reported_with_its_row(tmp_path: Path) -> None:
    X, y = make_data(5)
    rows: list[list[object]] = [[*x.tolist(), label] for x, label in zip(X, y, strict=True)]
    rows[2][4] = "nan"
    data = write_csv(tmp_path / "d.csv", [*(f"f{j}" for j in range(DIM)), "label"], rows)
    assert_user_error(run("learn", tmp_path / "m.erasable", data, *SMALL), "row 3", "'f4'", "not finite")
    assert not (tmp_path / "m.erasable").exists()


def test_non_numeric_csv_cell_is_reported(tmp_path: Path) -> None:
    X, y = make_data(5)
    rows: list[list[object]] = [[*x.tolist(), label] for x, label in zip(X, y, strict=True)]
    rows[1][0] = "oops"
    data = write_csv(tmp_path / "d.csv", [*(f"f{j}" for j in range(DIM)), "label"], rows)
    assert_user_error(run("learn", tmp_path / "m.erasable", data, *SMALL), "row 2", "'f0'", "'oops'")
    assert_user_error(run("learn", tmp_path / "m.erasable", data, "--label-column", "class"), "no column 'class'")


def test_bad_inputs_are_user_errors(tmp_path: Path) -> None:
    X, y = make_data(20)
    model_path = learned(tmp_path, "m", X, y)
    before = model_path.read_bytes()
    wide = write_npz(tmp_path / "wide.npz", np.hstack([X, X]) / 2, y)
    assert_user_error(run("learn", model_path, wide), "dimension 16", "expects 8")
    assert_user_error(run("predict", model_path, wide), "dimension 16")
    assert_user_error(run("learn", model_path, tmp_path / "missing.npz"), "missing.npz")
    assert_user_error(run("predict", tmp_path / "missing.erasable", tmp_path / "m.npz"), "missing.erasable")
    np.save(tmp_path / "x.npy", X)
    assert_user_error(run("learn", model_path, tmp_path / "x.npy"), "--labels-file")
    assert_user_error(run("learn", model_path, write_npz(tmp_path / "short.npz", X, y[:19])), "20 vectors but 19")
    np.savez(tmp_path / "unlabelled.npz", X=X)
    assert_user_error(run("learn", model_path, tmp_path / "unlabelled.npz"), "no array 'y'")
    assert_user_error(run("learn", model_path, write_npz(tmp_path / "big.npz", X * 10, y)), "scale_bits")
    assert_user_error(run("predict", model_path, tmp_path / "m.npz", "--top-k", 4), "3 classes")
    integer_labels = write_npz(tmp_path / "ints.npz", X, np.arange(20) % 2)
    assert_user_error(run("learn", model_path, integer_labels), "integer and string")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip archive")
    assert_user_error(run("learn", model_path, tmp_path / "garbage.npz"), "not an NPZ")
    assert model_path.read_bytes() == before


# -- help and version --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["learn"], ["forget"], ["predict"], ["certify"], ["info"]])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout
    if command:
        assert "Example: erasable" in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"erasable {__version__}"


def test_raw_text_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="the text extra is not installed")
    table = tmp_path / "train.csv"
    rows = [
        ("t1", "my card was declined", "declined"),
        ("t2", "the card payment was refused", "declined"),
        ("t3", "why did my card not work", "declined"),
        ("t4", "how do I top up my account", "top_up"),
        ("t5", "add money with a bank transfer", "top_up"),
        ("t6", "can I top up by card", "top_up"),
    ]
    table.write_text("id,text,category\n" + "\n".join(",".join(r) for r in rows) + "\n")
    model, cache = tmp_path / "m.erasable", tmp_path / "cache"
    learned = runner.invoke(
        app,
        [
            "learn",
            str(model),
            str(table),
            "--encoder",
            "text",
            "--label-column",
            "category",
            "--id-column",
            "id",
            "--width",
            "32",
            "--cache-dir",
            str(cache),
        ],
    )
    assert learned.exit_code == 0, learned.output
    assert any(cache.iterdir())
    predicted = runner.invoke(app, ["predict", str(model), "--text", "my card got declined at the shop"])
    assert predicted.exit_code == 0, predicted.output
    assert "declined" in predicted.output
    forgot = runner.invoke(app, ["forget", str(model), "--id", "t3", "--cache-dir", str(cache)])
    assert forgot.exit_code == 0, forgot.output
    assert not any(cache.iterdir())
    assert runner.invoke(app, ["certify", str(model)]).exit_code == 0

"""Out-of-range inputs at prediction (issue 14, item 3): clipped, and said so -- by the library (a
``UserWarning``), the CLI (a warning line on stderr) and the API (``clipped`` in the answer)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from erasable import ErasableClassifier
from tests.test_cli import learned, make_data, run, write_npz


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits(return_X_y=True)  # pixels 0..16


def test_the_library_warns_and_counts_clipped_inputs(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    clf = ErasableClassifier(width=256).fit(X[:1500] / 16, y[:1500])  # fitted on pixels scaled to 0..1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inputs in range: no warning
        scaled = clf.score(X[1500:] / 16, y[1500:])
    raw = X[1500:]  # the same images unscaled: most exceed |x| <= 4
    expected = int((np.abs(raw) > 4).any(axis=1).sum())
    assert expected > 200
    with pytest.warns(UserWarning, match=rf"^{expected} of {len(raw)} inputs exceed the range \|x\| <= 4 .*clipped"):
        unscaled = clf.score(raw, y[1500:])
    assert (
        unscaled < scaled - 0.05
    )  # why the warning matters (scale-free features keep a clipped row's direction: -9 points)
    for method in (clf.predict_proba, clf.decision_function, clf.ood_score):
        with pytest.warns(UserWarning, match="clipped"):
            method(raw[:3])


def test_the_cli_prints_a_warning_and_still_predicts(tmp_path: Path) -> None:
    X, y = make_data(60)
    model_path = learned(tmp_path, "m", X, y)
    loud = X[:5].copy()
    loud[[1, 3]] *= 10  # two rows out of range
    result = run("predict", model_path, write_npz(tmp_path / "loud.npz", loud, y[:5]))
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: 2 of 5 inputs exceed the range |x| <= 4 of scale_bits=13"), result.stderr
    assert len(result.stdout.splitlines()) == 6  # the predictions are printed: piped, a CSV header and 5 rows
    quiet = run("predict", model_path, write_npz(tmp_path / "quiet.npz", X[:5], y[:5]))
    assert quiet.exit_code == 0 and quiet.stderr == ""

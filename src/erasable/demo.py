"""The main job: learn class-incrementally, forget a customer and a class, prove it.

Runs on the shared BANKING77 sentence embeddings (77 intents, 7 phases of 11) when
``../shared/data`` is present, else on scikit-learn's bundled digits (10 classes, 5 phases
of 2). After every step it prints test accuracy on the classes seen so far and the
certificate, and checks the certificate against a model fitted from scratch on exactly
the samples that remain.

Run it with ``python -m erasable.demo [--data PATH]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from erasable.estimator import ErasableClassifier

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "banking77" / "all-MiniLM-L6-v2.npz"


@dataclass
class Dataset:
    name: str
    x_train: NDArray[np.float64]
    y_train: NDArray[np.str_]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.str_]
    phases: int
    params: dict[str, Any]


def load_dataset(path: Path) -> Dataset:
    """BANKING77 embeddings from ``path``, or digits when it does not exist."""
    if path.exists():
        with np.load(path) as data:
            return Dataset(
                "BANKING77 (all-MiniLM-L6-v2 embeddings)",
                data["X_train"].astype(np.float64),
                data["y_train"].astype(str),
                data["X_test"].astype(np.float64),
                data["y_test"].astype(str),
                phases=7,
                params={"width": 4096},
            )
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    labels = np.array([f"digit{d}" for d in y])
    return Dataset(
        "scikit-learn digits (shared data not found)",
        x[:1400] / 16.0,
        labels[:1400],
        x[1400:] / 16.0,
        labels[1400:],
        phases=5,
        params={"width": 1024, "scale_bits": 11},
    )


def accuracy_on_seen(clf: ErasableClassifier, data: Dataset) -> float:
    seen = np.isin(data.y_test, clf.classes_)
    return float(np.mean(clf.predict(data.x_test[seen]) == data.y_test[seen]))


def refit_certificate(data: Dataset, keep: NDArray[np.bool_], ids: NDArray[np.str_]) -> tuple[str, float]:
    """Certificate of a model fitted from scratch on the kept samples, and the time it took."""
    start = time.perf_counter()
    scratch = ErasableClassifier(**data.params).fit(data.x_train[keep], data.y_train[keep], ids=ids[keep])
    scratch.predict(data.x_test[:1])  # derive the head, as a served model must
    return scratch.certificate(), time.perf_counter() - start


def run(path: Path, console: Console) -> bool:
    """Run the story; return whether every certificate matched its refit."""
    data = load_dataset(path)
    console.rule(f"[bold]erasable demo on {data.name}")
    ids = np.array([f"q{i}" for i in range(len(data.y_train))])
    rng = np.random.default_rng(0)
    subjects = np.array(["other"] * len(ids), dtype=object)
    customer_rows = rng.choice(len(ids), size=50, replace=False)
    subjects[customer_rows] = "customer-1234"
    class_groups = np.array_split(np.unique(data.y_train), data.phases)

    table = Table("step", "classes", "samples", "accuracy", "time", "certificate", "= refit")
    clf = ErasableClassifier(**data.params)
    live = np.zeros(len(ids), dtype=bool)
    all_match = True

    def report(step: str, seconds: float, check: bool) -> None:
        nonlocal all_match
        certificate = clf.certificate()
        verdict = ""
        if check:
            expected, _ = refit_certificate(data, live, ids)
            verdict = "[green]yes" if expected == certificate else "[red]NO"
            all_match &= expected == certificate
        console.log(f"{step}: {len(clf.classes_)} classes, certificate {certificate[:12]} {verdict}")
        table.add_row(
            step,
            str(len(clf.classes_)),
            str(int(live.sum())),
            f"{accuracy_on_seen(clf, data):.2%}",
            f"{seconds:.2f}s",
            certificate[:12],
            verdict,
        )

    for phase, group in enumerate(class_groups, start=1):
        rows = np.isin(data.y_train, group)
        start = time.perf_counter()
        clf.partial_fit(data.x_train[rows], data.y_train[rows], ids=ids[rows], subjects=list(subjects[rows]))
        clf.predict(data.x_test[:1])
        live |= rows
        report(f"phase {phase}", time.perf_counter() - start, check=phase == data.phases)

    start = time.perf_counter()
    clf.forget(subjects=["customer-1234"])
    clf.predict(data.x_test[:1])
    live[customer_rows] = False
    report("forget customer", time.perf_counter() - start, check=True)

    doomed_class = str(class_groups[0][0])
    start = time.perf_counter()
    clf.forget(ids=ids[live & (data.y_train == doomed_class)])
    clf.predict(data.x_test[:1])
    live &= data.y_train != doomed_class
    report("forget class", time.perf_counter() - start, check=True)

    _, refit_seconds = refit_certificate(data, live, ids)
    console.print(table)
    console.print(f"The customer: 50 random samples (subject 'customer-1234'); the class: {doomed_class!r}.")
    console.print("Accuracy is on the test samples of the classes the model knows at that step.")
    console.print(f"A refit from scratch on the remaining samples takes {refit_seconds:.2f}s.")
    console.print("[bold green]Every certificate equals its refit." if all_match else "[bold red]Mismatch!")
    return all_match


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BANKING77 embeddings .npz")
    args = parser.parse_args()
    raise SystemExit(0 if run(args.data, Console()) else 1)


if __name__ == "__main__":
    main()

"""How good a model is on labelled data: ``erasable evaluate``.

Accuracy, macro-F1, per-class precision and recall, the most frequent confusions among the
worst classes, calibration (expected calibration error of the top probability, 15 equal-width
bins) and, when some samples are marked out of scope (their label is ``ood_label``), the
AUROC of the model's OOD score separating them from the in-scope ones. Out-of-scope samples
are left out of the classification metrics; in-scope labels the model never learned count as
errors. :meth:`Evaluation.write` renders Markdown and two PNG plots, like ``erasable audit``.

>>> import numpy as np
>>> from erasable import ErasableClassifier
>>> rng = np.random.default_rng(0)
>>> X = np.vstack([rng.normal(m, 0.1, (20, 2)) for m in ((0.5, 0), (0, 0.5))])
>>> clf = ErasableClassifier(feature_map="identity").fit(X, ["a"] * 20 + ["b"] * 20)
>>> result = evaluate(clf.model_, X, np.array(["a"] * 20 + ["b"] * 20))
>>> result.accuracy, result.macro_f1, [c.label for c in result.per_class]
(1.0, 1.0, ['a', 'b'])
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from erasable.audit.report import _markdown_table, _pyplot
from erasable.model import CHUNK_ROWS, Model

__all__ = ["ClassScores", "Evaluation", "evaluate"]

#: Bins of the calibration error and the reliability diagram.
CALIBRATION_BINS = 15
#: Classes shown in the confusion section and plot: the ones with the lowest recall.
WORST_CLASSES = 10


@dataclass(frozen=True)
class ClassScores:
    label: Any
    support: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Evaluation:
    """The scores of a model on one labelled set; see the module docstring for each."""

    samples: int
    out_of_scope: int
    accuracy: float
    macro_f1: float
    ece: float
    per_class: list[ClassScores]
    confusions: list[tuple[Any, Any, int]]  # (true, predicted, count) among the worst classes, most frequent first
    ood_auroc: float | None
    calibration: list[tuple[float, float, int]]  # (mean confidence, accuracy, count) per non-empty bin

    def worst(self) -> list[ClassScores]:
        """The classes of lowest recall (ties by label), at most :data:`WORST_CLASSES`."""
        return sorted(self.per_class, key=lambda c: (c.recall, str(c.label)))[:WORST_CLASSES]

    def to_markdown(self) -> str:
        auroc = "n/a (no out-of-scope samples marked)" if self.ood_auroc is None else f"{self.ood_auroc:.4f}"
        summary = [
            ("in-scope samples", str(self.samples)),
            ("accuracy", f"{self.accuracy:.4f}"),
            ("macro-F1", f"{self.macro_f1:.4f}"),
            (f"expected calibration error ({CALIBRATION_BINS} bins)", f"{self.ece:.4f}"),
            (f"OOD AUROC ({self.out_of_scope} out-of-scope samples)", auroc),
        ]
        classes = [
            (str(c.label), str(c.support), f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}")
            for c in self.per_class
        ]
        confused = [(str(t), str(p), str(n)) for t, p, n in self.confusions]
        return "\n".join(
            [
                "# Evaluation",
                "",
                _markdown_table(["measure", "value"], summary),
                "## Most frequent confusions among the worst classes",
                "",
                _markdown_table(["true label", "predicted", "samples"], confused) if confused else "None.\n",
                "## Per class",
                "",
                _markdown_table(["label", "support", "precision", "recall", "F1"], classes),
                "![reliability](reliability.png)",
                "",
                "![worst classes](worst_classes.png)",
                "",
            ]
        )

    def write(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write ``evaluation.md``, ``reliability.png`` and ``worst_classes.png`` into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "evaluation.md", folder / "reliability.png", folder / "worst_classes.png"]
        paths[0].write_text(self.to_markdown(), encoding="utf-8")
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
        if self.calibration:
            confidence, accuracy, _ = zip(*self.calibration, strict=True)
            ax.plot(confidence, accuracy, marker="o", label="model")
        ax.set(xlabel="confidence (top probability)", ylabel="accuracy", title=f"Reliability: ECE {self.ece:.3f}")
        ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(paths[1], dpi=100)
        plt.close(fig)
        worst = self.worst()
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(worst) + 1.5))
        ax.barh([str(c.label) for c in worst], [c.recall for c in worst])
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), xlabel="recall", title="Worst classes")
        fig.tight_layout()
        fig.savefig(paths[2], dpi=100)
        plt.close(fig)
        return paths


def evaluate(model: Model, vectors: NDArray[np.floating], labels: NDArray[Any], *, ood_label: Any = None) -> Evaluation:
    """Score ``model`` on ``vectors`` (its input embeddings) with true ``labels``; see the module docstring."""
    labels = np.asarray(labels)
    if len(labels) != len(vectors) or not len(labels):
        raise ValueError(
            f"Evaluation needs one label per vector, and samples: {len(vectors)} vectors, {len(labels)} labels."
        )
    if not model.count:
        raise ValueError("The model has no samples: nothing to evaluate.")
    classes = np.asarray(model.classes, dtype=object)
    probabilities = np.vstack(
        [model.predict_proba(vectors[i : i + CHUNK_ROWS]) for i in range(0, len(vectors), CHUNK_ROWS)]
    )
    ood = np.concatenate([model.ood_score(vectors[i : i + CHUNK_ROWS]) for i in range(0, len(vectors), CHUNK_ROWS)])
    outside = np.array([ood_label is not None and str(label) == str(ood_label) for label in labels], dtype=bool)
    inside = ~outside
    if not inside.any():
        raise ValueError("Every sample is marked out of scope: no in-scope sample to classify.")
    truth = labels[inside].astype(object)
    predicted = classes[np.argmax(probabilities[inside], axis=1)]
    correct = np.array([str(t) == str(p) for t, p in zip(truth, predicted, strict=True)])
    truth_names, predicted_names = truth.astype(str), predicted.astype(str)
    names = sorted(set(truth_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth_names, predicted_names, labels=names, zero_division=0
    )
    by_name = {str(c): c for c in classes} | {str(t): t for t in truth}
    per_class = [
        ClassScores(by_name[n], int(s), float(p), float(r), float(f))
        for n, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    ]
    confidence = probabilities[inside].max(axis=1)
    calibration, ece = _calibration(confidence, correct)
    worst = {str(c.label) for c in sorted(per_class, key=lambda c: (c.recall, str(c.label)))[:WORST_CLASSES]}
    confusions = Counter((t, p) for t, p in zip(truth_names, predicted_names, strict=True) if t != p and t in worst)
    auroc = float(roc_auc_score(outside, ood)) if outside.any() else None
    return Evaluation(
        samples=int(inside.sum()),
        out_of_scope=int(outside.sum()),
        accuracy=float(correct.mean()),
        macro_f1=float(np.mean(f1)),
        ece=ece,
        per_class=per_class,
        confusions=[(by_name[t], by_name.get(p, p), n) for (t, p), n in confusions.most_common(WORST_CLASSES)],
        ood_auroc=auroc,
        calibration=calibration,
    )


def _calibration(
    confidence: NDArray[np.float64], correct: NDArray[np.bool_]
) -> tuple[list[tuple[float, float, int]], float]:
    """Per non-empty bin (mean confidence, accuracy, count), and the expected calibration error."""
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    rows, ece = [], 0.0
    for b in range(CALIBRATION_BINS):
        members = bins == b
        if members.any():
            mean_confidence, accuracy = float(confidence[members].mean()), float(correct[members].mean())
            rows.append((mean_confidence, accuracy, int(members.sum())))
            ece += members.mean() * abs(accuracy - mean_confidence)
    return rows, float(ece)

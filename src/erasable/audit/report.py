"""The unlearning audit: a forget request checked against a refit from scratch, as Markdown, HTML and plots.

:func:`audit_forget` serves a forget request on a copy of a model (the model itself is not
changed), refits a fresh model on the samples that remain, and compares the two as the
unlearning literature does (:mod:`erasable.audit.unlearning`): accuracy on the forgotten, the
retained and the test samples, the membership-inference AUC of the forgotten samples against
held-out ones, the divergence of predictions on the test set, the certificates and the time
each took. :func:`audit_forgotten` does the same for a model that has already forgotten (the
forgotten samples are then given, since the model no longer has them).

The served model answers a forget request with a low-rank update of its ridge head that keeps
the penalty ``alpha`` chosen before; the refit chooses ``alpha`` anew. Their predictions may
therefore differ slightly even though their statistics (and certificates) are equal, so the
report shows both the served model's divergence and that of the canonical head recomputed from
the statistics, which is zero whenever the certificates are equal.

The ledger's hash chain, when a caller has verified it, is reported too (``chain_verified``,
``chain_events``); left ``None``, it reads "not checked".

>>> import numpy as np, tempfile
>>> from erasable.model import Model, ModelConfig
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(80, 4)); X /= np.linalg.norm(X, axis=1, keepdims=True)
>>> y = (X[:, 0] > 0).astype(int)
>>> model = Model(ModelConfig(input_dim=4))
>>> model.learn(X[:60], y[:60], ids=[f"s{i}" for i in range(60)])
>>> audit = audit_forget(model, ids=["s1", "s2", "s3"], test=LabelledSet(X[60:], y[60:]))
>>> audit.certificates_equal, audit.canonical_divergence.disagreement, model.count
(True, 0.0, 60)
>>> sorted(p.name for p in audit.write(tempfile.mkdtemp()))
['accuracy.png', 'mia.png', 'report.html', 'report.md']
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from erasable.audit.unlearning import (
    Divergence,
    LabelledSet,
    UnlearningScores,
    aligned_proba,
    matched_nonmembers,
    prediction_divergence,
    score_unlearning,
)
from erasable.model import Model

__all__ = ["UnlearningAudit", "audit_forget", "audit_forgotten"]

#: Retained samples scored at most (a deterministic random subset beyond): the retained set may be huge.
MAX_RETAINED = 5000


@dataclass(frozen=True)
class UnlearningAudit:
    """The outcome of an audit; :meth:`to_markdown` and :meth:`write` render it.

    ``served`` is the model after the forget request, ``refit`` a model fitted from scratch on
    the samples that remain; ``divergence`` compares their test predictions and
    ``canonical_divergence`` those of the served model's statistics with the refit's.
    ``forget_seconds`` is ``None`` when the forget request was served before the audit.
    """

    request: str
    samples_before: int
    forgotten: int
    certificate_before: str | None
    certificate_served: str
    certificate_refit: str
    forget_seconds: float | None
    refit_seconds: float
    served: UnlearningScores
    refit: UnlearningScores
    divergence: Divergence
    canonical_divergence: Divergence
    test_size: int
    retained_scored: int
    nonmembers: int
    chain_verified: bool | None = None
    chain_events: int | None = None

    @property
    def certificates_equal(self) -> bool:
        """Whether the served model's statistics are exactly those of the refit."""
        return self.certificate_served == self.certificate_refit

    def _chain(self) -> str:
        if self.chain_verified is None:
            return "not checked"
        events = "" if self.chain_events is None else f" ({self.chain_events} events)"
        return ("verified" if self.chain_verified else "BROKEN") + events

    def metric_rows(self) -> list[tuple[str, str, str]]:
        """(metric, served, refit) rows shared by the Markdown and HTML renderings."""
        forget_time = "n/a (served before the audit)" if self.forget_seconds is None else f"{self.forget_seconds:.3f}"
        return [
            (f"forget-set accuracy ({self.forgotten} samples)", *_pair(self.served, self.refit, "forget_accuracy")),
            (
                f"retained-set accuracy ({self.retained_scored} samples)",
                *_pair(self.served, self.refit, "retain_accuracy"),
            ),
            (f"test accuracy ({self.test_size} samples)", *_pair(self.served, self.refit, "test_accuracy")),
            (
                f"MIA AUC, forget set vs {self.nonmembers} held-out (loss attack; 0.5 = indistinguishable)",
                f"{self.served.mia_auc:.4f}",
                f"{self.refit.mia_auc:.4f}",
            ),
            ("seconds until ready to predict (forget vs refit)", forget_time, f"{self.refit_seconds:.3f}"),
        ]

    def _divergence_rows(self) -> list[tuple[str, str, str]]:
        return [
            (name, f"{d.disagreement:.4%}", f"{d.total_variation:.2e}")
            for name, d in (
                ("served (low-rank update, alpha kept)", self.divergence),
                ("canonical (recomputed from the statistics)", self.canonical_divergence),
            )
        ]

    def _certificate_rows(self) -> list[tuple[str, str]]:
        return [
            ("before the request", self.certificate_before or "unknown"),
            ("served model after the request", self.certificate_served),
            ("refit from scratch on the remaining samples", self.certificate_refit),
        ]

    def verdict(self) -> str:
        """One line: are the certificates equal, and was the ledger chain verified."""
        equal = "EQUAL" if self.certificates_equal else "DIFFERENT"
        return f"certificates {equal}; ledger hash chain {self._chain()}"

    def to_markdown(self) -> str:
        """The report as Markdown (the plots are referenced by their file names)."""
        lines = [
            "# Unlearning audit",
            "",
            f"Request: {self.request} -- {self.forgotten} samples forgotten, "
            f"{self.samples_before} -> {self.samples_before - self.forgotten} samples.",
            "",
            f"**Verdict: {self.verdict()}.**",
            "",
            "## Certificates",
            "",
            _markdown_table(["state", "certificate (SHA-256)"], self._certificate_rows()),
            "## Metrics",
            "",
            _markdown_table(["metric", "served model", "refit from scratch"], self.metric_rows()),
            f"## Divergence from the refit ({self.test_size} test samples)",
            "",
            _markdown_table(["predictions", "label disagreement", "mean total variation"], self._divergence_rows()),
            "![accuracies](accuracy.png)",
            "",
            "![membership inference](mia.png)",
            "",
        ]
        return "\n".join(lines)

    def to_html(self) -> str:
        """The report as a self-contained HTML page referencing the PNG plots next to it."""
        sections = [
            "<h1>Unlearning audit</h1>",
            f"<p>Request: {html.escape(self.request)} &mdash; {self.forgotten} samples forgotten, "
            f"{self.samples_before} &rarr; {self.samples_before - self.forgotten} samples.</p>",
            f"<p><strong>Verdict: {html.escape(self.verdict())}.</strong></p>",
            "<h2>Certificates</h2>",
            _html_table(["state", "certificate (SHA-256)"], self._certificate_rows()),
            "<h2>Metrics</h2>",
            _html_table(["metric", "served model", "refit from scratch"], self.metric_rows()),
            f"<h2>Divergence from the refit ({self.test_size} test samples)</h2>",
            _html_table(["predictions", "label disagreement", "mean total variation"], self._divergence_rows()),
            '<img src="accuracy.png" alt="accuracies"><img src="mia.png" alt="membership inference">',
        ]
        head = '<head><meta charset="utf-8"><title>Unlearning audit</title></head>'
        return "<!DOCTYPE html>\n<html>" + head + "\n<body>\n" + "\n".join(sections) + "\n</body></html>\n"

    def write(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write ``report.md``, ``report.html``, ``accuracy.png`` and ``mia.png`` into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "report.md", folder / "report.html", folder / "accuracy.png", folder / "mia.png"]
        paths[0].write_text(self.to_markdown(), encoding="utf-8")
        paths[1].write_text(self.to_html(), encoding="utf-8")
        self._plot_accuracies(paths[2])
        self._plot_losses(paths[3])
        return paths

    def _plot_accuracies(self, path: Path) -> None:
        plt = _pyplot()
        names = ["forget set", "retained set", "test set"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        positions = np.arange(len(names))
        for offset, (label, scores) in zip((-0.2, 0.2), (("served", self.served), ("refit", self.refit)), strict=True):
            values = [scores.forget_accuracy, scores.retain_accuracy, scores.test_accuracy]
            ax.bar(positions + offset, values, width=0.4, label=label)
        ax.set_xticks(positions, names)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title("Served model vs refit from scratch")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def _plot_losses(self, path: Path) -> None:
        plt = _pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharex=True, sharey=True)
        for ax, (label, scores) in zip(axes, (("served", self.served), ("refit", self.refit)), strict=True):
            bins = np.linspace(0, max(1e-9, scores.forget_losses.max(), scores.nonmember_losses.max()), 30)
            ax.hist(scores.forget_losses, bins=bins, alpha=0.6, density=True, label="forgotten")
            ax.hist(scores.nonmember_losses, bins=bins, alpha=0.6, density=True, label="held-out")
            ax.set_title(f"{label}: MIA AUC {scores.mia_auc:.3f}")
            ax.set_xlabel("loss -log p(label)")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def audit_forget(
    model: Model,
    *,
    ids: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    test: LabelledSet,
    heldout: LabelledSet | None = None,
    seed: int = 0,
) -> UnlearningAudit:
    """Serve a forget request (by ``ids`` or ``subjects``) on a copy of ``model`` and audit it.

    The copy's head is derived before the request, as in a running service, so the forget
    time is that of the low-rank update; both times run until the model is ready to predict.
    Held-out non-members for the attack come from ``heldout`` (default: ``test``).
    """
    if (ids is None) == (subjects is None):
        raise ValueError("Name the samples to forget by ids or by subjects (exactly one).")
    served = Model(model.config)
    served.merge(model)  # an exact copy; the caller's model is left as it was
    served.set_steering(model.steering)
    served.head()
    rows = served.registry.rows_for_ids(ids) if ids is not None else served.registry.rows_for_subjects(subjects or [])
    forgotten = _registry_samples(served, rows)
    start = time.perf_counter()
    receipt = served.forget(ids=ids, subjects=subjects)
    served.head()
    seconds = time.perf_counter() - start
    request = f"{len(ids)} ids" if ids is not None else "subjects " + ", ".join(subjects or [])
    return _audit(served, forgotten, request, receipt.certificate_before, seconds, test, heldout, seed)


def audit_forgotten(
    model: Model,
    forgotten: LabelledSet,
    *,
    test: LabelledSet,
    heldout: LabelledSet | None = None,
    certificate_before: str | None = None,
    request: str = "already served",
    seed: int = 0,
) -> UnlearningAudit:
    """Audit a model that has already forgotten the samples ``forgotten`` (embeddings and labels)."""
    return _audit(model, forgotten, request, certificate_before, None, test, heldout, seed)


def _audit(
    served: Model,
    forgotten: LabelledSet,
    request: str,
    certificate_before: str | None,
    forget_seconds: float | None,
    test: LabelledSet,
    heldout: LabelledSet | None,
    seed: int,
) -> UnlearningAudit:
    """Refit ``served`` from scratch, score both models and compare them."""
    start = time.perf_counter()
    refit = served.refit()
    refit.head()
    refit_seconds = time.perf_counter() - start
    universe = sorted(set(served.classes) | set(refit.classes))
    retained_rows = np.arange(served.count)
    if served.count > MAX_RETAINED:
        retained_rows = np.sort(np.random.default_rng(seed).choice(served.count, MAX_RETAINED, replace=False))
    retained = _registry_samples(served, retained_rows)
    pool = heldout if heldout is not None else test
    nonmembers = pool.subset(matched_nonmembers(forgotten.y, pool.y, seed))

    def scores(model: Model) -> UnlearningScores:
        return score_unlearning(
            lambda X: aligned_proba(model.predict_proba(X), model.classes, universe),
            universe,
            forgotten,
            retained,
            test,
            nonmembers,
        )

    served_scores, refit_scores = scores(served), scores(refit)
    canonical = Model(served.config)  # the served statistics with heads derived afresh; `served` stays as it is
    canonical.merge(served)
    canonical_proba = aligned_proba(canonical.predict_proba(test.X), canonical.classes, universe)
    return UnlearningAudit(
        request=request,
        samples_before=served.count + forgotten.y.shape[0],
        forgotten=forgotten.y.shape[0],
        certificate_before=certificate_before,
        certificate_served=served.certificate(),
        certificate_refit=refit.certificate(),
        forget_seconds=forget_seconds,
        refit_seconds=refit_seconds,
        served=served_scores,
        refit=refit_scores,
        divergence=prediction_divergence(served_scores.test_proba, refit_scores.test_proba),
        canonical_divergence=prediction_divergence(canonical_proba, refit_scores.test_proba),
        test_size=test.y.shape[0],
        retained_scored=retained.y.shape[0],
        nonmembers=nonmembers.y.shape[0],
    )


def _registry_samples(model: Model, rows: Any) -> LabelledSet:
    """The live samples at registry ``rows``, as embeddings (the exact values of their e_q) and labels."""
    index = np.asarray(rows, dtype=np.intp)
    embeddings = np.asarray(model.registry.embeddings[index], dtype=np.float64) / 2.0**model.config.scale_bits
    labels = np.asarray([model.registry.labels[r] for r in index.tolist()])
    return LabelledSet(embeddings, labels)


def _pair(served: UnlearningScores, refit: UnlearningScores, name: str) -> tuple[str, str]:
    """An accuracy of both models, as percentages."""
    return f"{getattr(served, name):.2%}", f"{getattr(refit, name):.2%}"


def _markdown_table(header: list[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table border="1" cellpadding="4"><tr>{head}</tr>{body}</table>'


def _pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (extra ``audit``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

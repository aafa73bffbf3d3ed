"""``erasable certify | info | audit | evaluate``: examine a model without changing it.

``certify`` compares it with a refit from scratch, ``info`` describes it, ``audit`` serves a
forget request on a copy and compares it with a refit, ``evaluate`` scores it on labelled data.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from numpy.typing import NDArray
from rich.markup import escape
from rich.table import Table

from erasable.cli.arguments import (
    CacheDir,
    CliError,
    DataArg,
    ForgetIds,
    ForgetIdsFile,
    ForgetSubjects,
    LabelColumn,
    LabelsPath,
    LedgerModelArg,
    LimitOption,
    ModelArg,
    SplitOption,
    TextColumnOption,
    command_errors,
)
from erasable.cli.inputs import Reading, forget_request, read_for
from erasable.cli.rendering import human_bytes
from erasable.io import Columns
from erasable.model_file import load_model
from erasable.service.commands import open_store
from erasable.terminal import JsonFlag, console, err_console, print_json, say

__all__ = ["audit", "certify", "evaluate", "info"]


def certify(model_path: ModelArg, as_json: JsonFlag = False) -> None:
    """Recompute the statistics from the live samples and compare certificates.

    For a ridge or kernel model with automatic alpha, also recompute the penalty GCV chooses
    and compare it with the one the file keeps, and the head's weights the file keeps (ridge
    weights, or the kernel head's dual coefficients and intercept) with those solved again
    (equal within 1e-8 of their largest). Exits with 0 when all match a refit from scratch, 1 if not.

    Example: erasable certify model.erasable
    """
    with command_errors():
        model = load_model(model_path)
        refit = model.refit()
        ridge = model.config.head == "ridge" and model.count > 0
        kernel = model.config.head == "kernel" and model.count > 0
        alphas = (model.gcv_alpha(), refit.gcv_alpha()) if ridge else (None, None)
        weights_match = not ridge or _same_weights(model.canonical_ridge().weights, refit.canonical_ridge().weights)
        coefficients_match = True
        if kernel:
            kept, solved = model.canonical_kernel(), refit.canonical_kernel()
            if model.config.alpha is None:
                alphas = (kept.alpha, solved.alpha)
            coefficients_match = _same_weights(kept.coefficients, solved.coefficients) and _same_weights(
                kept.intercept, solved.intercept
            )
    stored, recomputed = model.certificate(), refit.certificate()
    if as_json:
        ok = stored == recomputed and alphas[0] == alphas[1] and weights_match and coefficients_match
        print_json(
            {
                "model": str(model_path),
                "ok": ok,
                "samples": model.count,
                "model_certificate": stored,
                "refit_certificate": recomputed,
                "ridge_penalty": alphas[0],
                "ridge_penalty_of_refit": alphas[1],
                "ridge_weights_match": weights_match,
                "kernel_coefficients_match": coefficients_match,
            }
        )
        raise typer.Exit(0 if ok else 1)
    say("model certificate", stored)
    say("refit certificate", recomputed)
    if stored != recomputed:
        err_console.print("[bold red]MISMATCH:[/] the statistics are not those of the live samples.")
        raise typer.Exit(1)
    if alphas[0] is not None:
        say("ridge penalty (file / GCV of the refit)", f"{alphas[0]:.6g} / {alphas[1]:.6g}")
        if alphas[0] != alphas[1]:
            err_console.print(
                "[bold red]MISMATCH:[/] the file's ridge penalty is not the one GCV chooses. (Files written before "
                "GCV read only the leading 1024 features chose it on all of them: a model learned again from its "
                "data chooses it anew.)"
            )
            raise typer.Exit(1)
    if not weights_match:
        err_console.print("[bold red]MISMATCH:[/] the file's ridge weights are not those its statistics give.")
        raise typer.Exit(1)
    if not coefficients_match:
        err_console.print("[bold red]MISMATCH:[/] the file's kernel coefficients are not those its samples give.")
        raise typer.Exit(1)
    console.print(f"[bold green]OK:[/] the statistics are exactly those of the {model.count} live samples.")


def _same_weights(kept: NDArray[np.float64], solved: NDArray[np.float64]) -> bool:
    """Whether a head's weights kept in a file are those solved again, within 1e-8 of the largest (rounding)."""
    scale = float(np.abs(solved).max(initial=0.0)) or 1.0
    return kept.shape == solved.shape and float(np.abs(kept - solved).max(initial=0.0)) <= 1e-8 * scale


def info(
    model_path: ModelArg,
    top: Annotated[int, typer.Option(min=0, help="Number of classes listed, largest first.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Show a model's configuration, class counts, certificate and sizes.

    Example: erasable info model.erasable --top 20
    """
    with command_errors():
        model = load_model(model_path)
        file_size = model_path.stat().st_size
    chosen = model.gcv_alpha() if model.config.head == "ridge" else None
    class_counts = model.embedding_moments.class_counts.tolist()
    largest = sorted(range(len(class_counts)), key=lambda i: -class_counts[i])
    statistics = [model.embedding_moments] + ([model.feature_moments] if model.feature_moments is not None else [])
    steering = model.steering
    facts: dict[str, Any] = {
        "samples": model.count,
        "subjects": len({s for s in model.registry.subjects if s is not None}),
        "certificate": model.certificate(),
        "steering": {
            "classes": len(steering.classes),
            "subjects": len(steering.subjects),
            "ids": len(steering.samples),
        },
        "file_bytes": file_size,
        "statistics_bytes": sum(a.nbytes for m in statistics for a in m.arrays().values()),
        "samples_bytes": model.registry.embeddings.nbytes,
    }
    if as_json:
        classes = [{"label": model.classes[i], "samples": class_counts[i]} for i in largest]
        print_json({"model": str(model_path), "config": model.config.to_dict(), "alpha_chosen_by_gcv": chosen,
                    "classes": classes, **facts})  # fmt: skip
        return
    config = Table("setting", "value", title="configuration")
    for key, value in model.config.to_dict().items():
        config.add_row(key, escape(str(value)))
    if chosen is not None:
        config.add_row("alpha chosen by GCV", f"{chosen:.6g}")
    console.print(config)
    say("classes", f"{len(model.classes)}, the {min(top, len(model.classes))} largest:")
    counts = Table("class", "samples")
    for index in largest[:top]:
        counts.add_row(escape(str(model.classes[index])), str(class_counts[index]))
    console.print(counts)
    for name in ("samples", "subjects", "certificate"):
        say(name, facts[name])
    say("steering", f"{len(steering.classes)} classes, {len(steering.subjects)} subjects, {len(steering.samples)} ids")
    say("file size", human_bytes(file_size))
    say("statistics memory", human_bytes(facts["statistics_bytes"]))
    say("samples memory", human_bytes(facts["samples_bytes"]))


def audit(
    model_path: LedgerModelArg,
    test_path: Annotated[Path, typer.Option("--test", help="Labelled test data (read like DATA of learn).")],
    out: Annotated[Path, typer.Option(help="Directory to write report.md, report.html and the PNG plots to.")],
    ids: ForgetIds = None,
    ids_file: ForgetIdsFile = None,
    subjects: ForgetSubjects = None,
    forgotten: Annotated[
        Path | None,
        typer.Option(help="Labelled data of samples MODEL has already forgotten: audit that forget request."),
    ] = None,
    heldout: Annotated[
        Path | None, typer.Option(help="Labelled held-out data for the membership attack (default: --test).")
    ] = None,
    label_column: LabelColumn = "label",
    split: SplitOption = None,
    text_column: TextColumnOption = "text",
    cache_dir: CacheDir = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out and retained samples drawn.")] = 0,
    as_json: JsonFlag = False,
    store: Annotated[
        str | None,
        typer.Option(help="A ledger (SQLite path or PostgreSQL URL): MODEL is then the name of a model in it."),
    ] = None,
) -> None:
    """Audit a forget request against a refit from scratch; MODEL itself is not changed.

    Serves the request (--id, --ids-file or --subject) on a copy of MODEL, or, with
    --forgotten, takes MODEL as already having forgotten those samples. Then refits from
    scratch and reports: forget-, retained- and test-set accuracy, the membership-inference
    AUC of the forgotten samples against held-out ones, the divergence of the predictions,
    the certificates and the times. With --store, MODEL is read from the ledger and the
    ledger is verified too (hash chain, statistics, refit, live ids against the log).
    Exits with 1 when the certificates differ or the ledger does not verify.

    Example: erasable audit model.erasable --subject alice --test test.npz --split test --out audit/

    Example: erasable audit bank --store models.db --forgotten forgotten.npz --test test.npz --out audit/
    """
    from erasable.audit.report import audit_forget, audit_forgotten  # here: scikit-learn costs other commands 1.7 s
    from erasable.audit.unlearning import LabelledSet

    with command_errors():
        ledger = None if store is None else open_store(store)
        model = load_model(model_path) if ledger is None else ledger.load_model(str(model_path))
        reading = Reading(Columns(text_column, label_column), split, None, cache_dir)

        def labelled(path: Path) -> LabelledSet:
            data, _ = read_for(model, path, reading, need_labels=True)
            assert data.labels is not None, "read with need_labels=True"
            return LabelledSet(data.items, data.labels)

        test, pool = labelled(test_path), None if heldout is None else labelled(heldout)
        if forgotten is not None:
            if any(x is not None for x in (ids, ids_file, subjects)):
                raise CliError("Give either a forget request (--id, --ids-file, --subject) or --forgotten, not both.")
            report = audit_forgotten(model, labelled(forgotten), test=test, heldout=pool, seed=seed)
        else:
            id_list, subject_list = forget_request(ids, ids_file, subjects)
            report = audit_forget(model, ids=id_list, subjects=subject_list, test=test, heldout=pool, seed=seed)
        if ledger is not None:
            verification = ledger.verify(str(model_path))
            report = replace(report, chain_verified=verification.ok, chain_events=verification.chain.events)
        paths = report.write(out)
    failed = not report.certificates_equal or report.chain_verified is False
    if as_json:
        summary = {"certificates_equal": report.certificates_equal, "verdict": report.verdict()}
        print_json({**asdict(report), **summary, "files": [str(p) for p in paths]})
        raise typer.Exit(1 if failed else 0)
    table = Table("metric", "served model", "refit from scratch")
    for row in report.metric_rows():
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    say("divergence (served vs refit)", f"{report.divergence.disagreement:.4%} of test labels differ")
    say("verdict", report.verdict())
    say("report", ", ".join(str(p) for p in paths))
    if failed:
        raise typer.Exit(1)


def evaluate(
    model_path: ModelArg,
    data_path: DataArg,
    out: Annotated[Path, typer.Option(help="Directory to write evaluation.md and the PNG plots to.")],
    ood_label: Annotated[
        str | None, typer.Option(help="Label that marks out-of-scope samples: scored by the OOD AUROC.")
    ] = None,
    label_column: LabelColumn = "label",
    split: SplitOption = None,
    text_column: TextColumnOption = "text",
    labels_path: LabelsPath = None,
    cache_dir: CacheDir = None,
    limit: LimitOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Score MODEL on labelled DATA: accuracy, macro-F1, per-class precision and recall, calibration.

    Also the most frequent confusions of the worst classes, and with --ood-label the AUROC of
    the OOD score separating the samples of that label (out of scope) from the rest. DATA is
    read like learn's. Writes evaluation.md, reliability.png and worst_classes.png to --out.

    Example: erasable evaluate model.erasable test.csv --label-column category --out evaluation/
    """
    from erasable.audit.evaluation import evaluate as score

    with command_errors():
        model = load_model(model_path)
        reading = Reading(Columns(text_column, label_column), split, labels_path, cache_dir, limit)
        data, _ = read_for(model, data_path, reading, need_labels=True)
        assert data.labels is not None, "read with need_labels=True"
        result = score(model, data.items, data.labels, ood_label=ood_label)
        paths = result.write(out)
    if as_json:
        print_json({**asdict(result), "files": [str(p) for p in paths]})
        return
    table = Table("measure", "value", title=f"{result.samples} in-scope samples")
    table.add_row("accuracy", f"{result.accuracy:.4f}")
    table.add_row("macro-F1", f"{result.macro_f1:.4f}")
    table.add_row("expected calibration error", f"{result.ece:.4f}")
    auroc = "n/a (no --ood-label samples)" if result.ood_auroc is None else f"{result.ood_auroc:.4f}"
    table.add_row(f"OOD AUROC ({result.out_of_scope} out of scope)", auroc)
    console.print(table)
    worst = ", ".join(f"{c.label} ({c.recall:.2f})" for c in result.worst()[:5])
    say("lowest recall", worst)
    say("report", ", ".join(str(p) for p in paths))

"""``erasable learn`` and ``erasable forget``: the commands that add samples to a model file and remove them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from erasable.cli.arguments import (
    CacheDir,
    CliError,
    DataArg,
    ForgetIds,
    ForgetIdsFile,
    ForgetSubjects,
    IdColumn,
    LabelColumn,
    LabelsPath,
    LimitOption,
    ModelArg,
    SplitOption,
    SubjectColumn,
    TextColumnOption,
    command_errors,
)
from erasable.cli.inputs import Reading, Vectors, check_dimension, forget_request, read_for
from erasable.cli.rendering import print_summary, say_certificates
from erasable.config import ModelConfig
from erasable.encoders import CUSTOM, EmbeddingCache
from erasable.io import Columns, read
from erasable.model import CHUNK_ROWS, HeadKind, Model
from erasable.model_file import load_model, save_model
from erasable.parameters import DEFAULTS
from erasable.terminal import JsonFlag, console, print_json, progress, say, status

__all__ = ["forget", "learn", "save_changed"]


def learn(
    model_path: ModelArg,
    data_path: DataArg,
    label_column: LabelColumn = "label",
    labels_file: Annotated[
        Path | None, typer.Option(help="Labels: .npy or text, one per line (needed for .npy DATA).")
    ] = None,
    id_column: IdColumn = None,
    subject_column: SubjectColumn = None,
    split: SplitOption = None,
    head: Annotated[
        HeadKind | None, typer.Option(help="Head used for predictions.", show_default=str(DEFAULTS["head"]))
    ] = None,
    feature_map: Annotated[
        Literal["random_relu", "identity"] | None,
        typer.Option(help="Features of the ridge head.", show_default=str(DEFAULTS["feature_map"])),
    ] = None,
    width: Annotated[int | None, typer.Option(help="Random ReLU width.", show_default=str(DEFAULTS["width"]))] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random projection seed.", show_default=str(DEFAULTS["seed"]))
    ] = None,
    feature_bits: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=15,
            help="Bits of each random ReLU feature (below 15 scale-free; 15: the shifted int16 map of earlier models).",
            show_default=str(DEFAULTS["feature_bits"]),
        ),
    ] = None,
    scale_bits: Annotated[
        int | None,
        typer.Option(
            help="Fixed-point scale: |x| must stay below 2**(15-scale_bits).", show_default=str(DEFAULTS["scale_bits"])
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Ridge penalty; chosen by GCV when omitted.")] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            metavar="text|text-mpnet|image|text:PATH",
            help="Learn raw inputs embedded by this encoder: text is all-MiniLM-L6-v2, text-mpnet "
            "all-mpnet-base-v2 (more accurate, about 5x slower; extra text-mpnet), text:PATH a "
            "sentence-transformers model saved in PATH.",
            show_default="vectors",
        ),
    ] = None,
    text_column: TextColumnOption = "text",
    labels_path: LabelsPath = None,
    cache_dir: CacheDir = None,
    limit: LimitOption = None,
) -> None:
    """Learn labelled vectors, or raw texts and images, into MODEL, creating it if it does not exist.

    Vectors: NPZ/NPY/CSV. Raw inputs (with --encoder, or into a model that has one): a
    CSV/TSV/JSONL/Parquet table (--text-column, --label-column), a folder of images with one
    subfolder per class, an NPZ of texts or images (--split), or an IDX file (--labels-path;
    found beside it when named like Fashion-MNIST's). predict, explain and audit read data
    the same way. Ids are checked before anything is encoded. Ids come from the data (NPZ array
    ids, --id-column, image paths) or are consecutive integers continuing the model's. The
    configuration options apply when MODEL is created; when it exists they may be omitted,
    or must match it.

    Example: erasable learn model.erasable train.csv --encoder text --text-column text --label-column category
    """
    with command_errors():
        columns = Columns(text_column, label_column, id_column, subject_column)
        reading = Reading(columns, split, labels_path, cache_dir, limit)
        existing = load_model(model_path) if model_path.exists() else None
        options = {
            "encoder": encoder,
            "head": head,
            "feature_map": feature_map,
            "width": width,
            "seed": seed,
            "feature_bits": feature_bits,
            "scale_bits": scale_bits,
            "alpha": alpha,
        }
        given = {k: v for k, v in options.items() if v is not None}
        if encoder is not None or (existing is not None and existing.config.encoder is not None):
            model = _open_or_create(model_path, existing, given, None)
            data, _ = read_for(model, data_path, reading, need_labels=True, to_learn=True)
        else:
            data = read(data_path, columns, split=split, labels_path=labels_file, need_labels=True).first(limit)
            model = _open_or_create(model_path, existing, given, data.items.shape[1])
            check_dimension(model, data, data_path)
        _learn_in_chunks(model, data)
        save_changed(model, model_path)
    console.print(f"Learned {data.items.shape[0]} samples into {escape(str(model_path))}.", soft_wrap=True)
    print_summary(model)


def save_changed(model: Model, path: Path) -> None:
    """Save ``model``; a ridge model first has its penalty chosen by GCV (seconds at D = 4096), a kernel model
    its head solved (seconds at 10,000 samples).

    The file keeps them, so no later ``predict`` has to compute them again.
    """
    work = {"ridge": " (choosing the ridge penalty by GCV)", "kernel": " (solving the kernel head)"}
    automatic = model.config.alpha is None or model.config.head == "kernel"
    with status(f"Saving the model{work.get(model.config.head, '') if automatic else ''}…"):
        save_model(model, path)


def _open_or_create(path: Path, existing: Model | None, options: dict[str, Any], dim: int | None) -> Model:
    """The ``existing`` model at ``path``, or a new one configured by ``options`` for ``dim``-d inputs."""
    if existing is None:
        model = Model(ModelConfig.from_parameters(dim, **options))
    else:
        model = existing
        if options:
            params = {**model.config.parameters(), **options}
            if params["encoder"] == CUSTOM:
                raise CliError(f"{path} was built with your own encoder: the command line cannot add to it.")
            wanted = ModelConfig.from_parameters(model.config.input_dim, **params).to_dict()
            differing = [f"{k} is {v}, not {wanted[k]}" for k, v in model.config.to_dict().items() if wanted[k] != v]
            if differing:
                raise CliError(
                    f"{path} exists with another configuration ({'; '.join(differing)}); "
                    "omit the configuration options to add to it."
                )
    return model


def _learn_in_chunks(model: Model, data: Vectors) -> None:
    """``model.learn`` on consecutive chunks of the data, with a progress bar on a terminal.

    The ids and the fixed-point range of all the data are checked first, to fail before
    any long computation.
    """
    labels = data.labels
    assert labels is not None, "read with need_labels=True"
    n = data.items.shape[0]
    if data.ids is not None:
        model.registry.check_new_ids(data.ids)
    model.quantize(data.items)
    with progress("Learning", n) as advance:
        for start in range(0, n, CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            model.learn(
                data.items[rows],
                labels[rows],
                ids=None if data.ids is None else data.ids[rows],
                subjects=None if data.subjects is None else data.subjects[rows],
                progress=advance,
            )


def forget(
    model_path: ModelArg,
    ids: ForgetIds = None,
    ids_file: ForgetIdsFile = None,
    subjects: ForgetSubjects = None,
    classes: Annotated[
        list[str] | None, typer.Option("--class", help="Forget every sample of this class (repeatable).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Embedding cache to empty as well: it may hold embeddings of the forgotten inputs."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Forget samples by id, by subject or by class, exactly: the result equals learning only the rest.

    --id and --ids-file may be combined; subjects and classes are requests of their own.
    Prints the receipt: the number of samples removed and the certificates before and after.

    Example: erasable forget model.erasable --id 17 --id 42
    """
    with command_errors():
        model = load_model(model_path)
        if classes is not None:
            if any(x is not None for x in (ids, ids_file, subjects)):
                raise CliError("Forget by class alone: --class cannot be combined with --id, --ids-file or --subject.")
            by_name = {str(c): c for c in model.classes}
            unknown = [c for c in classes if c not in by_name]
            if unknown:
                raise CliError(f"No class {unknown[0]!r} in {model_path}.")
            receipt = model.forget(classes=[by_name[c] for c in classes])
        else:
            id_list, subject_list = forget_request(ids, ids_file, subjects)
            receipt = model.forget(ids=id_list, subjects=subject_list)
        save_changed(model, model_path)
        purged = EmbeddingCache(cache_dir).clear() if cache_dir is not None else None
    if as_json:
        print_json(
            {
                "model": str(model_path),
                "forgot": len(receipt.ids),
                "ids": list(receipt.ids),
                "certificate_before": receipt.certificate_before,
                "certificate_after": receipt.certificate_after,
                "samples_left": model.count,
                "cache_files_removed": purged,
            }
        )
        return
    console.print(f"Forgot {len(receipt.ids)} samples from {escape(str(model_path))}.", soft_wrap=True)
    say_certificates(receipt)
    say("samples left", model.count)
    if purged is not None:
        say("cache files removed", purged)

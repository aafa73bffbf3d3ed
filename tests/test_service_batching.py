"""Concurrent requests share forward passes of the encoder, and get exactly the embeddings of unshared calls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from erasable.service.batching import EmbeddingBatcher


class SlowEncoder:
    """Embeds a text as (its length, its first character code); records each call's size."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        if "boom" in texts:
            raise ValueError("cannot embed 'boom'")
        time.sleep(0.05)  # long enough for concurrent callers to queue behind a running pass
        with self.lock:
            self.calls.append(len(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_concurrent_callers_share_calls_and_get_their_own_rows() -> None:
    encoder = SlowEncoder()
    batcher = EmbeddingBatcher(encoder)
    requests = [[f"{chr(97 + i % 26)}{'x' * i}", f"{chr(65 + i % 26)}"] for i in range(24)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(batcher.embed, requests))
    batcher.close()
    shared_calls = list(encoder.calls)
    assert sum(shared_calls) == 48 and len(shared_calls) < len(requests)  # each text once, in fewer calls
    for texts, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer, encoder(texts))


def test_one_callers_error_does_not_fail_the_others() -> None:
    encoder = SlowEncoder()
    batcher = EmbeddingBatcher(encoder)
    requests = [["fine"], ["boom"], ["also fine"]] * 4
    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(batcher.embed, texts) for texts in requests]
    for texts, future in zip(requests, futures, strict=True):
        if texts == ["boom"]:
            with pytest.raises(ValueError, match="boom"):
                future.result()
        else:
            np.testing.assert_array_equal(future.result(), encoder(texts))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.embed(["late"])


def test_text_embeddings_do_not_depend_on_who_shares_the_pass() -> None:
    pytest.importorskip("sentence_transformers", reason="the text extra is not installed")
    from erasable.encoders import TextEncoder

    encoder = TextEncoder()
    texts = [
        "my card was declined",
        "how do I top up by bank transfer?",
        "I think someone used my card without asking, please freeze it now",
        "refund",
        "Where is my new card? It has been two weeks and it still has not arrived at my address.",
    ] * 4
    alone = np.vstack([encoder.encode([text]) for text in texts])
    batcher = EmbeddingBatcher(encoder.encode)
    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        shared = np.vstack(list(pool.map(lambda text: batcher.embed([text]), texts)))
    batcher.close()
    np.testing.assert_array_equal(shared, alone)  # bit for bit

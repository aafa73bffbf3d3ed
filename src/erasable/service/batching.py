"""Shared forward passes for the raw inputs of concurrent requests.

A text encoder runs forward passes of a fixed shape -- ``batch_size`` rows, so that an
embedding depends on its text alone (see :mod:`erasable.encoders.text`) -- and a lone
request pays for a whole pass. An :class:`EmbeddingBatcher` gives each encoder one worker
thread: requests queue their inputs, and every pass takes all the inputs that queued while
the previous one ran. A single client waits for nothing more than its own pass; concurrent
clients share passes. Since an embedding does not depend on its batch, every answer is
the one an unbatched call gives.

>>> batcher = EmbeddingBatcher(lambda texts: np.array([[len(t)] for t in texts], dtype=np.float32))
>>> batcher.embed(["a", "abc"]).tolist()
[[1.0], [3.0]]
>>> batcher.close()
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["EmbeddingBatcher"]

#: Most inputs gathered into one call of the encoder (it splits them into passes itself).
MAX_BATCH_INPUTS = 256

_Job = tuple[list[Any], "Future[NDArray[np.float32]]"]


class EmbeddingBatcher:
    """Embed the inputs of concurrent callers with one worker thread, in shared calls of ``encode``."""

    def __init__(self, encode: Callable[[list[Any]], NDArray[np.float32]], max_inputs: int = MAX_BATCH_INPUTS) -> None:
        self._encode = encode
        self._max_inputs = max_inputs
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._serve, name="erasable-embedding-batcher", daemon=True)
        self._worker.start()

    def embed(self, items: list[Any]) -> NDArray[np.float32]:
        """The embeddings of ``items``, computed in a call shared with other callers; errors are re-raised here."""
        if not self._worker.is_alive():
            raise RuntimeError("The embedding batcher is closed.")
        future: Future[NDArray[np.float32]] = Future()
        self._jobs.put((list(items), future))
        return future.result()

    def close(self) -> None:
        """Stop the worker once the queued calls are done."""
        self._jobs.put(None)
        self._worker.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            jobs, count, closing = [job], len(job[0]), False
            while count < self._max_inputs:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                jobs.append(more)
                count += len(more[0])
            self._run(jobs)
            if closing:
                return

    def _run(self, jobs: list[_Job]) -> None:
        try:
            embeddings = self._encode([item for items, _ in jobs for item in items])
        except Exception as exc:
            if len(jobs) > 1:  # one caller's inputs must not fail the others: each on its own
                for job in jobs:
                    self._run([job])
            else:
                jobs[0][1].set_exception(exc)
            return
        start = 0
        for items, future in jobs:
            future.set_result(embeddings[start : start + len(items)])
            start += len(items)

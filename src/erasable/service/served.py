"""The models a server holds in memory, kept in step with the ledger, and the locking that keeps reads consistent.

A write (learn, forget, steer) is planned against the current model while predictions go on,
committed to the ledger in one transaction, and only then applied to the in-memory model
under an exclusive lock. A prediction holds a shared lock for its whole computation, so it
sees exactly one committed state -- never a half-applied update -- and reports that
state's sequence number and certificate. Writers to one model are serialized; different
models are independent.

>>> import numpy as np, tempfile, os
>>> from erasable.ledger.store import LedgerStore
>>> from erasable.model import ModelConfig
>>> served = ServedModels(LedgerStore(os.path.join(tempfile.mkdtemp(), "ledger.db")))
>>> served.create("bank", ModelConfig(input_dim=2, scale_bits=8)).seq
1
>>> slot = served.get("bank")
>>> with slot.writing():
...     event = slot.commit(slot.model.plan_learn(np.array([[1.0, 0.0], [0.0, 1.0]]), ["a", "b"]))
>>> with slot.reading():
...     slot.seq, slot.model.count
(2, 2)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from erasable.heads import RidgeHead
from erasable.ledger.store import Event, LedgerError, LedgerStore
from erasable.model import Change, Model, ModelConfig
from erasable.service.batching import EmbeddingBatcher
from erasable.steering import Steering

log = logging.getLogger(__name__)

__all__ = ["ReadWriteLock", "ServedModel", "ServedModels"]


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            self._condition.wait_for(lambda: not self._writer and not self._readers)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._condition:
                self._writer = False
                self._condition.notify_all()


class ServedModel:
    """One model in memory, the sequence number of the ledger event it reflects, and its locks."""

    def __init__(self, name: str, model: Model, seq: int, store: LedgerStore) -> None:
        self.name = name
        self.model = model
        self.seq = seq
        self.store = store
        self._lock = ReadWriteLock()
        self._writer = threading.Lock()
        self._batcher = EmbeddingBatcher(model.embed) if model.config.encoder is not None else None
        self._kept_head: str | None = None  # the certificate whose ridge head the store keeps, see keep_ridge_head

    def keep_ridge_head(self) -> None:
        """After a prediction: keep the model's ridge head in the store if it is canonical and not kept yet.

        A restarted server then loads it instead of solving it (seconds at D = 4096). Call
        while holding :meth:`reading`. A Woodbury-updated head is not canonical: it is not
        kept (deriving the canonical one here would stall the request).
        """
        model = self.model
        if model.config.head != "ridge" or model.count == 0 or self._kept_head == model.certificate():
            return
        head = model.head("ridge")
        if isinstance(head, RidgeHead) and head.rank_since_refresh == 0:
            try:
                self.store.keep_ridge_head(self.name, model)
            except (LedgerError, sa.exc.SQLAlchemyError) as exc:  # an optimization: the prediction stands
                log.warning("Keeping the ridge head of %r failed: %s", self.name, exc)
            self._kept_head = model.certificate()

    def embed(self, items: list[Any]) -> NDArray[np.float32]:
        """Embeddings of raw inputs by the model's encoder, in forward passes shared with concurrent requests."""
        if self._batcher is None:
            raise ValueError(f"Model {self.name!r} has no encoder: it takes vectors.")
        return self._batcher.embed(items)

    def close(self) -> None:
        """Stop the encoder's worker thread, if any."""
        if self._batcher is not None:
            self._batcher.close()

    def reading(self) -> Any:
        """Hold while computing anything from :attr:`model`: no change is applied meanwhile."""
        return self._lock.shared()

    def writing(self) -> Any:
        """Hold while planning and committing a change: one writer per model at a time."""
        return self._writer

    def commit(self, change: Change, **record: Any) -> Event:
        """Persist a planned change in the ledger, apply it, then erase what a forget left in the store's files.

        Call while holding :meth:`writing`. The change is applied before the erasure, which may
        wait (boundedly) for readers of SQLite's log: from the commit on, no prediction can see
        a forgotten sample. Whether the erasure completed is :attr:`LedgerStore.residue_pending`.
        """
        self.model.factor_ridge_head()  # a head loaded with its weights follows the change instead of being dropped
        event = self.store.commit(self.name, change, expected_seq=self.seq, erase=False, **record)
        with self._lock.exclusive():
            self.model.apply(change)
            self.seq = event.seq
        self.store.erase_residues_after(change)
        return event

    def steer(self, steering: Steering) -> Event:
        """Persist a planned steering in the ledger, then use it (call while holding :meth:`writing`)."""
        event = self.store.commit_steering(self.name, steering, expected_seq=self.seq)
        with self._lock.exclusive():
            self.model.set_steering(steering)
            self.seq = event.seq
        return event


class ServedModels:
    """The models of a store, loaded on first use."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._models: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> ServedModel:
        with self._lock:
            if name not in self._models:
                model, seq = self.store.load(name)
                self._models[name] = ServedModel(name, model, seq, self.store)
            return self._models[name]

    def create(self, name: str, config: ModelConfig) -> ServedModel:
        with self._lock:
            model = self.store.create_model(name, config)
            self._models[name] = ServedModel(name, model, 1, self.store)
            return self._models[name]

    def delete(self, name: str) -> None:
        with self._lock:
            slot = self._models.pop(name, None)
            if slot is None:
                self.store.delete_model(name)  # raises UnknownModelError if there is none
                return
            with slot.writing():
                self.store.delete_model(name)
            slot.close()

    def names(self) -> list[str]:
        return self.store.model_names()

"""The durable ledger: models, their live samples, statistics and hash-chained events in a database.

SQLite by default (a file path: nothing to start) or PostgreSQL (a ``postgresql+psycopg://``
URL), through SQLAlchemy Core with one schema (:mod:`erasable.ledger.schema`).

A learn or forget reaches the store as a planned :class:`~erasable.model.Change`;
:meth:`LedgerStore.commit` writes its samples (inserted or deleted), its event and the
statistics after it in **one transaction**, guarded by the sequence number the caller
planned against, and only then may the caller apply the change to its in-memory model. A
crash at any point leaves the state of the last committed event; :meth:`LedgerStore.verify`
proves it by checking the hash chain, that the statistics carry the last event's
certificate, that a refit of the stored samples reproduces it, and that the live ids are
exactly those learned and not forgotten according to the log.

**Forgetting is physical.** SQLite runs with ``secure_delete`` (deleted cells and freed pages
are zeroed), but that is not enough: when a delete rebalances the b-tree, SQLite rebuilds a
page without zeroing its unallocated gap, which can keep a stale copy of a cell that moved,
and the copy outlives the cell's later delete (the crash test found forgotten ids so, and
``tests/test_ledger_store.py`` reproduces it). So every forget also **rewrites the file**
(``VACUUM``, which copies only live rows into fresh pages) and then checkpoints and
truncates the write-ahead log. The forget's transaction sets a mark in the file's header
(:data:`REWRITE_PENDING` in ``PRAGMA user_version``) that only a completed rewrite clears,
so a rewrite or truncation that a crash or a reader prevented is done when the store is
next opened, or at the next commit or :meth:`LedgerStore.verify`, which reports whether any
residue is left (:attr:`LedgerStore.residue_pending`). PostgreSQL keeps
deleted rows until ``VACUUM``, which runs after every forget; ``VACUUM`` makes the space
reusable but PostgreSQL may keep old bytes in free space and WAL segments until they are
overwritten or recycled: :meth:`LedgerStore.compact` runs ``VACUUM FULL`` and a
``CHECKPOINT``. Where erasure from the disk must be immediate, use SQLite (see docs/ledger.md).

>>> import numpy as np, tempfile, os
>>> from erasable.model import ModelConfig
>>> store = LedgerStore(os.path.join(tempfile.mkdtemp(), "ledger.db"))
>>> model = store.create_model("bank", ModelConfig(input_dim=2, scale_bits=8))
>>> change = model.plan_learn(np.array([[0.5, 0.1], [0.1, 0.5]]), ["a", "b"], ids=["x", "y"], subjects=["c1", None])
>>> event = store.commit("bank", change)
>>> model.apply(change)
>>> event.seq, store.verify("bank").ok
(2, True)
>>> store.load_model("bank").certificate() == model.certificate()
True
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save
from sqlalchemy.engine import Connection, Engine

from erasable.ledger.chain import ChainVerification, canonical_json, genesis, id_hashes, link, verify_chain
from erasable.ledger.schema import api_keys, events, idempotency, migrate, models, ridge_heads, samples, statistics
from erasable.model import Change, Model, ModelConfig
from erasable.model_file import recomputes_features, safetensors_metadata
from erasable.moments import canonical_labels
from erasable.registry import SampleRegistry
from erasable.statistics import Statistics
from erasable.steering import Steering

__all__ = [
    "ConflictError",
    "Event",
    "IdempotencyError",
    "LedgerError",
    "LedgerStore",
    "ModelExistsError",
    "UnknownModelError",
    "Verification",
    "check_model_name",
    "store_url",
]

log = logging.getLogger(__name__)

#: Model names: letters, digits, ``_`` and ``-``, up to 64; nothing a path or a query could misread.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: Rows per statement when deleting by id (SQLite binds at most 32766 parameters).
DELETE_CHUNK = 2000
#: How long a forget may try to truncate SQLite's write-ahead log while a reader holds it, in seconds. Each try
#: waits at most CHECKPOINT_WAIT_MS for readers (and blocks other writers only that long); after the budget the
#: forget returns with the residue pending (see :attr:`LedgerStore.residue_pending`).
ERASE_SECONDS = 2.0
CHECKPOINT_WAIT_MS = 50
#: The bit of SQLite's ``PRAGMA user_version`` that a forget (or a model's deletion) sets in its own transaction
#: and a completed ``VACUUM`` clears: deleted rows may have stale copies in pages' free space until it is clear.
REWRITE_PENDING = 1
#: How long a statement waits for SQLite's lock before "database is locked".
BUSY_TIMEOUT_MS = 30000


class LedgerError(ValueError):
    """A request the ledger refuses (the store is unchanged)."""


class UnknownModelError(LedgerError, KeyError):
    """No model of that name in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelExistsError(LedgerError):
    """A model of that name exists already."""


class ConflictError(LedgerError):
    """The model changed since the change was planned (another writer committed first)."""


class IdempotencyError(LedgerError):
    """An idempotency key was reused with a different request."""


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model name, else :class:`LedgerError`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise LedgerError(
            f"Invalid model name {name!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or digit."
        )
    return name


def store_url(location: str | Path) -> str:
    """A SQLAlchemy URL: URLs pass through, a path becomes a SQLite file URL."""
    text = str(location)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Event:
    """One entry of a model's log: its body (what the hash covers) and its hash."""

    seq: int
    body: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class Verification:
    """What :meth:`LedgerStore.verify` found; ``ok`` iff every check passed.

    ``residues_erased``: SQLite's file was rewritten after its last deletion and its
    write-ahead log truncated, so no byte of a deleted row is left in the store's files
    (``False``: a reader holds the log, or another process's writer kept the rewrite from
    starting; some may be left). ``None`` on PostgreSQL, which cannot tell (see
    :meth:`LedgerStore.compact`).
    """

    chain: ChainVerification
    certificate_recorded: str
    certificate_of_last_event: str
    certificate_recomputed: str
    live_ids_match_log: bool
    statistics_at_last_event: bool
    residues_erased: bool | None = None

    @property
    def ok(self) -> bool:
        return (
            self.chain.ok
            and self.statistics_at_last_event
            and self.live_ids_match_log
            and self.certificate_recorded == self.certificate_of_last_event == self.certificate_recomputed
            and self.residues_erased is not False
        )


def _statistics_blob(config: ModelConfig, statistics: Statistics) -> bytes:
    """The statistics as safetensors bytes; a small model's feature statistics are left to its samples.

    Like a model file (:func:`~erasable.model_file.recomputes_features`): with few samples the
    D x D feature Gram would be all of every change's write (67 MB at D = 4096), and
    recomputing it from the stored samples when the model is loaded costs O(n D^2).
    """
    classes = json.dumps(canonical_labels(list(statistics.classes)).tolist() if statistics.classes else [])
    recompute = statistics.features is not None and recomputes_features(config, statistics.count)
    metadata = {"classes": classes, "features": "samples" if recompute else "stored"}
    return safetensors_save(statistics.tensors(with_features=not recompute), metadata=metadata)


def _statistics_from_blob(blob: bytes, config: ModelConfig) -> tuple[Statistics, bool]:
    """The stored statistics, and whether their feature statistics were left to the samples (then ``None``)."""
    metadata = safetensors_metadata(blob)
    classes = json.loads(metadata["classes"])
    labels = canonical_labels(classes).tolist() if classes else []
    from_samples = metadata.get("features") == "samples"
    feature_dim = None if from_samples else config.feature_dim
    return Statistics.from_tensors(safetensors_load(blob), labels, config.input_dim, feature_dim), from_samples


def _steering_json(steering: Steering) -> str:
    return canonical_json(steering.to_json()).decode()


def _hashed_pairs(salt: bytes, pairs: list[list[Any]]) -> list[list[Any]]:
    """``[name, weight]`` pairs with each name replaced by its salted hash."""
    return [[hashed, weight] for hashed, (_, weight) in zip(id_hashes(salt, [p[0] for p in pairs]), pairs, strict=True)]


def _label_json(label: Any) -> str:
    return json.dumps(label.item() if isinstance(label, np.generic) else label)


class LedgerStore:
    """Models, samples, statistics and events in SQLite (a path) or PostgreSQL (a URL).

    Thread-safe: writes are serialized by a lock (SQLite has one writer anyway), and every
    write is guarded by the model's sequence number, so two processes sharing a database
    cannot interleave: the second gets :class:`ConflictError` and must reload.
    """

    def __init__(self, location: str | Path) -> None:
        self.url = store_url(location)
        self.engine: Engine = sa.create_engine(self.url, future=True)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        elif self.dialect != "postgresql":
            raise LedgerError(f"Unsupported database {self.dialect!r}: use a SQLite path or a PostgreSQL URL.")
        self._write_lock = threading.Lock()
        #: Whether deleted rows may still have bytes in SQLite's files: a rewrite or a truncation failed.
        self.residue_pending = False
        migrate(self.engine)
        if self.dialect == "sqlite":
            self.erase_residues()  # a crash between a forget's commit and its rewrite left them there

    def close(self) -> None:
        self.engine.dispose()

    # -- models -------------------------------------------------------------------------

    def create_model(self, name: str, config: ModelConfig) -> Model:
        """Register a new, empty model; its log starts with a ``create`` event."""
        check_model_name(name)
        model = Model(config)
        body = {
            "seq": 1,
            "kind": "create",
            "time": _now(),
            "config": config.to_dict(),
            "certificate_after": model.certificate(),
        }
        event_hash = link(genesis(name), body)
        with self._writing() as connection:
            if connection.execute(sa.select(models.c.name).where(models.c.name == name)).first():
                raise ModelExistsError(f"A model named {name!r} exists already.")
            connection.execute(
                sa.insert(models).values(
                    name=name, config=config.canonical_json().decode(), salt=secrets.token_bytes(16), created_at=_now()
                )
            )
            connection.execute(sa.insert(events).values(model=name, seq=1, body=json.dumps(body), hash=event_hash))
            connection.execute(
                sa.insert(statistics).values(
                    model=name,
                    seq=1,
                    last_hash=event_hash,
                    certificate=body["certificate_after"],
                    next_auto_id=0,
                    tensors=_statistics_blob(config, model.statistics),
                    steering=_steering_json(model.steering),
                )
            )
        return model

    def model_names(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(models.c.name).order_by(models.c.name)).scalars())

    def config(self, name: str) -> ModelConfig:
        with self.engine.connect() as connection:
            return ModelConfig.from_dict(json.loads(self._model_row(connection, name).config))

    def delete_model(self, name: str) -> None:
        """Delete a model with its samples, statistics, log and keys, and erase their bytes."""
        with self._writing() as connection:
            self._model_row(connection, name)
            for table in (samples, events, statistics, idempotency, ridge_heads):
                connection.execute(sa.delete(table).where(table.c.model == name))
            connection.execute(sa.delete(api_keys).where(api_keys.c.model == name))
            connection.execute(sa.delete(models).where(models.c.name == name))
            self._mark_rewrite(connection)
        self.erase_residues()

    def _model_row(self, connection: Connection, name: str) -> Any:
        row = connection.execute(sa.select(models).where(models.c.name == check_model_name(name))).first()
        if row is None:
            raise UnknownModelError(f"No model named {name!r}.")
        return row

    def load_model(self, name: str) -> Model:
        """The model as committed: its live samples and statistics (checked against the certificate)."""
        return self.load(name)[0]

    def load(self, name: str) -> tuple[Model, int]:
        """The committed model and the sequence number of its last event, read from one snapshot."""
        with self._snapshot() as connection:
            return self._load(connection, name)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction, one at a time in this process; on SQLite it takes the write lock at once
        (``BEGIN IMMEDIATE``). A deferred one would read first and then fail to upgrade to a writer with
        "database is locked", without waiting, whenever a checkpoint holds the lock at that moment."""
        with (
            self._write_lock,
            self.engine.connect() as connection,
            connection.execution_options(sqlite_begin="IMMEDIATE").begin(),
        ):
            yield connection

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one committed state throughout (REPEATABLE READ on PostgreSQL, whose
        default gives each statement its own snapshot; a SQLite read transaction is one already)."""
        with self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    def _load(self, connection: Connection, name: str) -> tuple[Model, int]:
        row = self._model_row(connection, name)
        config = ModelConfig.from_dict(json.loads(row.config))
        stats = connection.execute(sa.select(statistics).where(statistics.c.model == name)).one()
        ids, subjects, labels, vectors = [], [], [], []
        query = sa.select(samples.c.id, samples.c.subject, samples.c.label, samples.c.embedding)
        for sample in connection.execute(query.where(samples.c.model == name).order_by(samples.c.id)):
            ids.append(sample.id)
            subjects.append(sample.subject)
            labels.append(json.loads(sample.label))
            vectors.append(sample.embedding)
        registry = SampleRegistry(config.input_dim)
        if ids:
            matrix = np.frombuffer(b"".join(vectors), dtype="<i2").reshape(len(ids), config.input_dim)
            registry.append(ids, subjects, canonical_labels(labels).tolist(), matrix.astype(np.int16))
        stored, from_samples = _statistics_from_blob(stats.tensors, config)
        model = Model.restore(
            config,
            stored,
            samples=registry,
            next_auto_id=int(stats.next_auto_id),
            features_from_samples=from_samples,
        )
        if model.certificate() != stats.certificate:
            raise LedgerError(f"The statistics of {name!r} do not match their certificate: the store is damaged.")
        try:
            model.set_steering(model.checked_steering(Steering.from_json(json.loads(stats.steering))))
        except (ValueError, KeyError) as exc:  # SteeringError, UnknownSampleError, bad JSON
            raise LedgerError(f"The steering of {name!r} is invalid ({exc}): the store is damaged.") from exc
        self._recall_ridge_head(connection, name, model)
        return model, int(stats.seq)

    def _recall_ridge_head(self, connection: Connection, name: str, model: Model) -> None:
        """Give ``model`` its kept canonical ridge head (:meth:`keep_ridge_head`), if that is of these statistics."""
        kept = connection.execute(sa.select(ridge_heads).where(ridge_heads.c.model == name)).first()
        if kept is None or kept.certificate != model.certificate() or model.config.head != "ridge":
            return
        moments = model.ridge_moments
        if len(kept.weights) != 8 * moments.dim * len(moments.classes):
            raise LedgerError(f"The kept ridge head of {name!r} has the wrong size: the store is damaged.")
        weights = np.frombuffer(kept.weights, dtype="<f8").reshape(moments.dim, len(moments.classes))
        try:
            if model.config.alpha is None:
                model.recall_alpha(kept.certificate, float(kept.alpha))
            model.recall_ridge_weights(weights.astype(np.float64))
        except ValueError as exc:
            raise LedgerError(f"The kept ridge head of {name!r} is invalid ({exc}): the store is damaged.") from exc

    def keep_ridge_head(self, name: str, model: Model) -> bool:
        """Keep the canonical ridge head of ``model`` (the committed state of ``name``), so loading skips solving it.

        Only a primal head is kept (a dual one is cheap to solve again), and only while
        ``model``'s certificate is the committed one; every later change deletes it (a forget
        in its own transaction: the weights are computed from the forgotten samples too).
        Returns whether it was kept.
        """
        if not model.keeps_ridge_weights:
            return False
        head = model.canonical_ridge()
        certificate = model.certificate()
        weights = np.ascontiguousarray(head.weights, dtype="<f8").tobytes()
        with self._writing() as connection:
            self._model_row(connection, name)
            current = connection.execute(sa.select(statistics.c.certificate).where(statistics.c.model == name)).one()
            if current.certificate != certificate:
                return False
            kept = connection.execute(sa.select(ridge_heads.c.certificate).where(ridge_heads.c.model == name)).first()
            if kept is not None and kept.certificate == certificate:
                return True  # kept already (this server loaded it)
            connection.execute(sa.delete(ridge_heads).where(ridge_heads.c.model == name))
            connection.execute(
                sa.insert(ridge_heads).values(model=name, certificate=certificate, alpha=head.alpha, weights=weights)
            )
        return True

    # -- changes --------------------------------------------------------------------------

    def commit(
        self,
        name: str,
        change: Change,
        *,
        expected_seq: int | None = None,
        source: str | None = None,
        request: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        request_digest: str = "",
        response: dict[str, Any] | None = None,
        erase: bool = True,
    ) -> Event:
        """Persist a planned change in one transaction: samples, event, statistics (and idempotency record).

        ``expected_seq`` (default: whatever is current) guards against a concurrent writer.
        ``request`` is recorded in the event (how the forget named its samples, without ids);
        ``response`` is what a retry with the same ``idempotency_key`` will be answered.
        After a forget (or any commit while a residue is pending) the residues of deleted rows
        are erased (:meth:`erase_residues`), unless ``erase=False``: then the caller does it,
        e.g. after applying the change so that nothing serves the forgotten samples meanwhile.
        """
        kind = "learn" if change.sign > 0 else "forget"
        if change.sign > 0 and any("\x00" in text for text in (*change.ids, *change.subjects, source) if text):
            raise LedgerError("Sample ids, subjects and sources must not contain NUL characters (PostgreSQL cannot).")
        with self._writing() as connection:
            row, current = self._head(connection, name, expected_seq)
            seq, time = int(current.seq) + 1, _now()
            connection.execute(sa.delete(ridge_heads).where(ridge_heads.c.model == name))  # of the old statistics
            if change.sign > 0:
                self._insert_samples(connection, name, change, source, time)
            else:
                self._delete_samples(connection, name, change.ids)
                self._mark_rewrite(connection)
            if idempotency_key is not None:
                connection.execute(
                    sa.insert(idempotency).values(
                        model=name,
                        key=idempotency_key,
                        request_digest=request_digest,
                        response=json.dumps({**(response or {}), "seq": seq, "certificate": change.certificate_after}),
                    )
                )
            body = {
                "seq": seq,
                "kind": kind,
                "time": time,
                "count": len(change.ids),
                "ids": id_hashes(row.salt, change.ids),
                "certificate_before": change.certificate_before,
                "certificate_after": change.certificate_after,
                **({"request": request} if request else {}),
            }
            event = self._append(
                connection,
                name,
                current,
                body,
                certificate=change.certificate_after,
                next_auto_id=change.next_auto_id,
                tensors=_statistics_blob(change.config, change.statistics_after),
                steering=_steering_json(change.steering_after),
            )
        if erase:
            self.erase_residues_after(change)
        return event

    def erase_residues_after(self, change: Change) -> bool:
        """Erase residues after committing ``change``: a forget tries for :data:`ERASE_SECONDS`; a learn
        retries once if an earlier erasure is pending. ``False`` if residues remain (logged, never raised: the
        change is committed, and a failure here must not make the caller think otherwise)."""
        if change.sign > 0 and not self.residue_pending:
            return True
        try:
            return self.erase_residues(ERASE_SECONDS if change.sign < 0 else 0.0)
        except (sa.exc.SQLAlchemyError, sqlite3.Error) as exc:
            self.residue_pending = True
            log.warning("Erasing the residues of a forget failed (%s); `erasable ledger compact` will.", exc)
            return False

    def _insert_samples(self, connection: Connection, name: str, change: Change, source: str | None, time: str) -> None:
        vectors = np.ascontiguousarray(change.quantized, dtype="<i2")
        rows = zip(change.ids, change.subjects, change.labels, strict=True)
        connection.execute(
            sa.insert(samples),
            [
                {
                    "model": name,
                    "id": sample_id,
                    "subject": subject,
                    "label": _label_json(label),
                    "source": source,
                    "created_at": time,
                    "embedding": vectors[i].tobytes(),
                }
                for i, (sample_id, subject, label) in enumerate(rows)
            ],
        )

    def _mark_rewrite(self, connection: Connection) -> None:
        """Record, in the deleting transaction, that the file must be rewritten (SQLite; see the module docstring).

        In the same transaction, so that a crash after the commit cannot lose the mark: the next
        opening of the store finds it and rewrites the file.
        """
        if self.dialect == "sqlite":
            flags = int(connection.exec_driver_sql("PRAGMA user_version").scalar() or 0)
            connection.exec_driver_sql(f"PRAGMA user_version = {flags | REWRITE_PENDING}")

    def _delete_samples(self, connection: Connection, name: str, ids: Sequence[str]) -> None:
        deleted = 0
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = list(ids[start : start + DELETE_CHUNK])
            result = connection.execute(sa.delete(samples).where(samples.c.model == name, samples.c.id.in_(chunk)))
            deleted += result.rowcount
        if deleted != len(ids):
            raise ConflictError(f"Only {deleted} of {len(ids)} samples to forget are in the store: reload the model.")

    def commit_steering(self, name: str, steering: Steering, *, expected_seq: int | None = None) -> Event:
        """Persist a planned steering (:meth:`Model.plan_steer`) with a ``steer`` event, in one transaction.

        The event records the weights with subjects and ids as salted hashes, like the
        samples of learn and forget events; the certificate is unchanged.
        """
        with self._writing() as connection:
            row, current = self._head(connection, name, expected_seq)
            weights = steering.to_json()
            body = {
                "seq": int(current.seq) + 1,
                "kind": "steer",
                "time": _now(),
                "steering": {
                    "classes": weights["classes"],
                    "subjects": _hashed_pairs(row.salt, weights["subjects"]),
                    "samples": _hashed_pairs(row.salt, weights["samples"]),
                },
                "certificate_before": current.certificate,
                "certificate_after": current.certificate,
            }
            return self._append(connection, name, current, body, steering=_steering_json(steering))

    def _head(self, connection: Connection, name: str, expected_seq: int | None) -> tuple[Any, Any]:
        """The model's row and its statistics' sequence number, last hash and certificate (locked on PostgreSQL).

        Raises :class:`ConflictError` if the sequence number is not ``expected_seq`` (when given).
        """
        row = self._model_row(connection, name)
        query = sa.select(statistics.c.seq, statistics.c.last_hash, statistics.c.certificate)
        query = query.where(statistics.c.model == name)
        current = connection.execute(query.with_for_update() if self.dialect == "postgresql" else query).one()
        if expected_seq is not None and current.seq != expected_seq:
            raise ConflictError(f"Model {name!r} is at event {current.seq}, not {expected_seq}: reload it.")
        return row, current

    def _append(self, connection: Connection, name: str, current: Any, body: dict[str, Any], **values: Any) -> Event:
        """Chain ``body`` after the last event and move the statistics to it, with ``values``, guarded by its seq."""
        event_hash = link(current.last_hash, body)
        connection.execute(
            sa.insert(events).values(model=name, seq=body["seq"], body=json.dumps(body), hash=event_hash)
        )
        updated = connection.execute(
            sa.update(statistics)
            .where(statistics.c.model == name, statistics.c.seq == current.seq)
            .values(seq=body["seq"], last_hash=event_hash, **values)
        )
        if updated.rowcount != 1:
            raise ConflictError(f"Model {name!r} changed during the commit: reload it.")
        return Event(body["seq"], body, event_hash)

    def idempotent_response(self, name: str, key: str, request_digest: str) -> dict[str, Any] | None:
        """The recorded response of an earlier request with this key, or ``None`` if the key is new."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(idempotency).where(idempotency.c.model == name, idempotency.c.key == key)
            ).first()
        if row is None:
            return None
        if row.request_digest != request_digest:
            raise IdempotencyError(f"Idempotency key {key!r} was used before for a different request.")
        response: dict[str, Any] = json.loads(row.response)
        return response

    def erase_residues(self, seconds: float = ERASE_SECONDS) -> bool:
        """Remove the bytes of deleted rows from the store's files (see the module docstring).

        SQLite: if a deletion marked the file (:data:`REWRITE_PENDING`), rewrite it (``VACUUM``:
        stale copies of deleted cells can hide in pages' free space, which ``secure_delete`` does
        not zero), then truncate the write-ahead log, trying for up to ``seconds`` while readers
        hold it (each try waits :data:`CHECKPOINT_WAIT_MS` at most, so other writers are never held
        up for long). Returns ``False`` and sets :attr:`residue_pending` if the rewrite could not
        take the write lock or the log stayed busy: bytes of deleted rows may then still be in the
        files, until a later commit, a :meth:`verify` or the next opening of the store erases
        them. PostgreSQL: ``VACUUM``.
        """
        if self.dialect != "sqlite":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM samples")
            return True
        deadline = time.monotonic() + seconds
        raw = self.engine.raw_connection()  # no transaction around the checkpoint: it would hold a snapshot
        try:
            cursor = raw.cursor()
            cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
            try:
                if not self._rewrite(cursor, seconds):
                    self.residue_pending = True
                    log.warning("Another writer held the store: deleted rows stay in its free space until a rewrite.")
                    return False
                while True:
                    busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    if not busy:
                        self.residue_pending = False
                        return True
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.02)
            finally:
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                cursor.close()
        finally:
            raw.close()
        self.residue_pending = True
        log.warning("A reader holds the write-ahead log: deleted rows stay in it until it can be truncated.")
        return False

    def _rewrite(self, cursor: Any, seconds: float) -> bool:
        """``VACUUM`` if a deletion marked the file, then clear the mark; ``False`` if the write lock stayed busy.

        Serialized with this process's writers; another process's writer is waited for up to
        ``seconds`` (at least :data:`CHECKPOINT_WAIT_MS`). Readers do not block it (WAL mode).
        The cost is a copy of the live rows: about a third of a second for 10,003 samples of
        384 dimensions (docs/ledger.md).
        """
        if not int(cursor.execute("PRAGMA user_version").fetchone()[0]) & REWRITE_PENDING:
            return True
        with self._write_lock:
            cursor.execute(f"PRAGMA busy_timeout={max(CHECKPOINT_WAIT_MS, int(seconds * 1000))}")
            try:
                cursor.execute("VACUUM")
                flags = int(cursor.execute("PRAGMA user_version").fetchone()[0])
                cursor.execute(f"PRAGMA user_version = {flags & ~REWRITE_PENDING}")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                return False
            finally:
                cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        return True

    def compact(self) -> None:
        """Rewrite the whole store without free space: ``VACUUM`` (SQLite) or ``VACUUM FULL`` + ``CHECKPOINT``."""
        if self.dialect == "sqlite":
            statements = ["VACUUM", "PRAGMA user_version = 0", "PRAGMA wal_checkpoint(TRUNCATE)"]  # no mark left
        else:
            statements = ["VACUUM FULL", "CHECKPOINT"]
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)

    # -- the log --------------------------------------------------------------------------

    def events(self, name: str, *, after: int = 0, limit: int = 100) -> list[Event]:
        """Up to ``limit`` events with sequence numbers above ``after``, in order."""
        with self.engine.connect() as connection:
            self._model_row(connection, name)
            rows = connection.execute(
                sa.select(events.c.seq, events.c.body, events.c.hash)
                .where(events.c.model == name, events.c.seq > after)
                .order_by(events.c.seq)
                .limit(limit)
            )
            return [Event(int(r.seq), json.loads(r.body), r.hash) for r in rows]

    def verify(self, name: str) -> Verification:
        """Recompute the model from the ledger and check it against the log (see the module docstring).

        Everything is read from one snapshot, so writes committed meanwhile cannot tear it. On
        SQLite it first erases the residues of deleted rows and reports whether it could.
        """
        erased = self.erase_residues() if self.dialect == "sqlite" else None
        with self._snapshot() as connection:
            model, seq = self._load(connection, name)
            row = self._model_row(connection, name)
            head = sa.select(statistics.c.certificate, statistics.c.last_hash)  # not the tensors again
            stats = connection.execute(head.where(statistics.c.model == name)).one()
            log_rows = connection.execute(
                sa.select(events.c.body, events.c.hash).where(events.c.model == name).order_by(events.c.seq)
            )
            logged = [(json.loads(r.body), r.hash) for r in log_rows]
        expected_ids: Counter[str] = Counter()
        last_certificate = ""
        pairs: list[tuple[dict[str, Any], str]] = []
        for body, event_hash in logged:
            pairs.append((body, event_hash))
            last_certificate = body.get("certificate_after", "")
            sign = {"learn": 1, "forget": -1}.get(body["kind"], 0)
            for hashed in body.get("ids", []):
                expected_ids[hashed] += sign
        chain = verify_chain(name, pairs)
        live = Counter(id_hashes(row.salt, model.registry.ids))
        return Verification(
            chain=chain,
            certificate_recorded=stats.certificate,
            certificate_of_last_event=last_certificate,
            certificate_recomputed=model.refit().certificate(),
            live_ids_match_log=+expected_ids == live and not -expected_ids,
            statistics_at_last_event=chain.ok and stats.last_hash == chain.last_hash and seq == chain.events,
            residues_erased=erased,
        )


def _configure_sqlite(engine: Engine) -> None:
    """WAL, full sync, zeroed frees, a busy timeout, and transactions that begin where SQLAlchemy says."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below open transactions
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # e.g. VACUUM, which cannot run inside a transaction
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_begin") else "BEGIN")

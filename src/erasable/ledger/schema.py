"""The ledger's tables (SQLAlchemy Core, one schema for SQLite and PostgreSQL) and their migrations.

Tables, all keyed by model name:

``models``       name, config (JSON), the salt of its id hashes, creation time
``statistics``   the model's Moments (safetensors bytes), certificate, last event seq, next auto id, and the
                 memory's steering weights (JSON, see :mod:`erasable.steering`; added in version 2)
``samples``      the live samples: id, subject, label (JSON), source, time, quantized embedding (int16 LE)
``events``       the append-only, hash-chained log (see :mod:`erasable.ledger.chain`)
``idempotency``  responses of learn requests by idempotency key (counts and certificates, no ids)
``api_keys``     key id, SHA-256 of the secret, scopes, model (``*`` for all), optional expiry (version 3)
``ridge_heads``  the canonical ridge head of the current statistics when known: their certificate, the penalty,
                 the weights (float64 LE); deleted by every change (version 4). A server loads it instead of
                 solving (seconds at D = 4096)

The schema version lives in ``schema_version``; :func:`migrate` brings a database up to
:data:`SCHEMA_VERSION` step by step, each step in its own transaction, and refuses a
database written by a newer erasable.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "api_keys",
    "events",
    "idempotency",
    "metadata",
    "migrate",
    "models",
    "ridge_heads",
    "samples",
    "statistics",
]

metadata = sa.MetaData()

#: Longest model name, sample id, subject, idempotency key: bounded so no request can bloat an index.
NAME_LENGTH = 64
ID_LENGTH = 256
#: The steering of a model that has none (canonical JSON of ``Steering().to_json()``).
EMPTY_STEERING = '{"classes":[],"samples":[],"subjects":[]}'

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

statistics = sa.Table(
    "statistics",
    metadata,
    sa.Column("model", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("certificate", sa.String(64), nullable=False),
    sa.Column("next_auto_id", sa.BigInteger, nullable=False),
    sa.Column("tensors", sa.LargeBinary, nullable=False),
    sa.Column("steering", sa.Text, nullable=False, server_default=EMPTY_STEERING),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("model", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("subject", sa.String(ID_LENGTH), nullable=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("source", sa.String(ID_LENGTH), nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Index("samples_by_subject", "model", "subject"),
    sa.Index("samples_by_label", "model", "label"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("model", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("model", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("key", sa.String(NAME_LENGTH * 2), primary_key=True),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("response", sa.Text, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("model", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("scopes", sa.String(64), nullable=False),
    sa.Column("description", sa.String(256), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=True),  # ISO 8601 UTC; none: never expires
)


ridge_heads = sa.Table(
    "ridge_heads",
    metadata,
    sa.Column("model", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("certificate", sa.String(64), nullable=False),
    sa.Column("alpha", sa.Float, nullable=False),
    sa.Column("weights", sa.LargeBinary, nullable=False),
)


class SchemaVersionError(RuntimeError):
    """The database was written by a newer erasable (or is not an erasable ledger)."""


def _as_created(table: sa.Table, *later: str) -> sa.Table:
    """``table`` without the columns ``later`` added by later versions: the table an older step created."""
    return sa.Table(table.name, sa.MetaData(), *(c._copy() for c in table.columns if c.name not in later))


def _create_v1(connection: Connection) -> None:
    metadata.create_all(connection, tables=[schema_version, models, samples, events, idempotency])
    _as_created(statistics, "steering").create(connection)
    _as_created(api_keys, "expires_at").create(connection)


def _add_steering(connection: Connection) -> None:
    connection.execute(sa.text(f"ALTER TABLE statistics ADD COLUMN steering TEXT NOT NULL DEFAULT '{EMPTY_STEERING}'"))


def _add_key_expiry(connection: Connection) -> None:
    connection.execute(sa.text("ALTER TABLE api_keys ADD COLUMN expires_at VARCHAR(32)"))


def _add_ridge_heads(connection: Connection) -> None:
    ridge_heads.create(connection)


#: Step ``i`` takes a database from version ``i`` to ``i + 1``. Append; never edit a released step.
MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1, _add_steering, _add_key_expiry, _add_ridge_heads]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(connection: Connection) -> int:
    """The schema version of a database (0 when empty)."""
    if not sa.inspect(connection).has_table("schema_version"):
        return 0
    version = connection.execute(sa.select(schema_version.c.version)).scalar()
    return int(version or 0)


def migrate(engine: Engine) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version found before."""
    with engine.begin() as connection:
        found = current_version(connection)
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"The ledger has schema version {found}; this erasable knows up to {SCHEMA_VERSION}: upgrade erasable."
        )
    for version in range(found, SCHEMA_VERSION):
        with engine.begin() as connection:
            MIGRATIONS[version](connection)
            connection.execute(sa.delete(schema_version))
            connection.execute(sa.insert(schema_version).values(version=version + 1))
    return found

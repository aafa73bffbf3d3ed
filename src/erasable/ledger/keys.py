"""API keys: scoped, per model, stored as SHA-256 hashes of their secrets.

A key is shown once, when it is made: ``erasable_<key id>_<secret>``. The store keeps the
key id, ``sha256(secret)``, the scopes, the model it is for (``*`` for every model) and,
optionally, when it expires (from then on it authenticates nothing), so a stolen database
yields no usable key. Secrets are 256 random bits, which is why a fast
hash is enough (no password-style stretching is needed).

Scopes: ``predict``, ``learn``, ``forget``, ``metrics`` (read ``/metrics``, e.g. for a Prometheus
scraper), and ``admin`` (create and delete models, read the log, verify; it implies the others).

>>> import tempfile, os
>>> from erasable.ledger.store import LedgerStore
>>> keys = KeyRing(LedgerStore(os.path.join(tempfile.mkdtemp(), "ledger.db")))
>>> token, key = keys.create(model="bank", scopes=["predict"])
>>> keys.authenticate(token).allows("predict", "bank")
True
>>> keys.authenticate(token).allows("forget", "bank"), keys.authenticate(token + "x")
(False, None)
>>> from datetime import timedelta
>>> brief, _ = keys.create(scopes=["predict"], expires_in=timedelta(seconds=-1))  # expired already
>>> keys.authenticate(brief) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from erasable.ledger.schema import api_keys
from erasable.ledger.store import LedgerError, LedgerStore, check_model_name

__all__ = ["SCOPES", "ApiKey", "KeyRing"]

SCOPES = ("predict", "learn", "forget", "metrics", "admin")
ALL_MODELS = "*"
PREFIX = "erasable"


@dataclass(frozen=True)
class ApiKey:
    """A key's public record: what it may do, on which model."""

    key_id: str
    model: str
    scopes: frozenset[str]
    description: str
    created_at: str
    #: ISO 8601 UTC time from which the key authenticates nothing; ``None``: it never expires.
    expires_at: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the key has expired (at ``now``, default: the current time)."""
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= (now or datetime.now(UTC))

    def allows(self, scope: str, model: str | None = None) -> bool:
        """Whether this key grants ``scope`` on ``model`` (``None``: on no model in particular)."""
        if model is not None and self.model not in (ALL_MODELS, model):
            return False
        return scope in self.scopes or "admin" in self.scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRing:
    """Make, check, list and revoke the API keys of a :class:`~erasable.ledger.store.LedgerStore`."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    def create(
        self,
        *,
        model: str = ALL_MODELS,
        scopes: Iterable[str],
        description: str = "",
        expires_in: timedelta | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key, valid for ``expires_in`` (default: until revoked); returns the token (shown only now) and its
        record."""
        wanted = frozenset(scopes)
        unknown = wanted - set(SCOPES)
        if not wanted or unknown:
            raise LedgerError(f"Scopes must be a non-empty subset of {SCOPES}; got {sorted(wanted)}.")
        if model != ALL_MODELS:
            check_model_name(model)
        if len(description) > 256:
            raise LedgerError("A key description has at most 256 characters.")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires_at = None if expires_in is None else (now + expires_in).isoformat(timespec="seconds")
        record = ApiKey(key_id, model, wanted, description, now.isoformat(timespec="seconds"), expires_at)
        with self.store.engine.begin() as connection:
            connection.execute(
                sa.insert(api_keys).values(
                    key_id=key_id,
                    secret_sha256=_digest(secret),
                    model=model,
                    scopes=",".join(sorted(wanted)),
                    description=description,
                    created_at=record.created_at,
                    expires_at=expires_at,
                )
            )
        return f"{PREFIX}_{key_id}_{secret}", record

    def authenticate(self, token: str) -> ApiKey | None:
        """The key a token belongs to, or ``None`` if it is malformed, unknown, revoked, expired or wrong."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != PREFIX or len(key_id) != 16 or not secret:
            return None
        with self.store.engine.connect() as connection:
            row = connection.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        key = self._record(row)
        return None if key.expired() else key

    def list(self) -> list[ApiKey]:
        with self.store.engine.connect() as connection:
            return [self._record(row) for row in connection.execute(sa.select(api_keys).order_by(api_keys.c.key_id))]

    def revoke(self, key_id: str) -> None:
        with self.store.engine.begin() as connection:
            if connection.execute(sa.delete(api_keys).where(api_keys.c.key_id == key_id)).rowcount != 1:
                raise LedgerError(f"No key with id {key_id!r}.")

    @staticmethod
    def _record(row: sa.Row[tuple[object, ...]]) -> ApiKey:
        scopes = frozenset(row.scopes.split(","))
        return ApiKey(row.key_id, row.model, scopes, row.description, row.created_at, row.expires_at)

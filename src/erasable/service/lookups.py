"""API routes for the people who answer deletion requests: who am I, what models, what is held about a subject.

The console (:mod:`erasable.service.console`) is built on these and on the routes of
:mod:`erasable.service.app`; they are ordinary API routes, in the OpenAPI spec, with the same
keys and the same scope checks (:meth:`~erasable.ledger.keys.ApiKey.allows`):

``GET /v1/whoami``                        any key   the key's id, model and scopes (never its secret)
``GET /v1/overview``                      any key   one summary per model the key may ``predict`` on
``GET /v1/models/{name}/samples``         forget    a subject's (or an id's) samples: ids, labels, times
``GET /v1/models/{name}/receipts/{seq}``  forget    the receipt of a forget: its event, hash and predecessor

A lookup shows what a forget would remove -- ids, classes, when each was learned and from
which source -- and never an embedding. It needs the ``forget`` scope: whoever may erase a
subject may see what is held about it, and nobody else. A receipt names samples only by the
salted hashes the log keeps, so it can be handed on.

>>> import tempfile, os
>>> from fastapi.testclient import TestClient
>>> from erasable.ledger.keys import KeyRing
>>> from erasable.ledger.store import LedgerStore
>>> from erasable.service.app import create_app
>>> store = LedgerStore(os.path.join(tempfile.mkdtemp(), "ledger.db"))
>>> token, _ = KeyRing(store).create(scopes=["admin"])
>>> client = TestClient(create_app(store))
>>> auth = {"Authorization": f"Bearer {token}"}
>>> client.post("/v1/models", json={"name": "bank", "input_dim": 2}, headers=auth).status_code
201
>>> samples = [{"id": "q1", "label": "a", "subject": "c1", "vector": [1, 0]}]
>>> samples += [{"id": "q2", "label": "b", "vector": [0, 1]}]
>>> client.post("/v1/models/bank/learn", json={"samples": samples}, headers=auth).status_code
200
>>> found = client.get("/v1/models/bank/samples", params={"subject": "c1"}, headers=auth).json()
>>> found["count"], found["classes"], [s["id"] for s in found["samples"]]
(1, [{'label': 'a', 'count': 1}], ['q1'])
>>> seq = client.post("/v1/models/bank/forget", json={"subjects": ["c1"]}, headers=auth).json()["seq"]
>>> receipt = client.get(f"/v1/models/bank/receipts/{seq}", headers=auth).json()
>>> receipt["event"]["count"], receipt["event"]["request"]
(1, {'by': 'subjects'})
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from erasable.ledger.chain import genesis
from erasable.ledger.schema import samples, statistics
from erasable.ledger.store import LedgerStore
from erasable.service.app import Caller
from erasable.service.served import ServedModels

__all__ = ["LOOKUP_LIMIT", "lookup_router"]

#: A label as a model holds it: a string or an integer.
Label = str | int

#: Most samples a lookup lists (the count and the classes always cover them all).
LOOKUP_LIMIT = 1000


class KeyInfo(BaseModel):
    """The calling key's public record: what it may do, on which model (``*`` for every model)."""

    key_id: str
    model: str
    scopes: list[str]


class LastEvent(BaseModel):
    seq: int
    kind: str
    time: str


class ModelSummary(BaseModel):
    """What the console's model list shows: size, kind and the certificate of the current state."""

    name: str
    seq: int
    count: int
    class_count: int
    certificate: str
    encoder: str | None
    input_dim: int
    head: str
    feature_map: str
    last_event: LastEvent


class ClassCount(BaseModel):
    label: Label
    count: int


class SampleRecord(BaseModel):
    """One live sample, without its embedding."""

    id: str
    subject: str | None
    label: Label
    source: str | None
    learned_at: str


class SampleLookup(BaseModel):
    """The live samples of one subject (or one id) in a model, as of event ``seq``."""

    model: str
    seq: int
    subject: str | None
    id: str | None
    count: int
    classes: list[ClassCount]
    first_learned: str | None
    last_learned: str | None
    samples: list[SampleRecord]
    truncated: bool


class Receipt(BaseModel):
    """A forget's event as the log holds it, its chain hash and the hash it links to.

    Anyone can check that ``hash == sha256(previous_hash ‖ 0 ‖ canonical JSON of event)``,
    that the log holds this hash at ``event.seq`` (``/events``), and that the chain and
    the current certificate verify (``/verify``, ``erasable ledger verify``).
    """

    model: str
    event: dict[str, Any]
    hash: str
    previous_hash: str
    verify_command: str
    verify_route: str


def lookup_router(served: ServedModels, store: LedgerStore) -> APIRouter:
    """The routes above, over the service's models and ledger."""
    router = APIRouter()

    def permit(key: Any, scope: str, name: str) -> None:
        if not key.allows(scope, name):
            raise HTTPException(403, f"This key lacks the {scope!r} scope on model {name!r}.")

    @router.get("/v1/whoami", tags=["keys"])
    def whoami(key: Caller) -> KeyInfo:
        """The calling key's id, model and scopes: what a client may offer its user (never the secret)."""
        return KeyInfo(key_id=key.key_id, model=key.model, scopes=sorted(key.scopes))

    @router.get("/v1/overview", tags=["models"])
    def overview(key: Caller) -> list[ModelSummary]:
        """A summary of every model this key may ``predict`` on: one request for a list of models."""
        summaries = []
        for name in served.names():
            if not key.allows("predict", name):
                continue
            slot = served.get(name)
            with slot.reading():
                model, seq = slot.model, slot.seq
                config = model.config
                count, class_count, certificate = model.count, len(model.classes), model.certificate()
            last = store.events(name, after=seq - 1, limit=1)[0]
            summaries.append(
                ModelSummary(
                    name=name,
                    seq=seq,
                    count=count,
                    class_count=class_count,
                    certificate=certificate,
                    encoder=config.encoder["kind"] if config.encoder else None,
                    input_dim=config.input_dim,
                    head=config.head,
                    feature_map=config.feature_map.get("kind", "identity"),
                    last_event=LastEvent(seq=last.seq, kind=last.body["kind"], time=last.body["time"]),
                )
            )
        return summaries

    @router.get("/v1/models/{name}/samples", tags=["learning"])
    def lookup(
        name: str,
        key: Caller,
        subject: Annotated[str | None, Query(min_length=1, max_length=256, description="Its every sample.")] = None,
        id: Annotated[str | None, Query(min_length=1, max_length=256, description="The sample of this id.")] = None,
    ) -> SampleLookup:
        """What is held about a subject or a sample id (``forget``): count, classes, ids, times; no embeddings.

        This is exactly what a forget by the same subject (or id) would remove, as of
        event ``seq``. At most 1000 samples are listed (``truncated``); ``count`` and
        ``classes`` always cover them all.
        """
        permit(key, "forget", name)
        if (subject is None) == (id is None):
            raise HTTPException(422, "Give exactly one of subject or id.")
        if "\x00" in (subject or id or ""):
            raise HTTPException(422, "A subject or id contains no NUL characters.")
        served.get(name)  # 404 for an unknown model
        column, value = (samples.c.subject, subject) if subject is not None else (samples.c.id, id)
        query = (
            sa.select(samples.c.id, samples.c.subject, samples.c.label, samples.c.source, samples.c.created_at)
            .where(samples.c.model == name, column == value)
            .order_by(samples.c.created_at, samples.c.id)
        )
        with store.engine.connect() as connection:  # one read transaction: the rows and the seq agree
            seq = connection.execute(sa.select(statistics.c.seq).where(statistics.c.model == name)).scalar_one()
            rows = connection.execute(query).all()
        labels = [json.loads(row.label) for row in rows]
        listed = [
            SampleRecord(id=r.id, subject=r.subject, label=labels[i], source=r.source, learned_at=r.created_at)
            for i, r in enumerate(rows[:LOOKUP_LIMIT])
        ]
        return SampleLookup(
            model=name,
            seq=int(seq),
            subject=subject,
            id=id,
            count=len(rows),
            classes=[ClassCount(label=label, count=n) for label, n in sorted(Counter(labels).items(), key=_by_label)],
            first_learned=rows[0].created_at if rows else None,
            last_learned=rows[-1].created_at if rows else None,
            samples=listed,
            truncated=len(rows) > LOOKUP_LIMIT,
        )

    @router.get("/v1/models/{name}/receipts/{seq}", tags=["audit"])
    def receipt(name: str, seq: Annotated[int, Path(ge=1, le=2**62)], key: Caller) -> Receipt:
        """The receipt of the forget logged as event ``seq`` (``forget``): ids only as salted hashes.

        It holds the event (count, id hashes, how the samples were named, certificates
        before and after, time), its chain hash and its predecessor's, and how to check it.
        """
        permit(key, "forget", name)
        around = {e.seq: e for e in store.events(name, after=max(seq - 2, 0), limit=2)}
        if seq not in around:
            raise HTTPException(404, f"Model {name!r} has no event {seq}.")
        event = around[seq]
        if event.body["kind"] != "forget":
            raise HTTPException(404, f"Event {seq} of model {name!r} is a {event.body['kind']}, not a forget.")
        previous = around[seq - 1].hash if seq > 1 else genesis(name)
        return Receipt(
            model=name,
            event=event.body,
            hash=event.hash,
            previous_hash=previous,
            verify_command=f"erasable ledger verify {name} --store LEDGER",
            verify_route=f"/v1/models/{name}/verify",
        )

    return router


def _by_label(item: tuple[Any, int]) -> tuple[str, Any]:
    """Sort key of labels that are all strings or all integers (a model's labels are one kind)."""
    return (type(item[0]).__name__, item[0])

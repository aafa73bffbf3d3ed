"""API routes for the people who answer deletion requests: who am I, what models, what is held about a subject.

The console (:mod:`erasable.service.console`) is built on these and on the other routes of
:mod:`erasable.service.routes`; they are ordinary API routes, in the OpenAPI spec, with the same
keys and the same scope checks (:meth:`~erasable.ledger.keys.ApiKey.allows`):

``GET /v1/whoami``                        any key   the key's id, model and scopes (never its secret)
``GET /v1/overview``                      any key   one summary per model the key may ``predict`` on
``GET /v1/models/{name}/samples``         forget    a subject's (or an id's) samples: ids, labels, times
``GET /v1/models/{name}/receipts/{seq}``  forget    the receipt of a forget: its event, hash and predecessor
``POST /v1/models/{name}/audit``          forget    a forget request audited on a copy against a refit

A lookup shows what a forget would remove -- ids, classes, when each was learned and from
which source -- and never an embedding. It needs the ``forget`` scope: whoever may erase a
subject may see what is held about it, and nobody else. A receipt names samples only by the
salted hashes the log keeps, so it can be handed on. An audit changes nothing: it serves the
request on a copy of the model and compares the copy with a model refitted from scratch
(:func:`erasable.audit.report.audit_forget`).

>>> import tempfile, os
>>> from fastapi.testclient import TestClient
>>> from erasable.ledger.keys import KeyRing
>>> from erasable.ledger.store import Event, LedgerStore
>>> from erasable.service.app import create_app
>>> store = LedgerStore(os.path.join(tempfile.mkdtemp(), "ledger.db"))
>>> token, _ = KeyRing(store).create(scopes=["admin"])
>>> client = TestClient(create_app(store))
>>> auth = {"Authorization": f"Bearer {token}"}
>>> bank = {"name": "bank", "input_dim": 2, "feature_map": "identity"}
>>> client.post("/v1/models", json=bank, headers=auth).status_code
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

import base64
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Any

import numpy as np
import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field, model_validator

from erasable.audit.report import UnlearningAudit, audit_forget
from erasable.audit.unlearning import LabelledSet
from erasable.ledger.chain import genesis, verify_chain
from erasable.ledger.schema import samples, statistics
from erasable.ledger.store import Event, LedgerStore
from erasable.model import Model
from erasable.service.dependencies import Caller, Service, permit
from erasable.service.schemas import Identifier, Strict

__all__ = ["LOOKUP_LIMIT", "router"]

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


class AuditRequest(Strict):
    """The forget request to audit (exactly one of ``ids`` or ``subjects``) and the held-out samples to use."""

    ids: Annotated[list[Identifier], Field(min_length=1, max_length=10_000)] | None = None
    subjects: Annotated[list[Identifier], Field(min_length=1, max_length=10_000)] | None = None
    held_out: Annotated[int, Field(ge=1, le=10_000)] = 1000
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0

    @model_validator(mode="after")
    def _exactly_one(self) -> AuditRequest:
        if (self.ids is None) == (self.subjects is None):
            raise ValueError("give exactly one of ids or subjects")
        return self


class AuditRow(BaseModel):
    metric: str
    served: str
    refit: str


class DivergenceRow(BaseModel):
    """How far one model's test predictions are from the refit's."""

    predictions: str
    disagreement: float
    total_variation: float


class AuditPlot(BaseModel):
    name: str
    png_base64: str


class AuditReport(BaseModel):
    """An audit of a forget request on a copy of the model, as of event ``seq`` (the model is unchanged).

    ``held_out`` random live samples outside the request are removed from the copy first:
    they are the test set and the membership attack's non-members, unseen by both the copy
    after the request and the refit. The verdict includes the hash chain of the log up to
    ``seq``. ``plots`` is empty when matplotlib is not installed.
    """

    model: str
    seq: int
    certificate: str
    request: str
    forgotten: int
    held_out: int
    certificates_equal: bool
    verdict: str
    certificate_served: str
    certificate_refit: str
    metrics: list[AuditRow]
    divergence: list[DivergenceRow]
    markdown: str
    plots: list[AuditPlot]


router = APIRouter()


@router.get("/v1/whoami", tags=["keys"])
def whoami(key: Caller) -> KeyInfo:
    """The calling key's id, model and scopes: what a client may offer its user (never the secret)."""
    return KeyInfo(key_id=key.key_id, model=key.model, scopes=sorted(key.scopes))


@router.get("/v1/overview", tags=["models"])
def overview(key: Caller, service: Service) -> list[ModelSummary]:
    """A summary of every model this key may ``predict`` on: one request for a list of models."""
    summaries = []
    served, store = service.served, service.store
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
    service: Service,
    subject: Annotated[str | None, Query(min_length=1, max_length=256, description="A subject's samples.")] = None,
    id: Annotated[str | None, Query(min_length=1, max_length=256, description="The sample of an id.")] = None,
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
    service.served.get(name)  # 404 for an unknown model
    column, value = (samples.c.subject, subject) if subject is not None else (samples.c.id, id)
    query = (
        sa.select(samples.c.id, samples.c.subject, samples.c.label, samples.c.source, samples.c.created_at)
        .where(samples.c.model == name, column == value)
        .order_by(samples.c.created_at, samples.c.id)
    )
    with service.store.engine.connect() as connection:  # one read transaction: the rows and the seq agree
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
def receipt(name: str, seq: Annotated[int, Path(ge=1, le=2**62)], key: Caller, service: Service) -> Receipt:
    """The receipt of the forget logged as event ``seq`` (``forget``): ids only as salted hashes.

    It holds the event (count, id hashes, how the samples were named, certificates
    before and after, time), its chain hash and its predecessor's, and how to check it.
    """
    permit(key, "forget", name)
    around = {e.seq: e for e in service.store.events(name, after=max(seq - 2, 0), limit=2)}
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


@router.post("/v1/models/{name}/audit", tags=["audit"])
def audit(name: str, body: AuditRequest, key: Caller, service: Service) -> AuditReport:
    """Audit a forget request before serving it (``forget``): on a copy, against a refit from scratch.

    Reports whether the certificates are equal, the accuracies on the forgotten, retained
    and held-out samples, the membership-inference AUC of the forgotten samples and the
    divergence of the predictions (see ``erasable audit``). The model is not changed.
    """
    permit(key, "forget", name)
    slot = service.served.get(name)
    with slot.reading():
        copy = Model(slot.model.config)
        copy.merge(slot.model)
        copy.set_steering(slot.model.steering)
        seq, certificate = slot.seq, slot.model.certificate()
    registry = copy.registry
    requested = (
        registry.rows_for_ids(body.ids) if body.ids is not None else registry.rows_for_subjects(body.subjects or [])
    )
    others = np.setdiff1d(np.arange(copy.count), requested)
    if len(others) < 2:
        raise HTTPException(422, "Too few samples outside the request to hold out and keep: nothing to audit.")
    rng = np.random.default_rng(body.seed)
    held = np.sort(rng.choice(others, min(body.held_out, len(others) // 2), replace=False))
    embeddings = np.asarray(registry.embeddings[held], dtype=np.float64) / 2.0**copy.config.scale_bits
    test = LabelledSet(embeddings, np.asarray([registry.labels[r] for r in held.tolist()]))
    copy.forget(ids=[registry.ids[r] for r in held.tolist()])
    report = audit_forget(copy, ids=body.ids, subjects=body.subjects, test=test, seed=body.seed)
    chain = verify_chain(name, ((e.body, e.hash) for e in _events_through(service.store, name, seq)))
    report = replace(report, chain_verified=chain.ok, chain_events=chain.events)
    rows = [AuditRow(metric=m, served=a, refit=b) for m, a, b in report.metric_rows()]
    divergence = [
        DivergenceRow(predictions=label, disagreement=d.disagreement, total_variation=d.total_variation)
        for label, d in (
            ("served copy, after the request", report.divergence),
            ("canonical (recomputed from the statistics)", report.canonical_divergence),
        )
    ]
    return AuditReport(
        model=name,
        seq=seq,
        certificate=certificate,
        request=report.request,
        forgotten=report.forgotten,
        held_out=len(held),
        certificates_equal=report.certificates_equal,
        verdict=report.verdict(),
        certificate_served=report.certificate_served,
        certificate_refit=report.certificate_refit,
        metrics=rows,
        divergence=divergence,
        markdown=report.to_markdown(),
        plots=_plots(report),
    )


def _events_through(store: LedgerStore, name: str, seq: int) -> Iterator[Event]:
    """The model's events 1 to ``seq``, a page at a time."""
    after = 0
    while after < seq and (page := store.events(name, after=after, limit=min(1000, seq - after))):
        yield from page
        after = page[-1].seq


def _plots(report: UnlearningAudit) -> list[AuditPlot]:
    """The audit's PNG plots, base64-encoded; none without matplotlib (extra ``audit``)."""
    with tempfile.TemporaryDirectory() as directory:
        try:
            paths = report.write(directory)
        except ImportError:
            return []
        return [
            AuditPlot(name=p.name, png_base64=base64.b64encode(p.read_bytes()).decode())
            for p in paths
            if p.suffix == ".png"
        ]


def _by_label(item: tuple[Any, int]) -> tuple[str, Any]:
    """Sort key of labels that are all strings or all integers (a model's labels are one kind)."""
    return (type(item[0]).__name__, item[0])

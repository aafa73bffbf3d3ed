"""The changes of a model: learn and forget samples, read and set the memory head's steering."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response

from erasable.service.dependencies import Caller, Service, permit
from erasable.service.routes.embeddings import request_embeddings
from erasable.service.schemas import (
    ClassWeight,
    ForgetReceiptResponse,
    ForgetRequest,
    IdWeight,
    LearnRequest,
    LearnResponse,
    SteeringResponse,
    SteerRequest,
    SubjectWeight,
)
from erasable.service.served import ServedModel

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/models/{name}/learn", tags=["learning"])
def learn(
    name: str,
    body: LearnRequest,
    key: Caller,
    service: Service,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> LearnResponse:
    """Learn a batch of samples (``learn``). Ids must be new; all or nothing.

    With an ``Idempotency-Key`` header, a retry of the same request returns the first
    response instead of learning twice; the same key with another request gets 409.
    """
    permit(key, "learn", name)
    store, max_classes = service.store, service.max_classes
    slot = service.served.get(name)
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest() if idempotency_key else ""
    if idempotency_key is not None and (done := store.idempotent_response(name, idempotency_key, digest)):
        return LearnResponse(**done)
    vectors = request_embeddings(
        slot,
        [s.vector for s in body.samples],
        [s.vector_base64 for s in body.samples],
        [s.text for s in body.samples],
    )
    labels = [s.label for s in body.samples]
    if len({type(label) for label in labels}) > 1:
        raise HTTPException(422, "Labels of one model are all strings or all integers.")
    with slot.writing():
        if idempotency_key is not None and (done := store.idempotent_response(name, idempotency_key, digest)):
            return LearnResponse(**done)
        if len(set(slot.model.classes).union(labels)) > max_classes:
            raise HTTPException(
                422,
                f"This learn would give model {name!r} more than {max_classes} classes"
                " (the server's limit: erasable serve --max-classes).",
            )
        change = slot.model.plan_learn(
            vectors, labels, ids=[s.id for s in body.samples], subjects=[s.subject for s in body.samples]
        )
        event = slot.commit(
            change,
            source=body.source,
            idempotency_key=idempotency_key,
            request_digest=digest,
            response={"count": len(change.ids)},
        )
    service.metrics.samples.labels(name).set(slot.model.count)
    return LearnResponse(seq=event.seq, count=len(change.ids), certificate=change.certificate_after)


@router.post(
    "/v1/models/{name}/forget",
    tags=["learning"],
    responses={202: {"description": "Forgotten, but old bytes of the samples are still in the store's files."}},
)
def forget(name: str, body: ForgetRequest, key: Caller, service: Service, response: Response) -> ForgetReceiptResponse:
    """Forget samples by ids, by subject or by class (``forget``), exactly and physically.

    Returns the certificates before and after: ``certificate_after`` equals the
    certificate of a model fitted from scratch on the remaining samples. The forget is
    committed and no prediction uses the samples any more either way; the answer is 202
    instead of 200 (``residues_erased`` false) when a reader of the SQLite file kept old
    page images of them in its write-ahead log, or another process's writer kept the
    file from being rewritten: they are erased at the next commit, verify or start that
    finds the file free.
    """
    permit(key, "forget", name)
    slot = service.served.get(name)
    by = "ids" if body.ids is not None else "subjects" if body.subjects is not None else "classes"
    with slot.writing():
        change = slot.model.plan_forget(ids=body.ids, subjects=body.subjects, classes=body.classes)
        request = {"by": by, **({"classes": body.classes} if body.classes is not None else {})}
        event = slot.commit(change, request=request)
    service.metrics.samples.labels(name).set(slot.model.count)
    service.metrics.forgotten.labels(name).inc(len(change.ids))
    erased = not service.store.residue_pending
    if not erased:
        response.status_code = 202
    return ForgetReceiptResponse(
        seq=event.seq,
        count=len(change.ids),
        certificate_before=change.certificate_before,
        certificate_after=change.certificate_after,
        residues_erased=erased,
    )


@router.get("/v1/models/{name}/steering", tags=["steering"])
def steering(name: str, key: Caller, service: Service) -> SteeringResponse:
    """The memory head's vote weights by class, subject and sample id (``learn``)."""
    permit(key, "learn", name)
    slot = service.served.get(name)
    with slot.reading():
        return _steering(slot)


@router.post("/v1/models/{name}/steer", tags=["steering"])
def steer(name: str, body: SteerRequest, key: Caller, service: Service) -> SteeringResponse:
    """Set vote weights of the memory head (``learn``); the statistics and certificate do not change.

    Only live classes, subjects and ids can be steered; forgetting them drops their
    weights. The change is logged as a ``steer`` event, with subjects and ids hashed.
    """
    permit(key, "learn", name)
    slot = service.served.get(name)
    with slot.writing():
        steering = slot.model.plan_steer(
            classes={w.label: w.weight for w in body.classes},
            subjects={w.subject: w.weight for w in body.subjects},
            ids={w.id: w.weight for w in body.ids},
        )
        slot.steer(steering)
    with slot.reading():
        return _steering(slot)


def _steering(slot: ServedModel) -> SteeringResponse:
    """The steering of a served model as the API answers it (the caller holds its lock)."""
    steering = slot.model.steering
    return SteeringResponse(
        seq=slot.seq,
        certificate=slot.model.certificate(),
        classes=[ClassWeight(label=c, weight=w) for c, w in steering.classes.items()],
        subjects=[SubjectWeight(subject=s, weight=w) for s, w in steering.subjects.items()],
        ids=[IdWeight(id=i, weight=w) for i, w in steering.samples.items()],
    )

"""The HTTP API: learn, forget, predict and verify over a durable ledger (FastAPI).

Every route but ``/health`` needs an API key (``Authorization: Bearer <token>``) with the
route's scope on the model: ``predict``, ``learn``, ``forget``, ``metrics`` (``/metrics``,
which names every model, unless the app is made with ``public_metrics=True``) or ``admin``
(see :mod:`erasable.ledger.keys`). A request without a valid key gets 401, one
without the scope 403, and neither changes anything. Bad input gets a 4xx with a message
and changes nothing; the OpenAPI spec is at ``/openapi.json`` and ``/docs``.

>>> import tempfile, os
>>> from fastapi.testclient import TestClient
>>> from erasable.ledger.keys import KeyRing
>>> from erasable.ledger.store import LedgerStore
>>> store = LedgerStore(os.path.join(tempfile.mkdtemp(), "ledger.db"))
>>> token, _ = KeyRing(store).create(scopes=["admin"])
>>> client = TestClient(create_app(store))
>>> auth = {"Authorization": f"Bearer {token}"}
>>> client.post("/v1/models", json={"name": "bank", "input_dim": 2}, headers=auth).status_code
201
>>> samples = [{"id": "1", "label": "a", "vector": [1, 0]}, {"id": "2", "label": "b", "vector": [0, 1]}]
>>> client.post("/v1/models/bank/learn", json={"samples": samples}, headers=auth).json()["count"]
2
>>> answer = client.post("/v1/models/bank/predict", json={"vectors": [[0.9, 0.1]]}, headers=auth).json()
>>> answer["predictions"][0]["label"]
'a'
>>> client.post("/v1/models/bank/forget", json={"ids": ["2"]}, headers=auth).json()["count"]
1
>>> client.get("/v1/models/bank/verify", headers=auth).json()["ok"]
True
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from numpy.typing import NDArray
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from erasable import __version__
from erasable.exact import OverflowRiskError
from erasable.ledger import UnknownSampleError
from erasable.ledger.keys import ApiKey, KeyRing
from erasable.ledger.store import (
    ConflictError,
    Event,
    IdempotencyError,
    LedgerError,
    LedgerStore,
    ModelExistsError,
    UnknownModelError,
)
from erasable.service.guard import DEFAULT_MAX_CLASSES
from erasable.service.metrics import ServiceMetrics
from erasable.service.schemas import (
    ClassWeight,
    CreateModelRequest,
    ForgetReceiptResponse,
    ForgetRequest,
    IdWeight,
    LearnRequest,
    LearnResponse,
    ModelInfo,
    NeighbourOut,
    Prediction,
    PredictRequest,
    PredictResponse,
    ScoredLabel,
    SteeringResponse,
    SteerRequest,
    SubjectWeight,
)
from erasable.service.served import ServedModel, ServedModels

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

log = logging.getLogger(__name__)

#: Largest request body accepted (bytes); larger ones get 413 before they are read.
DEFAULT_MAX_BODY = 64 * 2**20

#: Neighbours returned with each prediction of a memory-head model when the request names no number.
MEMORY_NEIGHBOURS = 5

#: Status code of each refusal: the request was understood and refused; nothing changed.
ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (UnknownModelError, 404),
    (UnknownSampleError, 404),
    (ModelExistsError, 409),
    (ConflictError, 409),
    (IdempotencyError, 409),
    (OverflowRiskError, 422),
    (LedgerError, 422),
    (ValueError, 422),
]


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, by their header or, if streamed, as read."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) <= self.limit:
                await self.app(scope, receive, send)  # the server delivers no more than declared
            else:
                await self._refuse(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await JSONResponse({"detail": f"Request body over {self.limit} bytes."}, status_code=413)(scope, receive, send)


class JsonByDefault:
    """ASGI middleware: a body labelled as a form, or not labelled at all, is read as the JSON it is.

    ``curl -d '{...}'`` sends ``Content-Type: application/x-www-form-urlencoded``, and some
    clients send no type; every body this API takes is JSON, so both are relabelled
    ``application/json`` (any other type is left as it is, and refused as not JSON).
    """

    RELABELLED = (b"", b"application/x-www-form-urlencoded")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(name, value) for name, value in scope["headers"] if name != b"content-type"]
            declared = dict(scope["headers"]).get(b"content-type", b"")
            if declared.split(b";")[0].strip().lower() in self.RELABELLED:
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


_bearer = HTTPBearer(auto_error=False, description="An API key made by `erasable keys create`.")


def _caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
    """The key of the request; 401 without a valid one."""
    key = request.app.state.keys.authenticate(credentials.credentials) if credentials else None
    if key is None:
        raise HTTPException(401, "A valid API key is required (Authorization: Bearer <token>).")
    assert isinstance(key, ApiKey)
    return key


Caller = Annotated[ApiKey, Depends(_caller)]


def create_app(
    store: LedgerStore,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_classes: int = DEFAULT_MAX_CLASSES,
    public_metrics: bool = False,
) -> FastAPI:
    """The API over ``store``: models are loaded from it on first use and every change is committed to it.

    ``max_classes`` bounds the classes of a model (each costs a row of every class statistic,
    and every change writes them all); a learn beyond it is refused with 422.
    ``public_metrics`` serves ``/metrics`` without a key.
    """
    app = FastAPIOffline(  # /docs and /redoc with assets served from the installed package, not a CDN
        title="erasable",
        version=__version__,
        description="Classification whose knowledge can be added and removed exactly, with certificates.",
    )
    served = ServedModels(store)
    metrics = ServiceMetrics()
    app.state.keys = KeyRing(store)

    for error, status in ERROR_STATUS:
        app.add_exception_handler(error, _handler(status))

    @app.exception_handler(sa.exc.OperationalError)
    async def busy(_: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        """The database is locked (another process writes or checkpoints the SQLite file) or unreachable."""
        log.warning("Ledger unavailable: %s", exc.orig)  # the statement and its parameters stay in the log
        detail = "The ledger is busy or unreachable; nothing was changed by this request. Retry shortly."
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - start)
        return response

    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(JsonByDefault)

    def permit(key: ApiKey, scope: str, name: str | None = None) -> None:
        if not key.allows(scope, name):
            raise HTTPException(403, f"This key lacks the {scope!r} scope" + (f" on model {name!r}." if name else "."))

    # -- service ----------------------------------------------------------------------------

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: the server answers and its ledger is reachable."""
        store.model_names()
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", tags=["service"], response_class=Response)
    def prometheus(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Response:
        """Prometheus metrics (text exposition format): a key with the ``metrics`` scope, unless public.

        They name every model and count its live and forgotten samples, so they are not public
        by default (``erasable serve --public-metrics`` makes them so).
        """
        if not public_metrics:
            permit(_caller(request, credentials), "metrics")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- models -----------------------------------------------------------------------------

    @app.post("/v1/models", status_code=201, tags=["models"])
    def create_model(body: CreateModelRequest, key: Caller) -> ModelInfo:
        """Create an empty model (``admin``): of vectors (``input_dim``) or of raw inputs (``encoder``)."""
        permit(key, "admin", body.name)
        from erasable.estimator import ErasableClassifier  # here: scikit-learn costs the server's start 1.7 s

        params = body.model_dump(exclude={"name", "input_dim"})
        config = ErasableClassifier(**params).model_config(body.input_dim)
        slot = served.create(body.name, config)
        return _info(slot)

    @app.get("/v1/models", tags=["models"])
    def list_models(key: Caller) -> list[str]:
        """The names of the models this key may use."""
        return [name for name in served.names() if key.model in ("*", name)]

    @app.get("/v1/models/{name}", tags=["models"])
    def model_info(name: str, key: Caller) -> ModelInfo:
        """Sample count, classes, certificate and configuration of a model."""
        permit(key, "predict", name)
        slot = served.get(name)
        with slot.reading():
            return _info(slot)

    @app.delete("/v1/models/{name}", status_code=204, tags=["models"])
    def delete_model(name: str, key: Caller) -> Response:
        """Delete a model, its samples, its log and its keys (``admin``); their bytes are erased."""
        permit(key, "admin", name)
        served.delete(name)
        return Response(status_code=204)

    # -- learn and forget -------------------------------------------------------------------

    @app.post("/v1/models/{name}/learn", tags=["learning"])
    def learn(
        name: str,
        body: LearnRequest,
        key: Caller,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> LearnResponse:
        """Learn a batch of samples (``learn``). Ids must be new; all or nothing.

        With an ``Idempotency-Key`` header, a retry of the same request returns the first
        response instead of learning twice; the same key with another request gets 409.
        """
        permit(key, "learn", name)
        slot = served.get(name)
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest() if idempotency_key else ""
        if idempotency_key is not None and (done := store.idempotent_response(name, idempotency_key, digest)):
            return LearnResponse(**done)
        vectors = _embeddings(
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
        metrics.samples.labels(name).set(slot.model.count)
        return LearnResponse(seq=event.seq, count=len(change.ids), certificate=change.certificate_after)

    @app.post(
        "/v1/models/{name}/forget",
        tags=["learning"],
        responses={202: {"description": "Forgotten, but old bytes of the samples are still in the store's files."}},
    )
    def forget(name: str, body: ForgetRequest, key: Caller, response: Response) -> ForgetReceiptResponse:
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
        slot = served.get(name)
        by = "ids" if body.ids is not None else "subjects" if body.subjects is not None else "classes"
        with slot.writing():
            change = slot.model.plan_forget(ids=body.ids, subjects=body.subjects, classes=body.classes)
            request = {"by": by, **({"classes": body.classes} if body.classes is not None else {})}
            event = slot.commit(change, request=request)
        metrics.samples.labels(name).set(slot.model.count)
        metrics.forgotten.labels(name).inc(len(change.ids))
        erased = not store.residue_pending
        if not erased:
            response.status_code = 202
        return ForgetReceiptResponse(
            seq=event.seq,
            count=len(change.ids),
            certificate_before=change.certificate_before,
            certificate_after=change.certificate_after,
            residues_erased=erased,
        )

    # -- steering ---------------------------------------------------------------------------

    @app.get("/v1/models/{name}/steering", tags=["steering"])
    def steering(name: str, key: Caller) -> SteeringResponse:
        """The memory head's vote weights by class, subject and sample id (``learn``)."""
        permit(key, "learn", name)
        slot = served.get(name)
        with slot.reading():
            return _steering(slot)

    @app.post("/v1/models/{name}/steer", tags=["steering"])
    def steer(name: str, body: SteerRequest, key: Caller) -> SteeringResponse:
        """Set vote weights of the memory head (``learn``); the statistics and certificate do not change.

        Only live classes, subjects and ids can be steered; forgetting them drops their
        weights. The change is logged as a ``steer`` event, with subjects and ids hashed.
        """
        permit(key, "learn", name)
        slot = served.get(name)
        with slot.writing():
            steering = slot.model.plan_steer(
                classes={w.label: w.weight for w in body.classes},
                subjects={w.subject: w.weight for w in body.subjects},
                ids={w.id: w.weight for w in body.ids},
            )
            slot.steer(steering)
        with slot.reading():
            return _steering(slot)

    # -- predict ----------------------------------------------------------------------------

    @app.post("/v1/models/{name}/predict", tags=["prediction"])
    def predict(name: str, body: PredictRequest, key: Caller) -> PredictResponse:
        """Labels, top-k probabilities and OOD scores (``predict``); neighbours from the memory on request.

        All predictions of a request come from one committed state, named in the response;
        ``clipped`` counts the inputs out of the model's fixed-point range (clipped, unreliable).
        """
        permit(key, "predict", name)
        slot = served.get(name)
        vectors = _embeddings(slot, body.vectors, body.vectors_base64, body.texts)
        want_neighbours = body.neighbours or (MEMORY_NEIGHBOURS if slot.model.config.head == "memory" else 0)
        with slot.reading():
            model = slot.model
            if model.count == 0:
                raise HTTPException(409, f"Model {name!r} has no samples yet: learn something first.")
            probabilities = model.predict_proba(vectors)
            ood = model.ood_score(vectors)
            evidence = None
            if want_neighbours:
                evidence = model.memory().explain(model.head_inputs(vectors, "memory"), want_neighbours)
            classes, seq, certificate = model.classes, slot.seq, model.certificate()
        predictions = []
        for i, row in enumerate(probabilities):
            order = np.argsort(-row, kind="stable")[: body.top_k]
            predictions.append(
                Prediction(
                    label=classes[int(order[0])],
                    top=[ScoredLabel(label=classes[int(j)], probability=float(row[j])) for j in order],
                    ood_score=float(ood[i]),
                    neighbours=None if evidence is None else [NeighbourOut(**vars(n)) for n in evidence[i]],
                )
            )
        return PredictResponse(
            seq=seq, certificate=certificate, predictions=predictions, clipped=slot.model.clipped(vectors)
        )

    # -- audit ------------------------------------------------------------------------------

    @app.get("/v1/models/{name}/verify", tags=["audit"])
    def verify(name: str, key: Caller) -> dict[str, Any]:
        """Recompute the model from the ledger and check the certificate chain (``admin``)."""
        permit(key, "admin", name)
        result = store.verify(name)
        return {
            "ok": result.ok,
            "events": result.chain.events,
            "chain_ok": result.chain.ok,
            "chain_problem": result.chain.reason,
            "certificate_recorded": result.certificate_recorded,
            "certificate_of_last_event": result.certificate_of_last_event,
            "certificate_recomputed": result.certificate_recomputed,
            "live_ids_match_log": result.live_ids_match_log,
            "residues_erased": result.residues_erased,
        }

    @app.get("/v1/models/{name}/events", tags=["audit"])
    def list_events(
        name: str,
        key: Caller,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        kind: Annotated[Literal["create", "learn", "forget", "steer"] | None, Query()] = None,
        since: Annotated[datetime | None, Query(description="ISO 8601; UTC when no offset is given.")] = None,
        until: Annotated[datetime | None, Query(description="ISO 8601; UTC when no offset is given.")] = None,
    ) -> list[dict[str, Any]]:
        """The hash-chained event log, a page at a time (``admin``): events with ``seq > after``.

        With ``kind``, ``since`` or ``until``, only matching events (the next page starts
        after the last one returned; fewer than ``limit`` means the log ends).
        """
        permit(key, "admin", name)
        since, until = (_utc(t) for t in (since, until))

        def wanted(event: Event) -> bool:
            moment = datetime.fromisoformat(event.body["time"])
            return (
                (kind is None or event.body["kind"] == kind)
                and (since is None or moment >= since)
                and (until is None or moment <= until)
            )

        filtering = kind is not None or since is not None or until is not None
        found: list[Event] = []
        while len(found) < limit and (page := store.events(name, after=after, limit=1000 if filtering else limit)):
            found += [e for e in page if wanted(e)]
            after = page[-1].seq
        return [{"seq": e.seq, "hash": e.hash, "event": e.body} for e in found[:limit]]

    # -- the console and the lookups it needs (imported here: they use this module's Caller) --

    from erasable.service.console import console_router
    from erasable.service.lookups import lookup_router

    app.include_router(lookup_router(served, store))
    app.include_router(console_router())
    return app


def _utc(moment: datetime | None) -> datetime | None:
    """``moment`` with a time zone: UTC when it has none."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handle


def _steering(slot: ServedModel) -> SteeringResponse:
    steering = slot.model.steering
    return SteeringResponse(
        seq=slot.seq,
        certificate=slot.model.certificate(),
        classes=[ClassWeight(label=c, weight=w) for c, w in steering.classes.items()],
        subjects=[SubjectWeight(subject=s, weight=w) for s, w in steering.subjects.items()],
        ids=[IdWeight(id=i, weight=w) for i, w in steering.samples.items()],
    )


def _info(slot: ServedModel) -> ModelInfo:
    model = slot.model
    return ModelInfo(
        name=slot.name,
        seq=slot.seq,
        count=model.count,
        classes=list(model.classes),
        certificate=model.certificate(),
        config=model.config.to_dict(),
    )


def _embeddings(
    slot: ServedModel, vectors: list[Any] | None, packed: list[Any] | None, texts: list[Any] | None
) -> NDArray[np.floating]:
    """The embeddings of a request: its vectors (numbers or packed float32), or its texts through the encoder."""
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

"""The HTTP API: learn, forget, predict and verify over a durable ledger (FastAPI).

Every route but ``/health`` needs an API key (``Authorization: Bearer <token>``) with the
route's scope on the model: ``predict``, ``learn``, ``forget``, ``metrics`` (``/metrics``,
which names every model, unless the app is made with ``public_metrics=True``) or ``admin``
(see :mod:`erasable.ledger.keys`). A request without a valid key gets 401, one
without the scope 403, and neither changes anything. Bad input gets a 4xx with a message
and changes nothing; the OpenAPI spec is at ``/openapi.json`` and ``/docs``.

This module assembles the app: the state the routes share
(:class:`~erasable.service.dependencies.ServiceState`), the error handlers, the middleware and
the routers of :mod:`erasable.service.routes`, one per concern.

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

import logging
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from erasable import __version__
from erasable.encoders.base import EncoderUnavailableError
from erasable.exact import OverflowRiskError
from erasable.ledger.keys import KeyRing
from erasable.ledger.store import (
    ConflictError,
    IdempotencyError,
    LedgerError,
    LedgerStore,
    ModelExistsError,
    UnknownModelError,
)
from erasable.registry import UnknownSampleError
from erasable.service.console import console_router
from erasable.service.dependencies import ServiceState
from erasable.service.guard import DEFAULT_MAX_CLASSES
from erasable.service.metrics import ServiceMetrics
from erasable.service.middleware import BodyLimit, JsonByDefault
from erasable.service.routes import audit, changes, lookups, models, monitoring, predictions
from erasable.service.served import ServedModels

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

log = logging.getLogger(__name__)

#: Largest request body accepted (bytes); larger ones get 413 before they are read.
DEFAULT_MAX_BODY = 64 * 2**20

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
    # This server cannot build the encoder asked for (its packages are not installed): the
    # request cannot be served here, and the message names the install. Not a 5xx: nothing failed.
    (EncoderUnavailableError, 422),
]

#: The routers of the API, in the order of its OpenAPI spec.
ROUTERS = [monitoring.router, models.router, changes.router, predictions.router, audit.router, lookups.router]


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
    metrics = ServiceMetrics()
    app.state.service = ServiceState(
        store=store,
        served=ServedModels(store),
        keys=KeyRing(store),
        metrics=metrics,
        max_classes=max_classes,
        public_metrics=public_metrics,
    )

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

    for router in ROUTERS:
        app.include_router(router)
    app.include_router(console_router())
    return app


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handle

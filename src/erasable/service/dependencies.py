"""What the routes of the API share, as FastAPI dependencies: the service they run in and the caller's key.

:func:`~erasable.service.app.create_app` puts one :class:`ServiceState` on ``app.state``;
a route asks for it (``service: Service``) and for the calling key (``key: Caller``)
instead of closing over them, so each route module stands alone and any app that holds a
state can mount it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from erasable.ledger.keys import ApiKey, KeyRing
from erasable.ledger.store import LedgerStore
from erasable.service.metrics import ServiceMetrics
from erasable.service.served import ServedModels

__all__ = ["Bearer", "Caller", "Service", "ServiceState", "caller", "permit"]


@dataclass(frozen=True)
class ServiceState:
    """One server's ledger, the models it serves from it, its keys, its metrics and its limits."""

    store: LedgerStore
    served: ServedModels
    keys: KeyRing
    metrics: ServiceMetrics
    #: Most classes a model may have; a learn beyond it is refused with 422.
    max_classes: int
    #: ``/metrics`` is served without a key.
    public_metrics: bool


def service_state(request: Request) -> ServiceState:
    """The state :func:`~erasable.service.app.create_app` gave the app the request came to."""
    state = request.app.state.service
    assert isinstance(state, ServiceState)
    return state


Service = Annotated[ServiceState, Depends(service_state)]

_bearer = HTTPBearer(auto_error=False, description="An API key made by `erasable keys create`.")

#: The request's bearer token, if it has one (a route that may be public checks it itself).
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def caller(request: Request, credentials: Bearer) -> ApiKey:
    """The key of the request; 401 without a valid one."""
    key = service_state(request).keys.authenticate(credentials.credentials) if credentials else None
    if key is None:
        raise HTTPException(401, "A valid API key is required (Authorization: Bearer <token>).")
    assert isinstance(key, ApiKey)
    return key


Caller = Annotated[ApiKey, Depends(caller)]


def permit(key: ApiKey, scope: str, name: str | None = None) -> None:
    """403 unless ``key`` grants ``scope`` (on model ``name``, if given): the API's one rule (ApiKey.allows)."""
    if not key.allows(scope, name):
        raise HTTPException(403, f"This key lacks the {scope!r} scope" + (f" on model {name!r}." if name else "."))

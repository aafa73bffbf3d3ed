"""The server's own routes: ``GET /health`` (liveness) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from erasable import __version__
from erasable.service.dependencies import Bearer, Service, caller, permit

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/health")
def health(service: Service) -> dict[str, str]:
    """Liveness: the server answers and its ledger is reachable."""
    service.store.model_names()
    return {"status": "ok", "version": __version__}


@router.get("/metrics", response_class=Response)
def prometheus(request: Request, credentials: Bearer, service: Service) -> Response:
    """Prometheus metrics (text exposition format): a key with the ``metrics`` scope, unless public.

    They name every model and count its live and forgotten samples, so they are not public
    by default (``erasable serve --public-metrics`` makes them so).
    """
    if not service.public_metrics:
        permit(caller(request, credentials), "metrics")
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

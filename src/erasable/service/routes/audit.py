"""The audit of a model's ledger: verify it from scratch, and read its hash-chained event log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from erasable.ledger.store import Event
from erasable.service.dependencies import Caller, Service, permit

__all__ = ["router"]

router = APIRouter(tags=["audit"])


@router.get("/v1/models/{name}/verify")
def verify(name: str, key: Caller, service: Service) -> dict[str, Any]:
    """Recompute the model from the ledger and check the certificate chain (``admin``)."""
    permit(key, "admin", name)
    result = service.store.verify(name)
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


@router.get("/v1/models/{name}/events")
def list_events(
    name: str,
    key: Caller,
    service: Service,
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
    while len(found) < limit and (page := service.store.events(name, after=after, limit=1000 if filtering else limit)):
        found += [e for e in page if wanted(e)]
        after = page[-1].seq
    return [{"seq": e.seq, "hash": e.hash, "event": e.body} for e in found[:limit]]


def _utc(moment: datetime | None) -> datetime | None:
    """``moment`` with a time zone: UTC when it has none."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment

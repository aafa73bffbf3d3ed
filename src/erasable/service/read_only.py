"""Serving a model file read-only (``erasable serve --model-file``): every route that would change it is refused.

The file is put into a throwaway ledger (:func:`erasable.service.commands.import_model` does the same for a
real one) and the app is wrapped in :class:`ReadOnly`, which answers 405 to learn, forget, steer, create and
delete before they reach the app; predictions, model info, verification, the event log and the lookups work.

>>> from fastapi import FastAPI
>>> from fastapi.testclient import TestClient
>>> client = TestClient(ReadOnly(FastAPI(), "bank.erasable"))
>>> answer = client.post("/v1/models/bank/learn", json={})
>>> answer.status_code, answer.json()["detail"][:40]
(405, 'This server serves bank.erasable read-on')
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["ReadOnly", "changes_a_model"]

#: The last path segment of the POST routes that change a model.
CHANGING = frozenset({"learn", "forget", "steer"})


def changes_a_model(method: str, path: str) -> bool:
    """Whether ``method path`` is one of the routes that change the models: create, delete, learn, forget, steer.

    >>> changes_a_model("POST", "/v1/models/bank/predict"), changes_a_model("POST", "/v1/models/bank/forget")
    (False, True)
    """
    path = path.rstrip("/")
    if method == "DELETE" and path.startswith("/v1/models/"):
        return True
    return method == "POST" and (
        path == "/v1/models" or (path.startswith("/v1/models/") and path.rsplit("/", 1)[-1] in CHANGING)
    )


class ReadOnly:
    """ASGI middleware: refuse the routes that change a model (405), naming the file that is served."""

    def __init__(self, app: Any, source: str) -> None:
        self.app, self.source = app, source

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and changes_a_model(scope["method"], scope["path"]):
            detail = f"This server serves {self.source} read-only: learn, forget, steer, create and delete are refused."
            await JSONResponse({"detail": detail}, status_code=405)(scope, receive, send)
            return
        await self.app(scope, receive, send)

"""ASGI middleware of the API: a bound on request bodies, and JSON as the type of every body."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["BodyLimit", "JsonByDefault"]


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

"""The console at ``/console``: pages for the people who answer deletion requests, served by ``erasable serve``.

Plain HTML, CSS and one script shipped in this package (``static/``): no build step, no CDN,
nothing fetched from elsewhere. The script signs in with an API key kept in the browser's
session storage and sends it in the ``Authorization`` header of every request to the JSON
API, so the console can do nothing its key could not do with curl, and a cross-site form
(which cannot set that header) can change nothing.

Every response of the console carries a strict Content-Security-Policy (scripts, styles and
requests from this origin only, no inline script or style, no framing), ``X-Frame-Options:
DENY`` and ``nosniff``. The script renders data with ``textContent``, never as HTML.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

__all__ = ["CONTENT_SECURITY_POLICY", "console_router"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

#: The files served under /console/static, and their media types: nothing else is.
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _read(name: str) -> bytes:
    return files(__name__).joinpath("static", name).read_bytes()


def console_router() -> APIRouter:
    """``GET /console`` (the page) and ``GET /console/static/{name}`` (its script, style sheet and icon)."""
    router = APIRouter(include_in_schema=False)
    page = _read("index.html")
    assets = {name: (_read(name), media) for name, media in ASSETS.items()}

    @router.get("/console")
    def console() -> Response:
        """The console's one page; the script draws each view in it."""
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    @router.get("/console/static/{name}")
    def asset(name: str) -> Response:
        """The console's script, style sheet or icon."""
        if name not in assets:
            raise HTTPException(404, "No such file.")
        content, media = assets[name]
        return Response(content, media_type=media, headers=SECURITY_HEADERS)

    return router

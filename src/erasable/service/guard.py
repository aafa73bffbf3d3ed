"""Bounds on connections that uvicorn does not set: how many are open, and how long a request may take to arrive.

uvicorn closes a connection idle between requests (``timeout_keep_alive``) and answers 503
beyond ``limit_concurrency`` -- but only once a request's head has arrived. A client that
opens connections and drips one header byte every few seconds is never timed out, and each
connection holds a file descriptor: 1,200 of them kept 1,212 descriptors open, and under a
limit of 512 descriptors a legitimate request could no longer be accepted. So the server
runs :func:`guarded_protocol`, uvicorn's h11 protocol with three more bounds:

* at most ``max_connections`` open connections: one beyond is answered 503 and closed at once;
* a request's head must arrive within ``head_timeout`` seconds of the connection (or of the
  previous response), its body within ``body_timeout`` seconds of the head; otherwise the
  connection is answered 408 and closed. Once a request has arrived, its handling is not timed.

>>> protocol = guarded_protocol(max_connections=10, head_timeout=2.0, body_timeout=30.0)
>>> protocol.max_connections, protocol.head_timeout, protocol.body_timeout
(10, 2.0, 30.0)
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_MAX_CLASSES",
    "DEFAULT_MAX_CONNECTIONS",
    "guarded_protocol",
]

#: Classes a served model may have (``erasable serve --max-classes``): each costs a row of every class statistic,
#: which every change writes -- 10,000 classes on a 4096-wide model once made a 1.29 GB ledger and 24 s predictions.
DEFAULT_MAX_CLASSES = 1000
#: Open connections served at once; each holds a file descriptor (the usual soft limit is 1024).
DEFAULT_MAX_CONNECTIONS = 256
#: Seconds for a request's head (request line and headers) to arrive.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Seconds for a request's body to arrive after its head (64 MiB at ~1 MiB/s).
DEFAULT_BODY_TIMEOUT = 60.0


def _plain_response(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )


#: Seconds a refused connection is kept half-closed, reading and dropping what the client sends.
REFUSED_LINGER = 0.5
TOO_MANY = _plain_response(b"503 Service Unavailable", b"Too many open connections; retry shortly.")
TOO_SLOW = _plain_response(b"408 Request Timeout", b"The request did not arrive in time.")


@cache
def _guarded_base() -> type[Any]:
    """The protocol class (built on first use: uvicorn and h11 are the ``service`` extra, the defaults are not)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol, with the connection bound and read deadlines of the module docstring."""

        max_connections = DEFAULT_MAX_CONNECTIONS
        head_timeout = DEFAULT_HEAD_TIMEOUT
        body_timeout = DEFAULT_BODY_TIMEOUT

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._waiting_for: Any = None  # the h11 state of the client that the deadline is for
            self._refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > self.max_connections:
                self.logger.warning("Refused a connection: %d are open already.", len(self.connections) - 1)
                self._refused = True
                transport.write(TOO_MANY)
                if transport.can_write_eof():
                    transport.write_eof()  # the answer, then a lingering close: closing with unread input
                self._deadline = self.loop.call_later(REFUSED_LINGER, transport.close)  # would reset it
                return
            self._expect(h11.IDLE, self.head_timeout)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # read and dropped, so that the close is orderly
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _follow(self) -> None:
            """Move the deadline along with the client's state: head, then body, then none until the response."""
            state = self.conn.their_state
            if state is self._waiting_for:
                return
            if state is h11.IDLE:
                self._expect(state, self.head_timeout)
            elif state is h11.SEND_BODY:
                self._expect(state, self.body_timeout)
            else:  # the whole request arrived (or the connection is closing)
                self._disarm()
                self._waiting_for = state

        def _expect(self, state: Any, seconds: float) -> None:
            self._disarm()
            self._waiting_for = state
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # no response of ours has begun
                self.transport.write(TOO_SLOW)
            self.transport.close()

    return GuardedH11Protocol


def guarded_protocol(
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    head_timeout: float = DEFAULT_HEAD_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> type[Any]:
    """uvicorn's h11 protocol with these bounds (see the module docstring), for ``uvicorn.run(app, http=...)``."""
    if max_connections < 1 or not head_timeout > 0 or not body_timeout > 0:
        raise ValueError("max_connections and the timeouts must be positive.")
    bounds = {"max_connections": max_connections, "head_timeout": head_timeout, "body_timeout": body_timeout}
    return type("GuardedH11Protocol", (_guarded_base(),), bounds)

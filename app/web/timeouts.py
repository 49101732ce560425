"""Bounds on how long a client may take to send a request: its headers and its body.

uvicorn's h11 protocol arms no timer while a request's headers arrive (its keep-alive timer
runs only between requests, and any byte cancels it: uvicorn/protocols/http/h11_impl.py
`data_received`), so a client dribbling a header a byte at a time holds a connection forever.
`HeaderTimeoutH11Protocol` closes a connection whose headers are not complete
`header_timeout` seconds after its first byte (or its opening); `BodyTimeoutMiddleware`
answers 408 when a body is not complete `body_timeout` seconds after the app first asks for
it. Behind a reverse proxy, its own limits apply first (nginx `client_header_timeout`,
`client_body_timeout`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds from a request's first byte to its last header line
BODY_TIMEOUT = 30.0  # seconds from the app's first read of a body to its last byte


class BodyTimeout(HTTPException):
    """408: a request body that did not arrive in time. A Starlette HTTPException, so FastAPI
    re-raises it from its body parsing instead of making it a 400."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"The request body did not arrive within {seconds:g} seconds")


class BodyTimeoutMiddleware:
    """Every `http.request` message of a body must arrive within `timeout` seconds (in all)
    of the app's first read. After the body, `receive()` is not bounded: it then waits for
    the client to disconnect, which a long response (a log stream) relies on."""

    def __init__(self, app: ASGIApp, timeout: float | None = None) -> None:
        self.app = app
        self.timeout = BODY_TIMEOUT if timeout is None else timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.timeout <= 0:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        complete = False

        async def bounded() -> Message:
            nonlocal deadline, complete
            if complete:
                return await receive()
            if deadline is None:
                deadline = loop.time() + self.timeout
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, bounded, send)


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete
    `header_timeout` seconds after the connection opened or the request's first byte came."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: Any) -> None:
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # h11 stays IDLE on their side until a request's headers are complete.
        if self.conn.their_state is h11.IDLE:
            self._arm_header_timer()
        else:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closed a connection whose request headers were too slow")
            self.transport.close()

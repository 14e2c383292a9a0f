"""Two repairs of aiohttp's per-connection handler: a read timeout for request heads, and a shutdown
that cannot log a traceback.

**Head timeout.** A client that starts a request and stops sending is cut off.

aiohttp keeps a connection open while it waits for the rest of a request head (its only timer is the
keep-alive timeout, an hour by default), so a few thousand half-sent requests hold as many sockets for as
long as their clients like. Bodies are guarded in :func:`voorbeelden.sim.protocol.read_json`; heads are
guarded here: from the first byte of a head that is not complete, the client has ``read_timeout_s`` to send
the rest, else it gets a 408 with an OpenAI-style JSON body and the connection is closed. An idle keep-alive
connection (no bytes sent) is left alone, so clients that pool connections see no change.

**Shutdown.** aiohttp's own shutdown waits for a running handler on a future that its timeout cancels; a
handler that ends in the loop turn between that cancel and the shutdown's resumption sets the result of the
cancelled future, and aiohttp logs ``InvalidStateError`` as "Unhandled exception" with a traceback (the same
race hit Tribler, tribler#8156). Ctrl-C of a batch on the embedded simulator printed it now and then. Here
the handler's task is awaited with ``asyncio.wait``, which cancels nothing when it times out; a handler still
running after the grace period is cancelled; only then does aiohttp's shutdown run, with no request left in
progress, so it never makes that future.

This hooks two aiohttp classes (``web.Server`` makes the per-connection ``RequestHandler``) and reads two of
the handler's attributes (``_request_count``, ``_request_in_progress``, ``_force_close``); aiohttp is pinned to 3.x in
``pyproject.toml`` and the simulator tests exercise this path.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["GuardedAppRunner"]

_BODY = json.dumps(
    {
        "error": {
            "message": "request head not received in time",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }
).encode()
_RESPONSE_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BODY)}\r\n\r\n".encode()
    + _BODY
)


class _GuardedHandler(RequestHandler):
    __slots__ = ("_handling", "_head_timeout_s", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_timeout_s = head_timeout_s
        self._handling: asyncio.Task[Any] | None = None

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._cancel_head_timer()  # a head is complete: the body has its own timeout
        elif not self._request_in_progress and self._head_timer is None and data:
            self._head_timer = self._loop.call_later(self._head_timeout_s, self._head_timed_out)

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        self._cancel_head_timer()
        self._handling = asyncio.current_task()  # aiohttp runs each request in a task of its own
        try:
            return await super()._handle_request(*args, **kwargs)
        finally:
            self._handling = None

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 (aiohttp's signature)
        self._force_close = True  # as aiohttp's shutdown does first: no next request on this connection
        task = self._handling
        if task is not None and not task.done():
            done, _ = await asyncio.wait([task], timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.wait([task], timeout=timeout)
        await super().shutdown(timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if self._request_in_progress or transport is None or transport.is_closing():
            return
        try:
            transport.write(_RESPONSE_408)
        finally:
            self.force_close()
            transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


class _GuardedServer(web.Server):
    head_timeout_s: float = 10.0

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, head_timeout_s=self.head_timeout_s, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections get the head timeout and the safe shutdown (see the module
    docstring)."""

    def __init__(self, app: web.Application, *, read_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._read_timeout_s = read_timeout_s

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer
        server.head_timeout_s = self._read_timeout_s  # type: ignore[attr-defined]
        return server

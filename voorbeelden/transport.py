"""The one HTTP transport: the SDK's own HTTP layer (``httpx2``, openai 3.x) sending its bytes through aiohttp.

Every client is made by :func:`voorbeelden.backend.make_client`, which sends through this transport; it was
chosen over the SDK's own pool by measuring both (``voorbeelden bench transport``; the figures, command, date
and commit are in docs/TRANSPORT.md).

openai's ``AsyncOpenAI`` sends through ``httpx2``, whose connection pool (httpcore) scans every pooled
connection, checking each for expiry, whenever a request starts or ends: O(connections) work per request, so
at a few hundred calls in flight the *client* spends most of its CPU in the pool (profiled with cProfile:
``_assign_requests_to_connections`` and ``has_expired`` dominate), throughput falls as concurrency rises and a
latency benchmark measures the client instead of the backend. aiohttp's connector hands out idle connections
in O(1). The SDK keeps doing everything else (building requests, errors, parsing); only the bytes travel
through aiohttp, and the SDK only ever sees ``httpx2`` types:

* timeouts come from the request's ``timeout`` extension (pool / connect / read), errors are mapped to their
  ``httpx2`` equivalents, so the SDK's error handling (and :mod:`voorbeelden.caller`'s retries) still apply;
* the body is passed on still encoded and ``httpx2`` decodes it, as it would with its own pool (one place
  decodes, so ``content-encoding`` always describes the bytes it sits next to);
* a request may carry a callable under the extension :data:`SENT_HOOK`; it is called when the request has
  really been written (aiohttp's trace hooks), which the batch rate limiter counts from.

Use ``openai.AsyncOpenAI(..., http_client=http_client(limit=1000))`` (or :func:`voorbeelden.backend.make_client`).
The aiohttp session is created on first use, on the loop that uses it (like ``AsyncOpenAI`` itself, it is
bound to that loop); close it with the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2

__all__ = ["SENT_HOOK", "AiohttpTransport", "http_client"]

# A request extension: a callable the transport calls when the request has really been written.
SENT_HOOK = "voorbeelden.on_sent"
_DROP_REQUEST_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})


class _Body(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as err:
            raise httpx2.ReadTimeout(str(err) or "read timed out") from err
        except aiohttp.ClientError as err:
            raise httpx2.ReadError(str(err) or type(err).__name__) from err

    async def aclose(self) -> None:
        self._response.release()


async def _on_sent(session: Any, ctx: Any, params: Any) -> None:
    # A rate limiter counts a request from when it really left, which for a first request on a new
    # connection is well after it was granted.
    hook = ctx.trace_request_ctx
    if hook is not None:
        hook()


def _client_timeout(request: httpx2.Request) -> aiohttp.ClientTimeout:
    """The SDK's per-request timeouts (the ``timeout`` extension) as aiohttp's: ``pool`` bounds the wait for
    a connection, ``connect`` the socket connect, ``read`` the gap between two reads; no total."""
    t: dict[str, Any] = request.extensions.get("timeout", {})
    return aiohttp.ClientTimeout(
        total=None, connect=t.get("pool"), sock_connect=t.get("connect"), sock_read=t.get("read")
    )


def _mapped(err: BaseException, request: httpx2.Request) -> httpx2.HTTPError:
    """An aiohttp failure as the ``httpx2`` error the SDK expects (it decides retries and messages by type)."""
    message = str(err) or type(err).__name__
    if isinstance(err, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(message, request=request)
    if isinstance(err, aiohttp.ServerTimeoutError):
        return httpx2.ReadTimeout(message, request=request)
    if isinstance(err, aiohttp.ClientConnectorError | aiohttp.ClientOSError):
        return httpx2.ConnectError(message, request=request)
    if isinstance(err, aiohttp.ClientError):
        return httpx2.ReadError(message, request=request)
    # A bare TimeoutError is aiohttp's ``connect`` timeout: no connection became free in time.
    return httpx2.ConnectTimeout(str(err) or "timed out waiting for a connection", request=request)


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncClient(transport=AiohttpTransport(limit=300))``: up to ``limit`` connections, reused."""

    def __init__(self, limit: int = 1000) -> None:
        from voorbeelden.injected import call_delay_s

        self.limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._delay_s = call_delay_s()  # a test knob that proves `voorbeelden compare` (0 unless set)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=self.limit, ttl_dns_cache=300)
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_sent)
            trace.on_request_chunk_sent.append(_on_sent)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False, trace_configs=[trace]
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _DROP_REQUEST_HEADERS]
        body = await request.aread()
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        try:
            response = await self._get_session().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                timeout=_client_timeout(request),
                allow_redirects=False,
                # The request's own headers say what the client accepts and sends; aiohttp adds none.
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                trace_request_ctx=request.extensions.get(SENT_HOOK),
            )
        except (aiohttp.ClientError, TimeoutError) as err:
            raise _mapped(err, request) from err
        return httpx2.Response(
            response.status, headers=list(response.raw_headers), stream=_Body(response), request=request
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector's transports close before the loop goes away (aiohttp's documented advice).
            await asyncio.sleep(0)
        self._session = None


def http_client(
    limit: int = 1000, *, transport: httpx2.AsyncBaseTransport | None = None, **kwargs: Any
) -> httpx2.AsyncClient:
    """An ``http_client`` for ``openai.AsyncOpenAI`` (the SDK's own defaults) that sends through
    ``transport``, by default an :class:`AiohttpTransport` with up to ``limit`` connections."""
    import openai

    return openai.DefaultAsyncHttpxClient(transport=transport or AiohttpTransport(limit), **kwargs)

"""An httpx transport that sends through aiohttp, for batches with hundreds of calls in flight.

httpcore's connection pool (httpx's default) scans every connection for every request it assigns, so its
cost grows with connections x requests: at 256 calls in flight a profile of a batch spent most of its CPU
there and throughput *fell* as concurrency rose. aiohttp's connector hands out idle connections from a
queue, and its trace hooks tell the rate limiter when a request has really been written. The openai SDK only sees httpx types, so it needs no change; timeouts from the request's ``timeout``
extension and errors are mapped to their httpx equivalents so the SDK's retry and error handling still
apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

SENT_HOOK = "voorbeelden.on_sent"  # see voorbeelden.batch.transport
_DROP_REQUEST_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as err:
            raise httpx.ReadError(str(err)) from err
        except TimeoutError as err:
            raise httpx.ReadTimeout(str(err) or "read timed out") from err

    async def aclose(self) -> None:
        self._response.release()


async def _on_sent(session: Any, ctx: Any, params: Any) -> None:
    # The gate's rate limiter counts a request from when it really left, which for a first request on a
    # new connection is well after it was granted.
    hook = ctx.trace_request_ctx
    if hook is not None:
        hook()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(limit=300))``: up to ``limit`` connections, reused.

    The aiohttp session is created on first use, on the loop that uses it (like ``AsyncOpenAI`` itself, it
    is bound to that loop).
    """

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=self.limit, ttl_dns_cache=300)
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_sent)
            trace.on_request_chunk_sent.append(_on_sent)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, trust_env=False, trace_configs=[trace]
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _DROP_REQUEST_HEADERS]
        body = await request.aread()
        try:
            response = await self._get_session().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
                trace_request_ctx=request.extensions.get(SENT_HOOK),
            )
        except aiohttp.ServerTimeoutError as err:
            raise httpx.ReadTimeout(str(err) or "timed out", request=request) from err
        except (aiohttp.ClientConnectorError, aiohttp.ClientOSError) as err:
            raise httpx.ConnectError(str(err), request=request) from err
        except aiohttp.ClientError as err:
            raise httpx.ReadError(str(err), request=request) from err
        except TimeoutError as err:
            raise httpx.ConnectTimeout(
                str(err) or "timed out waiting for a connection", request=request
            ) from err
        # auto_decompress has already undone content-encoding; its header would make httpx decode twice.
        out_headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in response.raw_headers
            if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
        ]
        return httpx.Response(response.status, headers=out_headers, stream=_Body(response), request=request)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector's transports close before the loop goes away (aiohttp's documented advice).
            await asyncio.sleep(0)

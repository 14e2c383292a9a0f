"""An httpx transport backed by aiohttp, for clients with hundreds of requests in flight.

openai's ``AsyncOpenAI`` sends through httpx (in openai 3.x its fork ``httpx2``), whose connection pool
(httpcore) scans every pooled connection, checking each for expiry, whenever a request starts or ends:
O(connections) work per request, so at 1,000 in flight the *client* spends seconds in the pool and a
latency benchmark measures that instead of the backend (profiled with cProfile: ``_assign_requests_to_connections``
and ``has_expired`` dominate). aiohttp's connector hands out connections in O(1). The SDK keeps doing
everything else (building requests, retries, errors, parsing); only the bytes travel through aiohttp.

Use ``openai.AsyncOpenAI(..., http_client=aiohttp_http_client(limit=1000))``. Create it on the loop that
will use it (an aiohttp session is bound to its loop) and close it with the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

try:  # openai 3.x sends through its own fork of httpx
    import httpx2 as httpx_mod  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - openai 1.x/2.x use httpx itself
    import httpx as httpx_mod  # type: ignore[no-redef]


_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})  # aiohttp sets these


class _Body(httpx_mod.AsyncByteStream):  # type: ignore[misc,name-defined]
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except TimeoutError as e:
            raise httpx_mod.ReadTimeout(str(e) or "read timed out") from e
        except aiohttp.ClientError as e:
            raise httpx_mod.ReadError(str(e) or type(e).__name__) from e

    async def aclose(self) -> None:
        self._resp.release()


class AiohttpTransport(httpx_mod.AsyncBaseTransport):  # type: ignore[misc,name-defined]
    """Sends httpx requests with one aiohttp session (created lazily on the running loop)."""

    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit, force_close=False)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: Any) -> Any:
        t = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=t.get("connect"), sock_read=t.get("read"), connect=t.get("pool")
        )
        body = request.content if request.content else None  # httpx has read the body already
        try:
            resp = await self._get_session().request(
                request.method,
                str(request.url),
                headers=[(k, v) for k, v in request.headers.multi_items() if k.lower() not in _HOP],
                data=body,
                timeout=timeout,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        except TimeoutError as e:
            raise httpx_mod.ReadTimeout(str(e) or "timed out") from e
        except aiohttp.ClientConnectorError as e:
            raise httpx_mod.ConnectError(str(e)) from e
        except aiohttp.ClientError as e:
            raise httpx_mod.ReadError(str(e) or type(e).__name__) from e
        return httpx_mod.Response(
            resp.status, headers=list(resp.raw_headers), stream=_Body(resp), request=request
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def aiohttp_http_client(limit: int = 1000, **kwargs: Any) -> Any:
    """An ``http_client`` for ``openai.AsyncOpenAI`` that sends through :class:`AiohttpTransport`."""
    import openai

    return openai.DefaultAsyncHttpxClient(transport=AiohttpTransport(limit), **kwargs)

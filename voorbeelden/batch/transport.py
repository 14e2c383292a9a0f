"""The HTTP-level gate every chat-completion attempt passes: cache, concurrency slot, rate limit.

It sits in an ``httpx2.AsyncBaseTransport`` (the SDK's own HTTP layer) wrapped around the real transport of
the ``AsyncOpenAI`` client that :func:`voorbeelden.generate` uses, so the generator needs no knowledge of batches: every attempt
(retries and hedges included) is seen here, in the order it is really sent, and the limiter's grant time is
the send time. Order matters: the concurrency slot is taken before the rate limit, so a grant is never
followed by more waiting (which would bunch sends and break the sliding-window guarantee).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

# The SDK's own HTTP layer (openai 3.x), under the name the code below was written with.
import httpx2 as httpx

from voorbeelden.batch.adaptive import AdaptiveConcurrency
from voorbeelden.batch.cache import CACHE_HEADER, ResponseCache, cache_key
from voorbeelden.batch.limiter import Grant, RateLimiter
from voorbeelden.tokens import estimate_call_tokens
from voorbeelden.transport import SENT_HOOK

__all__ = [
    "GATE_WAIT_HEADER",
    "SENT_HOOK",
    "CallEvent",
    "GateStats",
    "GatedTransport",
]

GATE_WAIT_HEADER = "x-voorbeelden-gate-ms"


@dataclass(frozen=True)
class CallEvent:
    """One attempt as the gate saw it (monotonic seconds), kept only when ``record_events`` is on."""

    t_queued: float
    t_sent: float
    t_done: float
    status: int | None
    cached: bool
    attempt: int


@dataclass
class GateStats:
    """Counters for the progress bar and the batch summary."""

    sent: int = 0
    ok: int = 0
    throttled: int = 0
    errors: int = 0
    cache_hits: int = 0
    retries: int = 0
    gate_wait_s: float = 0.0
    events: list[CallEvent] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "throttled": self.throttled,
            "errors": self.errors,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "gate_wait_s": round(self.gate_wait_s, 3),
        }


class _ReleasingStream(httpx.AsyncByteStream):
    """A streamed body that gives the concurrency slot back when the caller closes it, not at the headers."""

    def __init__(self, inner: httpx.AsyncByteStream, on_close: Any) -> None:
        self._inner, self._on_close, self._closed = inner, on_close, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._closed:
                self._closed = True
                self._on_close()


class GatedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport so that every chat-completion attempt passes the cache, a concurrency slot and the
    rate limiter; other requests (``/models``, admin routes) pass straight through.

        transport = GatedTransport(limiter=RateLimiter(rpm=500), concurrency=AdaptiveConcurrency(max_limit=64))
        client = voorbeelden.backend.make_client(url, key, transport=transport)

    :param inner: the real transport (default: :class:`AiohttpTransport` sized to the cap; httpcore's pool
        costs O(connections) per request and dominated the CPU profile at a few hundred in flight).
    :param limiter: requests/tokens per window (None: no client-side limit).
    :param concurrency: the in-flight limit, adaptive or fixed (None: unlimited).
    :param cache: answers identical calls without a request; a hit carries ``x-voorbeelden-cache: hit``.
    :param learn_from_headers: follow the endpoint's ``x-ratelimit-*`` headers and a 429's ``retry-after``
        (the limiter's budget is re-anchored on every answer), even without configured limits.
    :param record_events: keep a :class:`CallEvent` per attempt (for plots; costs memory on huge batches).

    Responses carry ``x-voorbeelden-gate-ms``: the time the attempt waited here before it was sent, so that a
    caller can tell queueing in the client from latency of the endpoint.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        limiter: RateLimiter | None = None,
        concurrency: AdaptiveConcurrency | None = None,
        cache: ResponseCache | None = None,
        learn_from_headers: bool = True,
        record_events: bool = False,
    ) -> None:
        if inner is None:
            from voorbeelden.transport import AiohttpTransport

            inner = AiohttpTransport(
                limit=int(concurrency.max_limit) + 8 if concurrency is not None else 1000
            )
        if limiter is None and learn_from_headers:
            limiter = RateLimiter()  # no limits of its own; holds the pauses the endpoint asks for
        self.inner, self.limiter, self.concurrency, self.cache = inner, limiter, concurrency, cache
        self.learn_from_headers, self.record_events = learn_from_headers, record_events
        self.stats = GateStats()
        self._latency: float | None = None  # mean endpoint latency, to size concurrency to the rate limit
        self._n_latency = 0
        self._tokens: float | None = None  # EWMA of tokens per call

    # ---- the request path ----------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return await self.inner.handle_async_request(request)
        t_queued = time.monotonic()
        raw = await request.aread()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = None
        try:
            attempt = int(request.headers.get("x-sim-attempt", "1"))
        except ValueError:
            attempt = 1
        if attempt > 1:
            self.stats.retries += 1

        key = cache_key(body, str(request.url)) if self.cache is not None and body is not None else None
        if key is not None:
            assert self.cache is not None
            hit = self.cache.get(key)
            if hit is not None:
                status, content_type, content = hit
                content = mark_cached(content)
                self.stats.cache_hits += 1
                self._event(t_queued, t_queued, time.monotonic(), status, True, attempt)
                return httpx.Response(
                    status,
                    headers={"content-type": content_type, CACHE_HEADER: "hit", GATE_WAIT_HEADER: "0"},
                    content=content,
                    request=request,
                )

        tokens = estimate_call_tokens(body)
        kind = f"{body.get('model')}/{body.get('max_tokens')}" if body else ""
        self._tokens = tokens if self._tokens is None else 0.95 * self._tokens + 0.05 * tokens
        ticket = await self.concurrency.acquire() if self.concurrency is not None else 0
        on_wire = saturated = False
        released = False

        def release(throttled: bool = False, latency: float | None = None) -> None:
            nonlocal released
            if released or self.concurrency is None:
                return
            released = True
            self.concurrency.release(
                ticket,
                sent=on_wire,
                throttled=throttled,
                latency_s=latency,
                saturated=saturated,
                now=time.monotonic(),
                kind=kind,
            )

        grant = None
        try:
            if self.limiter is not None:
                grant = await self.limiter.acquire(tokens)
                request.extensions = {**request.extensions, SENT_HOOK: grant.sent}
            if self.concurrency is not None:
                saturated = self.concurrency.sent()
            on_wire = True
            t_sent = time.monotonic()
            self.stats.sent += 1
            self.stats.gate_wait_s += t_sent - t_queued
            response = await self.inner.handle_async_request(request)
            streamed = bool(body and body.get("stream"))
            if not streamed:
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
        except BaseException:
            if on_wire:  # a caller's timeout while still queued here is not the endpoint's error
                self.stats.errors += 1
            if grant is not None:
                grant.sent()  # it may have reached the server: count it until a later answer says more
            self._event(t_queued, t_queued, time.monotonic(), None, False, attempt)
            release()
            raise

        latency = time.monotonic() - t_sent
        status = response.status_code
        throttled = status == 429
        self._learn(response.headers, status, grant, latency)
        if throttled:
            self.stats.throttled += 1
        elif status < 400:
            self.stats.ok += 1
        else:
            self.stats.errors += 1
        self._event(t_queued, t_sent, t_sent + latency, status, False, attempt)
        gate_ms = (GATE_WAIT_HEADER, f"{(t_sent - t_queued) * 1000:.3f}")
        if streamed:
            # The slot is held until the body has been read: a stream in progress is a call in flight.
            return httpx.Response(
                status,
                headers=[*response.headers.multi_items(), gate_ms],
                stream=_ReleasingStream(response.stream, lambda: release(throttled, latency)),  # type: ignore[arg-type]
                extensions=response.extensions,
                request=request,
            )
        release(throttled, latency)
        # The body was read (and decoded) here, so its encoding headers no longer describe it.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        headers.append(gate_ms)
        if key is not None and self.cache is not None:
            self.cache.put(key, status, response.headers.get("content-type", "application/json"), content)
        return httpx.Response(
            status, headers=headers, content=content, extensions=response.extensions, request=request
        )

    # ---- learning from the endpoint --------------------------------------------------------------------

    def _learn(self, headers: httpx.Headers, status: int, grant: Grant | None, latency: float) -> None:
        if status != 429:
            # The mean latency over calls, for Little's law: a running mean at first (the first answers
            # are the short calls, an EWMA would start far too low), then slowly moving.
            self._n_latency += 1
            alpha = max(1.0 / self._n_latency, 0.01)
            self._latency = (
                latency if self._latency is None else (1 - alpha) * self._latency + alpha * latency
            )
        if self.limiter is not None and grant is not None and self.learn_from_headers:
            # The endpoint's own account of its budget replaces the client's guess (see limiter.py).
            self.limiter.observe(grant, status, headers)
        self._size_to_rate()

    def _size_to_rate(self) -> None:
        """More calls in flight than the budget can feed only wait at the limiter and make every term
        slower; Little's law (rate x latency) with some slack, plus what the budget admits at once right now
        (a full bucket at the start), is all the concurrency worth having."""
        if self.concurrency is None or self.limiter is None or self._latency is None or self._n_latency < 30:
            return  # the first answers are the short calls; a ceiling from them would starve the long ones
        tokens = self._tokens or 0.0
        rate = self.limiter.calls_per_s(tokens)
        if rate is None:
            return
        now = time.monotonic()
        room = self.limiter.headroom_calls(tokens, now)
        self.concurrency.set_ceiling(max(2.0, math.ceil(rate * self._latency * 1.5 + room) + 2), now)

    def _event(
        self, t_queued: float, t_sent: float, t_done: float, status: int | None, cached: bool, attempt: int
    ) -> None:
        if self.record_events:
            self.stats.events.append(CallEvent(t_queued, t_sent, t_done, status, cached, attempt))

    # ---- summary ---------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = self.stats.to_dict()
        if self.concurrency is not None:
            out["concurrency_limit"] = round(self.concurrency.limit, 2)
            out["concurrency_effective"] = self.concurrency.effective
            out["concurrency_decreases"] = self.concurrency.decreases
        if self.limiter is not None:
            out.update(self.limiter.describe())
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()


CACHE_BODY_FIELD = "x_voorbeelden_cache"


def mark_cached(content: bytes) -> bytes:
    """Add ``"x_voorbeelden_cache": true`` to a cached JSON answer, so the caller can set
    ``CallRecord.cached`` from the body it already parses (the header alone is not visible to it)."""
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if not isinstance(data, dict):
        return content
    data[CACHE_BODY_FIELD] = True
    return json.dumps(data).encode()

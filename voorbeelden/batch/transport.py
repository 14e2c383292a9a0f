"""The HTTP-level gate every chat-completion attempt passes: cache, concurrency slot, rate limit.

It sits in an ``httpx2.AsyncBaseTransport`` (the SDK's own HTTP layer) wrapped around the real transport of
the ``AsyncOpenAI`` client that :func:`voorbeelden.generate` uses, so the generator needs no knowledge of batches: every attempt
(retries and hedges included) is seen here, in the order it is really sent, and the limiter's grant time is
the send time. Order matters: the concurrency slot is taken before the rate limit, so a grant is never
followed by more waiting (which would bunch sends and break the sliding-window guarantee).

Retries are recognised by the gate itself, not by a header the caller adds (those go to the simulator
only): an attempt whose body is byte for byte one the gate has already sent is a resend (a retry, or a
hedge of a call still in flight). A 401 or 403 means the key is wrong for every call: the first one is kept
(:attr:`GatedTransport.refused`) and every later attempt gets a copy of it without being sent, so a batch
with a wrong key makes a few calls, not one per term (the batch stops admitting terms and says why). Before
the first chat completion the key is shown to ``GET /models`` (free, a few milliseconds); a 401/403 there
refuses the batch before any paid call; when it cannot tell (an endpoint without that route), the first chat
completion goes alone and the others wait for its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

# The SDK's own HTTP layer (openai 3.x), under the name the code below was written with.
import httpx2 as httpx

from voorbeelden.batch.adaptive import AdaptiveConcurrency
from voorbeelden.batch.cache import CACHE_HEADER, ResponseCache, cache_key
from voorbeelden.batch.keyset import KeySet
from voorbeelden.batch.limiter import Grant, RateLimiter
from voorbeelden.tokens import estimate_call_tokens
from voorbeelden.transport import SENT_HOOK

__all__ = [
    "GATE_WAIT_HEADER",
    "SENT_HOOK",
    "Answers",
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
class Answers:
    """What the attempts put on the wire got back; with the ones still out they add up to ``sent``."""

    ok: int = 0  # a status below 400
    throttled: int = 0  # 429
    errors: int = 0  # another status, or no answer at all (a connection error, a timeout after sending)

    def count(self, status: int | None) -> None:
        if status == 429:
            self.throttled += 1
        elif status is not None and status < 400:
            self.ok += 1
        else:
            self.errors += 1


@dataclass
class GateStats:
    """Counters for the progress bar and the batch summary."""

    sent: int = 0  # attempts put on the wire
    answers: Answers = field(default_factory=Answers)
    cache_hits: int = 0  # attempts answered from the cache, never sent
    retries: int = 0  # attempts whose body the gate has sent before (a retry or a hedge)
    refused_locally: int = 0  # attempts answered with the endpoint's earlier 401/403, never sent
    gate_wait_s: float = 0.0  # the time attempts waited here before they were sent, summed
    events: list[CallEvent] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Flat, as the batch summary shows it (the answers beside the other counters); not the events."""
        out: dict[str, Any] = {"sent": self.sent, **asdict(self.answers)}
        out.update(cache_hits=self.cache_hits, resent=self.retries, gate_wait_s=round(self.gate_wait_s, 3))
        if self.refused_locally:
            out["refused_locally"] = self.refused_locally
        return out


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


@dataclass
class _Attempt:
    """One chat-completion attempt on its way through the gate: what its steps hand each other."""

    request: httpx.Request
    body: dict[str, Any] | None  # None when the body is not a JSON object (it is passed on as it is)
    number: int  # the SDK's attempt number, 1 for a first try
    t_queued: float
    key: str | None  # the cache key, when there is a cache
    tokens: float = 0.0  # estimated, for the token budget
    grant: Grant | None = None
    t_sent: float = 0.0

    @property
    def streamed(self) -> bool:
        return bool(self.body and self.body.get("stream"))

    def gate_header(self) -> tuple[str, str]:
        """How long the attempt waited here before it was sent, for the caller to tell queueing from latency."""
        return GATE_WAIT_HEADER, f"{(self.t_sent - self.t_queued) * 1000:.3f}"


class _Slot:
    """A concurrency slot held by one attempt, given back exactly once with what the attempt showed."""

    def __init__(self, concurrency: AdaptiveConcurrency | None, ticket: int, kind: str) -> None:
        self.concurrency, self.ticket, self.kind = concurrency, ticket, kind
        self.on_wire = False  # sent (or being sent): a failure from here on is the endpoint's
        self.saturated = False  # the endpoint, not a rate limit, was what was full when it was sent
        self.released = False

    def release(self, throttled: bool = False, latency: float | None = None) -> None:
        if self.released or self.concurrency is None:
            return
        self.released = True
        self.concurrency.release(
            self.ticket,
            sent=self.on_wire,
            throttled=throttled,
            latency_s=latency,
            saturated=self.saturated,
            now=time.monotonic(),
            kind=self.kind,
        )


def _respond(
    attempt: _Attempt,
    response: httpx.Response,
    *,
    content: bytes | None = None,
    stream: httpx.AsyncByteStream | None = None,
) -> httpx.Response:
    """The answer as the client sees it: the endpoint's, plus how long it waited here. A body read here was
    decoded too, so its encoding headers no longer describe it and are dropped."""
    headers = response.headers.multi_items()
    if stream is None:
        dropped = ("content-encoding", "content-length", "transfer-encoding")
        headers = [(k, v) for k, v in headers if k.lower() not in dropped]
    headers.append(attempt.gate_header())
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=content,
        stream=stream,
        extensions=response.extensions,
        request=attempt.request,
    )


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
        self.refused: str | None = None  # the first 401/403: the key is wrong for every call
        self._refusal: tuple[int, list[tuple[str, str]], bytes] | None = None
        self._bodies = KeySet()  # fingerprints of every body sent: a body seen again is a resend
        self._probed: asyncio.Lock | None = None  # held while the key is shown to GET /models, once
        self._undecided, self._deciding = False, asyncio.Lock()  # /models could not tell: see _probe
        self._latency: float | None = None  # mean endpoint latency, to size concurrency to the rate limit
        self._n_latency = 0
        self._tokens: float | None = None  # EWMA of tokens per call

    # ---- the request path ----------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """A chat completion passes, in this order: the cache, a concurrency slot, the rate limit, the
        endpoint; what it answers is learnt from, counted and (when whole and cacheable) stored."""
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return await self.inner.handle_async_request(request)
        attempt = await self._arrive(request)
        cached = self._from_cache(attempt)
        if cached is not None:
            return cached
        await self._probe(request)
        if self._undecided:  # /models could not tell: the first chat completion tells, alone (module doc)
            async with self._deciding:
                if self._undecided:
                    return await self._pass(attempt, request)
        return await self._pass(attempt, request)

    async def _pass(self, attempt: _Attempt, request: httpx.Request) -> httpx.Response:
        """Past the cache and the key check: a concurrency slot, the rate limit, the endpoint."""
        if self._refusal is not None:  # the key was refused: do not send it again
            status, headers, content = self._refusal
            self.stats.refused_locally += 1
            return httpx.Response(status, headers=headers, content=content, request=request)
        slot = await self._take_slot(attempt)
        response, content = await self._send(attempt, slot)
        self._undecided = (
            False  # an answer came: a 401/403 is kept below, anything else says the key is taken
        )
        throttled, latency = self._answered(attempt, response)
        if content is None:
            # The slot is held until the body has been read: a stream in progress is a call in flight.
            body = _ReleasingStream(response.stream, lambda: slot.release(throttled, latency))  # type: ignore[arg-type]
            return _respond(attempt, response, stream=body)
        slot.release(throttled, latency)
        if response.status_code in (401, 403) and self._refusal is None:
            self._refused(response, content, _bearer(attempt.request))
        self._store(attempt, response, content)
        return _respond(attempt, response, content=content)

    async def _probe(self, request: httpx.Request) -> None:
        """Once, before the first chat completion is sent: does the endpoint take the key? (see the module)"""
        if self._probed is None:
            self._probed = asyncio.Lock()
            async with self._probed:
                url = str(request.url).rsplit("/chat/completions", 1)[0] + "/models"
                keep = ("authorization", "api-key", "openai-organization", "openai-project")
                headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() in keep]
                try:
                    async with asyncio.timeout(10):
                        response = await self.inner.handle_async_request(
                            httpx.Request("GET", url, headers=headers)
                        )
                        content = await response.aread()
                        await response.aclose()
                except Exception:  # no answer in time: the first chat call will tell
                    self._undecided = True
                    return
                if response.status_code in (401, 403):
                    self._refused(response, content, _bearer(request))
                elif not response.is_success:  # no such route: the first chat call will tell
                    self._undecided = True
        elif self._probed.locked():
            async with self._probed:
                pass

    def _refused(self, response: httpx.Response, content: bytes, key: list[str]) -> None:
        """Keep the first 401/403 (redacted): later attempts get it without being sent."""
        from voorbeelden.redact import redact

        try:
            message = json.loads(content)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = content[:200].decode("utf-8", "replace")
        keep = [(k, v) for k, v in response.headers.multi_items() if k.lower() == "content-type"]
        self._refusal = (response.status_code, keep, content)
        self.refused = redact(
            f"the endpoint refused the key (HTTP {response.status_code}: {message}); no more calls are sent. "
            "Check OPENAI_API_KEY (or the key for --base-url) and run again: the terms not done resume, "
            "--retry-failed reruns the ones that failed",
            key,
        )

    async def _arrive(self, request: httpx.Request) -> _Attempt:
        """Read the attempt: its body (None when it is not a JSON object), its number, its cache key."""
        t_queued = time.monotonic()
        raw = await request.aread()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = None
        fingerprint = hashlib.blake2b(raw, digest_size=16).hexdigest()
        number = 2 if fingerprint in self._bodies else 1
        if number > 1:
            self.stats.retries += 1
        else:
            self._bodies.add(fingerprint)
        key = cache_key(body, str(request.url)) if self.cache is not None and body is not None else None
        return _Attempt(request, body, number, t_queued, key)

    def _from_cache(self, attempt: _Attempt) -> httpx.Response | None:
        """A stored answer to the same call, marked as cached; nothing is sent and no slot is taken."""
        hit = self.cache.get(attempt.key) if self.cache is not None and attempt.key is not None else None
        if hit is None:
            return None
        status, content_type, content = hit
        self.stats.cache_hits += 1
        self._event(attempt, attempt.t_queued, time.monotonic(), status, cached=True)
        return httpx.Response(
            status,
            headers={"content-type": content_type, CACHE_HEADER: "hit", GATE_WAIT_HEADER: "0"},
            content=mark_cached(content),
            request=attempt.request,
        )

    async def _take_slot(self, attempt: _Attempt) -> _Slot:
        """Wait for a concurrency slot (first come, first served), before the rate limit: see the module."""
        attempt.tokens = estimate_call_tokens(attempt.body)
        body = attempt.body
        kind = f"{body.get('model')}/{body.get('max_tokens')}" if body else ""
        self._tokens = attempt.tokens if self._tokens is None else 0.95 * self._tokens + 0.05 * attempt.tokens
        ticket = await self.concurrency.acquire() if self.concurrency is not None else 0
        return _Slot(self.concurrency, ticket, kind)

    async def _send(self, attempt: _Attempt, slot: _Slot) -> tuple[httpx.Response, bytes | None]:
        """Wait for the rate limit, send, and read the body unless it streams (None then).

        On any failure the slot is given back; an attempt that was on the wire counts as an error and its
        grant as spent, one cancelled while still queued here is not the endpoint's error."""
        try:
            if self.limiter is not None:
                attempt.grant = await self.limiter.acquire(attempt.tokens)
                attempt.request.extensions = {**attempt.request.extensions, SENT_HOOK: attempt.grant.sent}
            if self.concurrency is not None:
                slot.saturated = self.concurrency.sent()
            slot.on_wire = True
            attempt.t_sent = time.monotonic()
            self.stats.sent += 1
            self.stats.gate_wait_s += attempt.t_sent - attempt.t_queued
            response = await self.inner.handle_async_request(attempt.request)
            if attempt.streamed:
                return response, None
            try:
                return response, await response.aread()
            finally:
                await response.aclose()
        except BaseException:
            if slot.on_wire:
                self.stats.answers.count(None)
            if attempt.grant is not None:
                attempt.grant.sent()  # it may have reached the server: count it until a later answer says more
            self._event(attempt, attempt.t_queued, time.monotonic(), None)
            slot.release()
            raise

    def _answered(self, attempt: _Attempt, response: httpx.Response) -> tuple[bool, float | None]:
        """Learn from the answer (latency, the endpoint's budget) and count it; whether it was a 429, and
        the latency (the slot's release reports both)."""
        latency = time.monotonic() - attempt.t_sent
        status = response.status_code
        explained = self._learn(response.headers, status, attempt.grant, latency)
        self.stats.answers.count(status)
        self._event(attempt, attempt.t_sent, attempt.t_sent + latency, status)
        # A 429 the rate-limit headers explain is paced by the limiter; shrinking the concurrency for it
        # too starved a short-window endpoint (5 calls of 2 s per second need 10 in flight; it fell to 9).
        # (nor is its latency a call's: it would drag the latency baseline down)
        return status == 429 and not explained, None if status == 429 else latency

    def _store(self, attempt: _Attempt, response: httpx.Response, content: bytes) -> None:
        """Keep the answer for the next identical call (the cache judges which answers are worth keeping).
        The key the call was sent with is redacted first: an endpoint that echoes it (in a 200 body) must not
        leave it on disk in the cache."""
        if attempt.key is not None and self.cache is not None:
            from voorbeelden.redact import redact

            content_type = response.headers.get("content-type", "application/json")
            text = content.decode("utf-8", "replace")
            clean = redact(text, _bearer(attempt.request))
            stored = clean.encode() if clean != text else content
            self.cache.put(attempt.key, response.status_code, content_type, stored)

    # ---- learning from the endpoint --------------------------------------------------------------------

    def _learn(self, headers: httpx.Headers, status: int, grant: Grant | None, latency: float) -> bool:
        if status != 429:
            # The mean latency over calls, for Little's law: a running mean at first (the first answers
            # are the short calls, an EWMA would start far too low), then slowly moving.
            self._n_latency += 1
            alpha = max(1.0 / self._n_latency, 0.01)
            self._latency = (
                latency if self._latency is None else (1 - alpha) * self._latency + alpha * latency
            )
        explained = False
        if self.limiter is not None and grant is not None and self.learn_from_headers:
            # The endpoint's own account of its budget replaces the client's guess (see limiter.py).
            explained = self.limiter.observe(grant, status, headers)
        self._size_to_rate()
        return explained

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
        self, attempt: _Attempt, t_sent: float, t_done: float, status: int | None, *, cached: bool = False
    ) -> None:
        if self.record_events:
            event = CallEvent(attempt.t_queued, t_sent, t_done, status, cached, attempt.number)
            self.stats.events.append(event)

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


def _bearer(request: httpx.Request) -> list[str]:
    """The key a request was sent with (``Authorization: Bearer KEY``), to redact it from what it got back."""
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return [key] if key else []


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

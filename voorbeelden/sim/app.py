"""The aiohttp application: OpenAI-compatible routes, admin routes, and the per-request pipeline.

Pipeline of one chat completion: read and validate (413/400 with an OpenAI-style error body, never a crash)
-> recognise the part -> rate limit (429) -> fault decision -> wait for a capacity slot (queue) -> draw the
latency -> answer (plain JSON after the whole service time, or SSE chunks spread from TTFT to the end).
Every wait is a deadline on the loop clock measured from when the slot was granted, so the
``x-sim-service-ms`` header is the schedule the client can compare its observed latency against.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np
from aiohttp import web

from voorbeelden.sim import content
from voorbeelden.sim.config import SimConfig
from voorbeelden.sim.faults import decide_fault
from voorbeelden.sim.latency import keyed_rng
from voorbeelden.sim.profiles import PROFILES, Profile, Sample
from voorbeelden.sim.protocol import (
    BadRequest,
    ChatParams,
    error_response,
    errors_middleware,
    parse_chat,
    read_json,
)
from voorbeelden.sim.ratelimit import retry_after_headers
from voorbeelden.sim.state import SimState
from voorbeelden.tokens import estimate_prompt_tokens

MAX_STREAM_CHUNKS = 40  # enough to see TTFT and a token rate; more only costs CPU at 1,000 in flight
STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state")


# ---- handlers ------------------------------------------------------------------------------------------


def _state(request: web.Request) -> SimState:
    return request.app[STATE_KEY]


async def health(request: web.Request) -> web.Response:
    st = _state(request)
    return web.json_response(
        {"status": "ok", "profile": st.config.profile, "time_scale": st.config.time_scale}
    )


async def models(request: web.Request) -> web.Response:
    data = [
        {"id": f"sim-{name}", "object": "model", "created": 0, "owned_by": "voorbeelden-sim"}
        for name in PROFILES
    ]
    return web.json_response({"object": "list", "data": data})


async def admin_counters(request: web.Request) -> web.Response:
    return web.json_response(_state(request).counters.to_dict())


async def admin_get_config(request: web.Request) -> web.Response:
    return web.json_response(_state(request).config.to_dict())


async def admin_config(request: web.Request) -> web.Response:
    st = _state(request)
    body = await read_json(request, st.config.max_body_bytes, st.config.read_timeout_s)
    try:
        new = st.config.with_changes(body, runtime=True)
    except (ValueError, TypeError) as e:
        raise BadRequest(str(e)) from None
    st.apply(new)
    return web.json_response(new.to_dict())


async def admin_reset(request: web.Request) -> web.Response:
    _state(request).reset_counters()
    return web.json_response({"status": "reset"})


class _Call:
    """One chat completion in progress: its draws, timing and response headers."""

    def __init__(self, st: SimState, params: ChatParams, ask: content.Ask, key: str, attempt: int) -> None:
        self.st, self.params, self.ask, self.key, self.attempt = st, params, ask, key, attempt
        cfg = st.config
        self.cfg = cfg
        self.scale = cfg.time_scale
        self.id = f"chatcmpl-sim{st.seq}"
        self.created = int(time.time())
        self.headers: dict[str, str] = {
            "x-sim-part": ask.part,
            "x-sim-queue-ms": "0",
            "x-sim-service-ms": "0",
        }

    def rng(self, stream: str) -> np.random.Generator:
        return keyed_rng(self.cfg.seed, self.key, self.ask.part, self.attempt, stream)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    loop = asyncio.get_running_loop()
    st.counters.requests_total += 1
    st.enter("open")
    status: int | None = None
    try:
        resp = await _chat(request, st, loop)
        status = resp.status
        return resp
    except BadRequest as e:
        status = e.status
        raise
    finally:
        st.leave("open")
        if status is not None:
            st.counters.by_status[str(status)] += 1
            if status == 429:
                st.counters.sent_429 += 1


async def _chat(request: web.Request, st: SimState, loop: asyncio.AbstractEventLoop) -> web.StreamResponse:
    cfg = st.config
    body = await read_json(request, cfg.max_body_bytes, cfg.read_timeout_s)
    params = parse_chat(body)
    attempt = _attempt(request)
    try:  # whatever the validation above let through, a request the simulator cannot read is the client's 400
        ask = content.recognise(params.messages, params.json_mode)
    except (ValueError, TypeError, RecursionError) as e:
        raise BadRequest(f"request cannot be understood: {type(e).__name__}: {e}"[:500]) from None
    st.seq += 1
    key = request.headers.get("x-sim-key") or f"req-{st.seq}"
    call = _Call(st, params, ask, key, attempt)
    st.counters.by_part[ask.part] += 1
    profile = cfg.resolved_profile()

    refused = _rate_limit(st, call, profile)
    if refused is not None:
        return refused
    st.counters.accepted_times.append(time.monotonic())

    fault = decide_fault(cfg, ask.part, attempt, call.rng("fault"))
    if fault is not None:
        st.counters.faults[fault] += 1
    if fault == "429":
        call.headers.update(retry_after_headers(1.0 * call.scale))
        return error_response(
            429,
            "Rate limit reached (simulated fault).",
            type_="requests",
            code="rate_limit_exceeded",
            headers=call.headers,
        )
    if fault == "hang":
        st.enter("in_flight")
        try:
            return await _hang(request, st)
        finally:
            st.leave("in_flight")

    t_queue = loop.time()
    st.enter("queued")
    try:
        await st.gate.acquire()
    finally:
        st.leave("queued")
    st.enter("in_flight")
    pace = _Pace(loop, st)
    try:
        call.headers["x-sim-queue-ms"] = f"{(pace.t0 - t_queue) * 1000:.3f}"
        if pace.stream is not None:
            call.headers["x-sim-batch"] = str(pace.stream.decoder.active)
        return await _serve(request, call, _sample(call, profile, fault), fault, pace)
    finally:
        pace.close()
        st.leave("in_flight")
        st.gate.release()


class _Pace:
    """When an admitted call reaches a point of its work, given as seconds it would take served alone
    (scaled): at that offset from admission, or, on a batching profile, when the shared decoder has done that
    much of it (later, as other streams share the server; see :mod:`voorbeelden.sim.batching`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, st: SimState) -> None:
        self.loop = loop
        self.t0 = loop.time()
        self.stream = st.decoder.join() if st.decoder is not None else None

    async def until(self, work_s: float) -> None:
        if self.stream is None:
            await _sleep_until(self.loop, self.t0 + work_s)
        else:
            await self.stream.until(work_s)

    def elapsed_s(self) -> float:
        return self.loop.time() - self.t0

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _rate_limit(st: SimState, call: _Call, profile: Profile) -> web.Response | None:
    """The 429 of the configured rate limits (None when the call may go ahead); the limit headers are set
    on the call either way, as a real server sends them on every answer."""
    limiter = st.limiter
    if not limiter.active:
        return None
    params, part = call.params, call.ask.part
    est = estimate_prompt_tokens(params.messages) + (
        params.max_tokens or round(profile.part_profile(part).tokens.median)
    )
    decision = limiter.check(est)
    call.headers.update(decision.headers)
    if decision.allowed:
        return None
    st.counters.rate_limited += 1
    call.headers.update(retry_after_headers(decision.retry_after_s))
    which = decision.which
    return error_response(
        429,
        f"Rate limit reached for {which} (simulated). Please try again in {decision.retry_after_s:.3f}s.",
        type_=which,
        code="rate_limit_exceeded",
        headers=call.headers,
    )


def _sample(call: _Call, profile: Profile, fault: str | None) -> Sample:
    """This call's latency and token draw, adjusted for the item count asked and a truncation fault."""
    params, ask = call.params, call.ask
    sample = profile.sample(ask.part, call.rng("latency"), params.max_tokens)
    # A profile's token counts are for the part's usual item count; asking for fewer (or more) items
    # costs proportionally fewer (more) output tokens. Without this, splitting a long part into one-item
    # calls could never shorten the slowest call.
    usual = content.DEFAULT_COUNTS.get(ask.part)
    if usual and ask.part != "toelichting" and ask.count and ask.count != usual:
        needed = max(1, round(sample.tokens_needed * ask.count / usual))
        out = needed if params.max_tokens is None else max(1, min(needed, int(params.max_tokens)))
        sample = Sample(sample.ttft_s, needed, out, sample.tokens_per_s)
    if fault == "truncated":
        needed = max(2, sample.tokens_needed)
        out = max(1, min(sample.tokens_out, needed // 2))
        sample = Sample(sample.ttft_s, needed, out, sample.tokens_per_s)
    return sample


_SERVER_ERRORS = {
    "500": "The server had an error while processing your request (simulated).",
    "503": "The server is overloaded or not ready yet (simulated).",
}


async def _serve(
    request: web.Request,
    call: _Call,
    sample: Sample,
    fault: str | None,
    pace: _Pace,
) -> web.StreamResponse:
    """Answer an admitted call (holding a capacity slot) at the times its sample says: a server error after the
    first-token time, a stream, or one JSON body (possibly malformed or dropped)."""
    params = call.params
    full = content.render(call.ask, call.rng("content"))
    text = content.cut(full, sample.tokens_out, sample.tokens_needed)
    finish = "length" if sample.truncated else "stop"
    usage = {
        "prompt_tokens": estimate_prompt_tokens(params.messages),
        "completion_tokens": sample.tokens_out,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    ttft_w = sample.ttft_s * call.scale
    end_w = sample.service_s * call.scale

    if fault in _SERVER_ERRORS:
        call.headers["x-sim-service-ms"] = f"{ttft_w * 1000:.3f}"
        await pace.until(ttft_w)
        return error_response(int(fault), _SERVER_ERRORS[fault], type_="server_error", headers=call.headers)

    # The schedule served alone; a batching server's plain answer says the time it really took (its
    # headers go out at the end), a stream's cannot (they go out at the first token).
    call.headers["x-sim-service-ms"] = f"{end_w * 1000:.3f}"
    if params.stream:
        return await _stream(request, call, text, finish, usage, ttft_w, end_w, fault, pace)
    await pace.until(ttft_w if fault == "drop" else end_w)
    if pace.stream is not None:
        call.headers["x-sim-service-ms"] = f"{pace.elapsed_s() * 1000:.3f}"
    raw = json.dumps(_completion(call, text, finish, usage), ensure_ascii=False).encode()
    if fault == "malformed":
        return web.Response(
            body=raw[: len(raw) // 2], status=200, content_type="application/json", headers=call.headers
        )
    if fault == "drop":
        return await _drop(request, call, raw)
    return web.Response(body=raw, status=200, content_type="application/json", headers=call.headers)


def _completion(call: _Call, text: str, finish: str, usage: dict[str, int]) -> dict[str, Any]:
    """A ``chat.completion`` body as the OpenAI API sends it."""
    return {
        "id": call.id,
        "object": "chat.completion",
        "created": call.created,
        "model": call.params.model,
        "system_fingerprint": "fp_voorbeelden_sim",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }


def _attempt(request: web.Request) -> int:
    """``x-sim-attempt`` (default 1) plus the openai SDK's own ``x-stainless-retry-count``: the SDK resends
    identical headers when it retries, so without the count its retries would repeat attempt 1's draw
    (and a fault scheduled ``@1`` would fail every retry). A caller retrying by itself (SDK retries off)
    sends retry count 0, so its ``x-sim-attempt`` is used as is."""
    values = []
    for name, default in (("x-sim-attempt", "1"), ("x-stainless-retry-count", "0")):
        raw = request.headers.get(name, default)
        try:
            values.append(int(raw))
        except ValueError:
            raise BadRequest(f"{name} must be an integer, got {raw!r}", param=name) from None
    return values[0] + values[1]


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _hang(request: web.Request, st: SimState) -> web.StreamResponse:
    """Answer nothing until the client gives up or the server shuts down; polling the transport means a
    hung request leaves the in-flight count when its client goes away, not only at shutdown. A client that
    left is counted as status 499 (nginx's "client closed request"): nothing was delivered."""
    while not st.shutdown.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(status=499)
        try:
            await asyncio.wait_for(st.shutdown.wait(), timeout=0.05)
        except TimeoutError:
            pass
    return error_response(503, "simulator shutting down", type_="server_error")


async def _drop(request: web.Request, call: _Call, raw: bytes) -> web.StreamResponse:
    """Send the headers and half the body, then cut the connection: what a crashed upstream looks like."""
    resp = web.StreamResponse(status=200, headers=call.headers)
    resp.content_type = "application/json"
    resp.content_length = len(raw)
    await resp.prepare(request)
    await resp.write(raw[: len(raw) // 2])
    _abort(request)
    return resp


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _chunk(call: _Call, delta: dict[str, Any], finish: str | None, include_usage: bool) -> bytes:
    obj: dict[str, Any] = {
        "id": call.id,
        "object": "chat.completion.chunk",
        "created": call.created,
        "model": call.params.model,
        "system_fingerprint": "fp_voorbeelden_sim",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        obj["usage"] = None
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


async def _stream(
    request: web.Request,
    call: _Call,
    text: str,
    finish: str,
    usage: dict[str, int],
    ttft_w: float,
    end_w: float,
    fault: str | None,
    pace: _Pace,
) -> web.StreamResponse:
    """SSE: headers and the first chunk at TTFT, the rest spread evenly until the end of the service time,
    so a client measures a realistic time to first token."""
    n = max(1, min(MAX_STREAM_CHUNKS, int(usage["completion_tokens"]), len(text) or 1))
    step = -(-len(text) // n) if text else 0
    pieces = [text[i * step : (i + 1) * step] for i in range(n)] if text else [""]
    inc = call.params.include_usage
    await pace.until(ttft_w)
    resp = web.StreamResponse(status=200, headers=call.headers)
    resp.content_type = "text/event-stream"
    resp.headers["cache-control"] = "no-cache"
    try:
        await resp.prepare(request)
        await resp.write(_chunk(call, {"role": "assistant", "content": "", "refusal": None}, None, inc))
        span = end_w - ttft_w
        for i, piece in enumerate(pieces):
            if i:
                await pace.until(ttft_w + span * i / max(1, len(pieces) - 1))
            if fault == "malformed" and i == len(pieces) // 2:
                await resp.write(
                    b'data: {"id": "' + call.id.encode() + b'", "choices": [{"delta": {"content": "\n\n'
                )
                continue
            if fault == "drop" and i == len(pieces) // 2:
                _abort(request)
                return resp
            await resp.write(_chunk(call, {"content": piece}, None, inc))
        await resp.write(_chunk(call, {}, finish, inc))
        if inc:
            final = {
                "id": call.id,
                "object": "chat.completion.chunk",
                "created": call.created,
                "model": call.params.model,
                "system_fingerprint": "fp_voorbeelden_sim",
                "choices": [],
                "usage": usage,
            }
            await resp.write(b"data: " + json.dumps(final).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away mid-stream; nothing left to tell it
    return resp


def build_app(config: SimConfig) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=config.max_body_bytes + 1)
    app[STATE_KEY] = SimState(config)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/admin/counters", admin_counters)
    app.router.add_get("/admin/config", admin_get_config)
    app.router.add_post("/admin/config", admin_config)
    app.router.add_post("/admin/reset", admin_reset)
    from voorbeelden.sim.batches import add_batch_routes  # here: batches.py reads this module's helpers

    add_batch_routes(app)  # /v1/files and /v1/batches (OpenAI's Batch API), /admin/batches
    return app

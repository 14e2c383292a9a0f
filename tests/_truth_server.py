"""Tiny real HTTP servers (aiohttp, on 127.0.0.1, in a daemon thread) that misbehave in one chosen way, for
the tests/test_truth_*.py files: an OpenAI-compatible endpoint that answers 401 to everything, one that
echoes the caller's key in its error body, one that always returns the same single item, one that stalls.
Subprocesses (the CLI, papermill kernels) reach them over TCP like any endpoint.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Served:
    """A running server: ``url`` is ``http://127.0.0.1:PORT`` (no ``/v1``); ``hits`` counts requests by path."""

    url: str
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def total(self) -> int:
        return sum(self.hits.values())


@contextmanager
def serve(handler: Handler) -> Iterator[Served]:
    """Run ``handler`` for every request on every path until the block exits."""
    loop = asyncio.new_event_loop()
    served = Served(url="")

    async def counting(request: web.Request) -> web.StreamResponse:
        served.hits[request.path] = served.hits.get(request.path, 0) + 1
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counting)
    runner = web.AppRunner(app, handle_signals=False)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    served.url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, name="truth-server", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _key_of(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ").strip()


async def answer_401(request: web.Request) -> web.Response:
    """What api.openai.com says to a wrong key (without echoing it)."""
    body = {
        "error": {
            "message": "Incorrect API key provided. You can find your API key at https://platform.openai.com.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    return web.json_response(body, status=401)


async def echo_key(request: web.Request) -> web.Response:
    """A careless proxy: every answer is an error that repeats the key in several shapes (plain, as a bearer
    header, in a URL), with 500 first (retried) and 401 on retries."""
    key = _key_of(request)
    attempt = int(request.headers.get("x-sim-attempt", "1") or 1)
    status = 500 if attempt == 1 and request.method == "POST" else 401
    message = (
        f"upstream rejected key {key}; sent headers Authorization: Bearer {key}; "
        f"retry at https://upstream.example/v1/chat?api_key={key}"
    )
    return web.json_response({"error": {"message": message, "type": "server_error"}}, status=status)


def completion(text: str, *, finish_reason: str = "stop", prompt_tokens: int = 50) -> dict[str, Any]:
    return {
        "id": "chatcmpl-truth",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "truth-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": max(1, len(text) // 4),
            "total_tokens": prompt_tokens + max(1, len(text) // 4),
        },
    }


async def one_item(request: web.Request) -> web.Response:
    """A model that ignores the item count asked for: always the same single line (or, for a JSON-schema
    request, an object with one item per part), after a short pause so overlap is measurable."""
    if request.method != "POST":
        return web.json_response({"object": "list", "data": [{"id": "truth-model", "object": "model"}]})
    body = await request.json()
    await asyncio.sleep(0.05)
    if "response_format" in body:
        text = json.dumps(
            {
                "voorbeeldzinnen": ["Het besluit is genomen."],
                "praktijkvoorbeelden": ["Een gemeente besluit over een vergunning."],
                "tegenvoorbeelden": ["Een advies."],
                "synoniemen": ["beschikking"],
                "antoniemen": ["onthouding"],
                "toelichting": "Een besluit is een schriftelijke beslissing.",
            }
        )
    else:
        text = "1. Hetzelfde ene voorbeeld van een besluit."
    return web.json_response(completion(text))


def stall(seconds: float) -> Handler:
    """Answers a chat completion only after ``seconds`` (a deadline test cuts it off before that)."""

    async def handler(request: web.Request) -> web.Response:
        if request.method == "POST":
            await asyncio.sleep(seconds)
        return web.json_response(completion("1. a\n2. b\n3. c"))

    return handler


def rate_limited(retry_after_s: float) -> Handler:
    """429 with ``retry-after`` (seconds) on every chat completion."""

    async def handler(request: web.Request) -> web.Response:
        body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
        return web.json_response(body, status=429, headers={"retry-after": f"{retry_after_s:g}"})

    return handler


def free_port() -> int:
    """A port nothing listens on (bound and released; good enough for a test on one machine)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""What the batch gate does with an endpoint's answers: which it caches (only answers with text, the key
redacted), what a 401 stops, and how it tells a resend without a simulator header.

The endpoint is an ``httpx2.MockTransport`` under the real gate and the real ``AsyncOpenAI`` client, so the
SDK's own request building and error mapping are exercised. Each test failed on 487172d.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from voorbeelden.backend import make_client
from voorbeelden.batch.cache import ResponseCache, cacheable
from voorbeelden.batch.transport import GatedTransport

KEY = "ollama"  # a short key: shorter than the 8 characters the redaction used to require
MSG = [{"role": "user", "content": "Geef synoniemen van 'besluit'."}]


def _answer(content: Any, finish: str = "stop") -> bytes:
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return json.dumps(
        {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
    ).encode()


@pytest.mark.parametrize("content", ["", "   ", None])
def test_an_empty_or_null_answer_is_not_cacheable(content: Any) -> None:
    assert not cacheable(200, _answer(content))
    assert cacheable(200, _answer("- overbesluit"))


def test_an_empty_answer_stored_by_an_older_version_is_a_miss(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    cache._cache.set("k", (200, "application/json", _answer("")))  # as the old rule stored it
    assert cache.get("k") is None
    cache.close()


class _Endpoint:
    """Answers every chat completion with ``status`` and ``body`` and ``GET /models`` with ``models`` (404:
    an endpoint without that route); counts the chat completions that reached it."""

    def __init__(self, status: int, body: bytes, models: int = 404) -> None:
        self.status, self.body, self.models, self.calls = status, body, models, 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            return httpx2.Response(self.models, content=self.body if self.models >= 400 else b'{"data": []}')
        self.calls += 1
        return httpx2.Response(self.status, content=self.body, headers={"content-type": "application/json"})


async def _calls(gate: GatedTransport, n: int) -> list[Any]:
    client = make_client("http://endpoint.test/v1", KEY, transport=gate)
    out = []
    try:
        for _ in range(n):
            try:
                out.append(await client.chat.completions.create(model="m", messages=MSG))  # type: ignore[arg-type]
            except openai.APIStatusError as err:
                out.append(err)
    finally:
        await client.close()
    return out


def test_the_key_echoed_in_an_answer_never_reaches_the_cache(tmp_path: Path) -> None:
    endpoint = _Endpoint(200, _answer(f"- besluit (your key was {KEY}; Bearer {KEY})"))
    cache = ResponseCache(tmp_path / "c")
    gate = GatedTransport(httpx2.MockTransport(endpoint), cache=cache)
    asyncio.run(_calls(gate, 1))
    stored = [cache._cache.get(k) for k in cache._cache.iterkeys()]
    cache.close()
    assert len(stored) == 1
    assert KEY not in stored[0][2].decode() and "[REDACTED]" in stored[0][2].decode()


def test_a_refused_key_is_sent_once_and_every_later_call_gets_the_same_answer() -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}})
    endpoint = _Endpoint(401, body.encode())
    gate = GatedTransport(httpx2.MockTransport(endpoint))
    answers = asyncio.run(_calls(gate, 5))
    assert endpoint.calls == 1  # 60 calls of 401 before: one per call of the batch
    assert all(isinstance(a, openai.AuthenticationError) for a in answers)
    assert gate.refused is not None and "refused the key (HTTP 401" in gate.refused
    assert KEY not in gate.refused
    assert gate.stats.refused_locally == 4


def test_a_key_the_models_route_refuses_costs_no_chat_call() -> None:
    body = json.dumps({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
    endpoint = _Endpoint(200, body.encode(), models=401)
    gate = GatedTransport(httpx2.MockTransport(endpoint))
    answers = asyncio.run(_calls(gate, 3))
    assert endpoint.calls == 0 and gate.refused is not None
    assert all(isinstance(a, openai.AuthenticationError) for a in answers)


def test_a_resend_is_recognised_by_its_body_not_by_a_simulator_header() -> None:
    endpoint = _Endpoint(200, _answer("- overbesluit"))
    gate = GatedTransport(httpx2.MockTransport(endpoint))
    asyncio.run(_calls(gate, 3))  # the same body three times, no x-sim-attempt header
    assert endpoint.calls == 3 and gate.stats.retries == 2
    assert gate.describe()["resent"] == 2

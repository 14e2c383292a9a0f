"""The client against a real server's quirks, reproduced by a scripted HTTP transport under the real openai SDK.

What llama-cpp-python's server does (measured, see the README) and what the client must make of it:
a stream cut off by another request (no content, no finish_reason) is a retryable ``stream_cut``, and after a
cut the run streams one call at a time; a plain JSON body answered to ``stream: true`` is read and noted as not
streamed; ``response_format: json_schema`` answered with a 500 validation error is ``unsupported_response_format``
(not retried) and ``combined`` falls back to ``json_object`` with a schema, saying so; temperature and seed
overrides reach the request while per-part temperatures stay the default. The real server is exercised by
``tests/test_real_llm.py`` (marker ``real_llm``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import openai
import pytest

from voorbeelden import GeneratorConfig, generate
from voorbeelden.config import default_part_settings
from voorbeelden.parsing import parse_part
from voorbeelden.types import ALL_PARTS, Part

REQUEST = {"begrip": "besluit", "definitie": "Een schriftelijke beslissing van een bestuursorgaan."}
ANSWERS = {
    "voorbeeldzinnen": "Het besluit is genomen.\nHet besluit werd bekendgemaakt.\nTegen het besluit staat bezwaar open.",
    "praktijkvoorbeelden": "De gemeente verleent een vergunning.\nHet UWV kent een uitkering toe.\nDe inspecteur legt een boete op.",
    "tegenvoorbeelden": "Een folder.\nEen advies.\nEen toezegging.",
    "synoniemen": "beschikking\nbeslissing\nbeschluss\nuitspraak\nresolutie",
    "antoniemen": "weigering\nintrekking\nnietigheid\nopschorting\nonthouding",
    "toelichting": "Een besluit is een schriftelijke beslissing van een bestuursorgaan.",
}


def part_of(body: dict[str, Any]) -> str:
    words = body["messages"][-1]["content"].splitlines()[0].lower().split()
    return words[3] if words[:2] == ["geef", "precies"] else "toelichting"


def completion(text: str, tokens: int = 12) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens},
    }


def sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


Handler = Callable[[httpx2.Request, dict[str, Any]], Awaitable[httpx2.Response]]


def client_for(handler: Handler, seen: list[dict[str, Any]]) -> openai.AsyncOpenAI:
    async def route(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        return await handler(request, body)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(route))
    return openai.AsyncOpenAI(base_url="http://llama.test/v1", api_key="x", http_client=http, max_retries=0)


async def _run(handler: Handler, strategy: str, **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    client = client_for(handler, seen)
    try:
        gen = await generate(REQUEST, strategy, client=client, **kwargs)
    finally:
        await client.close()
    return gen, seen


def run(handler: Handler, strategy: str, **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
    return asyncio.run(_run(handler, strategy, **kwargs))


def assert_six(gen: Any) -> None:
    assert gen.errors == {}, gen.errors
    assert all(gen.parts[p] for p in ALL_PARTS), gen.parts


# ---- streams cut off by the server ---------------------------------------------------------------------


class Interrupting:
    """llama.cpp's interrupt_requests: a stream ends (role chunk, then [DONE]) when another request is
    waiting; a stream that runs alone finishes."""

    def __init__(self) -> None:
        self.active = 0
        self.max_active_after_cut = 0
        self.cuts = 0
        self.asked: dict[str, int] = {}  # requests per part: llama.cpp is sent no x-sim-attempt header

    async def __call__(self, request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        self.active += 1
        try:
            await asyncio.sleep(0.02)
            alone = self.active == 1
            self.asked[part_of(body)] = self.asked.get(part_of(body), 0) + 1
            if self.asked[part_of(body)] > 1:  # a retry: sent after the client saw a cut
                self.max_active_after_cut = max(self.max_active_after_cut, self.active)
            if not alone:
                self.cuts += 1
                return httpx2.Response(
                    200,
                    headers={"content-type": "text/event-stream"},
                    content=sse([chunk({"role": "assistant"})]),
                )
            text = ANSWERS[part_of(body)]
            pieces = [chunk({"role": "assistant"})] + [
                chunk({"content": line + "\n"}) for line in text.split("\n")
            ]
            return httpx2.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=sse([*pieces, chunk({}, "stop")]),
            )
        finally:
            self.active -= 1


def test_a_cut_stream_is_a_retried_stream_cut_and_the_run_then_streams_one_at_a_time() -> None:
    server = Interrupting()
    gen, _ = run(server, "streaming", max_retries=3)
    assert_six(gen)
    cut = [r for r in gen.records if r.error_kind == "stream_cut"]
    assert cut, "the scripted server cut streams; the records must say so"
    assert all(r.status == "error" and r.finish_reason is None for r in cut)
    assert all("without a finish_reason" in (r.error or "") for r in cut)
    retried = [r for r in gen.records if r.attempt > 1 and r.status == "ok"]
    assert retried and all(r.note == "stream:one_at_a_time" for r in retried)
    assert server.max_active_after_cut == 1, "after a cut, streams must not overlap"
    # every delivered stream counted its tokens (the server sends no usage: one chunk per token)
    assert all(r.tokens_out for r in gen.records if r.status == "ok")


def test_without_cuts_streams_run_in_parallel_and_carry_no_note() -> None:
    async def always_finish(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        await asyncio.sleep(0.01)
        text = ANSWERS[part_of(body)]
        return httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=sse([chunk({"role": "assistant"}), chunk({"content": text}), chunk({}, "stop")]),
        )

    gen, _ = run(always_finish, "streaming")
    assert_six(gen)
    assert [r.note for r in gen.records] == [None] * 6
    assert all(r.ttft_s is not None for r in gen.records)


def test_a_plain_body_answered_to_a_stream_request_is_read_and_noted_as_not_streamed() -> None:
    async def plain(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        assert body["stream"] is True
        return httpx2.Response(200, json=completion(ANSWERS[part_of(body)], tokens=9))

    gen, _ = run(plain, "streaming")
    assert_six(gen)
    assert {r.note for r in gen.records} == {"stream:plain_body"}
    assert all(r.ttft_s is None and r.tokens_out == 9 for r in gen.records)


# ---- combined: llama.cpp's response_format ----------------------------------------------------------------


async def llama_like(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
    fmt = body.get("response_format")
    if fmt and fmt.get("type") == "json_schema":
        detail = {
            "type": "literal_error",
            "loc": ["body", "response_format", "type"],
            "msg": "Input should be 'text' or 'json_object'",
        }
        return httpx2.Response(
            500, json={"error": {"message": f"1 validation error: {detail}", "type": "internal"}}
        )
    if fmt:
        assert fmt["type"] == "json_object" and fmt["schema"]["properties"]["synoniemen"]["maxItems"] == 5
        answer = {p: ANSWERS[p].split("\n") if p != "toelichting" else ANSWERS[p] for p in ANSWERS}
        return httpx2.Response(200, json=completion(json.dumps(answer), tokens=120))
    return httpx2.Response(200, json=completion(ANSWERS[part_of(body)]))


def test_combined_falls_back_to_json_object_with_a_schema_and_says_so() -> None:
    gen, seen = run(llama_like, "combined")
    assert_six(gen)
    records = [(r.part, r.status, r.error_kind, r.note) for r in gen.records]
    assert records == [
        ("combined", "error", "unsupported_response_format", "response_format:json_schema"),
        ("combined", "ok", None, "response_format:json_object+schema"),
    ]
    assert [r.attempt for r in gen.records] == [1, 2]
    assert len(seen) == 2, "a rejected format is not retried as is"


def test_combined_can_be_told_the_format_up_front() -> None:
    gen, seen = run(llama_like, "combined", options={"combined_format": "json_object_schema"})
    assert_six(gen)
    assert len(seen) == 1 and seen[0]["response_format"]["type"] == "json_object"


# ---- sampling and token records ---------------------------------------------------------------------------


async def plain_answers(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.Response(
        200, json=completion(ANSWERS[part_of(body)], tokens=len(body["messages"][0]["content"]) % 50 + 5)
    )


def test_per_part_temperatures_are_the_default_and_an_override_sends_one_temperature_and_a_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("VOORBEELDEN_TEMPERATURE", "VOORBEELDEN_SEED", "VOORBEELDEN_MAX_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    _, seen = run(plain_answers, "sequential")
    defaults = default_part_settings()
    sent = {part_of(b): b for b in seen}
    assert {p: sent[p.value]["temperature"] for p in ALL_PARTS} == {
        p: defaults[p].temperature for p in ALL_PARTS
    }
    assert all("seed" not in b for b in seen)

    config = GeneratorConfig().with_sampling(temperature=0.0, seed=7)
    gen, seen = run(plain_answers, "sequential", config=config)
    assert {b["temperature"] for b in seen} == {0.0} and {b["seed"] for b in seen} == {7}
    assert all(r.tokens_out and r.tokens_out > 0 for r in gen.records)

    # the report's run-wide override, from the environment
    monkeypatch.setenv("VOORBEELDEN_TEMPERATURE", "0")
    monkeypatch.setenv("VOORBEELDEN_SEED", "3")
    monkeypatch.setenv("VOORBEELDEN_MAX_TOKENS", "64")
    _, seen = run(plain_answers, "sequential")
    assert {(b["temperature"], b["seed"]) for b in seen} == {(0.0, 3)}
    assert max(b["max_tokens"] for b in seen) == 64


def test_a_short_answer_is_delivered_but_marked_shortfall() -> None:
    async def short(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
        return httpx2.Response(200, json=completion("alleen deze ene regel"))

    gen, _ = run(short, "sequential")
    assert gen.errors == {}
    marked = {r.part: (r.status, r.error_kind, r.error) for r in gen.records}
    assert marked["synoniemen"] == ("ok", "shortfall", "1 of 5 items")
    assert marked["toelichting"] == ("ok", None, None)
    assert gen.n_short == 5 and gen.summary_row()["n_short"] == 5


# ---- parsing real small-model output ------------------------------------------------------------------------


def test_echoed_instructions_and_the_term_itself_are_not_items() -> None:
    settings = default_part_settings()
    from voorbeelden.prompts import user_prompt
    from voorbeelden.types import Request

    req = Request(begrip="besluit", definitie="Een schriftelijke beslissing van een bestuursorgaan.")
    prompt = user_prompt(req, Part.ANTONIEMEN, settings[Part.ANTONIEMEN])
    text = (
        'Besluit: "Achterwoonen"\n\nAntwoord met precies 5 regels, één antoniem per regel, zonder nummering.'
    )
    r = parse_part(text, Part.ANTONIEMEN, 5, prompt=prompt)
    assert r.value == ["Achterwoonen"] and r.shortfall == 4
    # without the prompt the parser cannot tell an echo from an answer (the old behaviour)
    assert len(parse_part(text, Part.ANTONIEMEN, 5).value) > 1

    prompt = user_prompt(req, Part.VOORBEELDZINNEN, settings[Part.VOORBEELDZINNEN])
    text = (
        'Geef precies 3 voorbeeldzinnen van het begrip "besluit".\n\n'
        "Het college nam een besluit.\nHet college nam een besluit.\n"
        "Definitie: Een schriftelijke beslissing van een bestuursorgaan."
    )
    r = parse_part(text, Part.VOORBEELDZINNEN, 3, prompt=prompt)
    assert r.value == ["Het college nam een besluit."] and r.shortfall == 2

    prompt = user_prompt(req, Part.SYNONIEMEN, settings[Part.SYNONIEMEN])
    r = parse_part("besluit\nbeschikking\nAntwoord: beslissing", Part.SYNONIEMEN, 5, prompt=prompt)
    assert r.value == ["beschikking", "beslissing"]

"""The caller: the retry policy's pure parts (Retry-After, backoff bounds, the error vocabulary), and one call
against a fake endpoint: what it sends (to the simulator and to anything else) and what it asks again."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import random
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

from voorbeelden.caller import Call, Caller, PartOutcome, RunState, backoff_s, parse_retry_after
from voorbeelden.config import GeneratorConfig, RetryPolicy
from voorbeelden.types import CallRecord, Part, Request
from voorbeelden.wire import error_kind_for_status


def test_retry_after_ms_wins_over_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == pytest.approx(0.25)


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after({"retry-after": future}) or 0) <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0


@pytest.mark.parametrize(
    "headers",
    [None, {}, {"retry-after": "soon"}, {"retry-after-ms": "x"}, {"retry-after": "-1"}, {"retry-after": ""}],
)
def test_unusable_retry_after_is_ignored(headers: dict[str, str] | None) -> None:
    assert parse_retry_after(headers) is None


def test_backoff_doubles_with_downward_jitter_and_cap() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_cap_s=8.0, jitter=0.25)
    rng = random.Random(1)
    for n, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        for _ in range(50):
            assert nominal * 0.75 <= backoff_s(policy, n, rng) <= nominal
    assert backoff_s(RetryPolicy(jitter=0.0), 2) == 1.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, "rate_limited"),
        (400, "bad_request"),
        (401, "auth"),
        (404, "not_found"),
        (500, "http_500"),
        (503, "http_503"),
    ],
)
def test_error_kinds(status: int, kind: str) -> None:
    assert error_kind_for_status(status) == kind


# ---- one call against a fake endpoint (httpx2.MockTransport): what is sent, what is retried ----------------

REQ = Request(begrip="besluit", definitie="Een schriftelijke beslissing van een bestuursorgaan.")
ECHO = "Geef alleen woorden of korte woordgroepen met een tegengestelde betekenis."


def _completion(content: str) -> httpx2.Response:
    body = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }
    return httpx2.Response(200, json=body)


def _call(
    handler: Callable[[httpx2.Request], httpx2.Response],
    part: Part = Part.ANTONIEMEN,
    *,
    simulator: bool = False,
    seed: int | None = None,
    temperature: float | None = None,
    extra_headers: dict[str, str] | None = None,
    retry: RetryPolicy | None = None,
) -> tuple[PartOutcome, list[CallRecord]]:
    """One part through a Caller whose client answers with ``handler``; the outcome and the records."""

    async def main() -> tuple[PartOutcome, list[CallRecord]]:
        state = RunState(sim_key="key-1", simulator=simulator)
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        async with openai.AsyncOpenAI(
            base_url="http://endpoint.invalid/v1", api_key="x", max_retries=0, http_client=http
        ) as client:
            policy = retry or RetryPolicy(max_retries=2, backoff_base_s=0.001, backoff_cap_s=0.002)
            caller = Caller(client, state, retry=policy, call_timeout_s=5)
            settings = dataclasses.replace(GeneratorConfig().settings(part), seed=seed)
            if temperature is not None:
                settings = dataclasses.replace(settings, temperature=temperature)
            async with asyncio.timeout(10):  # a retry that waits as long as it is told would hang the test
                outcome = await caller.call_part(
                    Call.for_part(REQ, part, settings, extra_headers=extra_headers)
                )
        return outcome, state.records

    return asyncio.run(main())


def test_an_unusable_answer_is_asked_again_once_with_the_next_seed() -> None:
    """The small model echoed the instruction (the lost antoniemen of issue 21): one fresh sample, recorded as
    its own attempt with error_kind parse, and the retry asks with the next seed."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return _completion(
            ECHO if len(bodies) == 1 else "1. toestaan\n2. goedkeuren\n3. dulden\n4. laten\n5. gunnen"
        )

    outcome, records = _call(handler, seed=7)
    assert outcome.error is None and outcome.attempts == 2
    assert outcome.value[:2] == ["toestaan", "goedkeuren"]
    assert [(r.attempt, r.status, r.error_kind) for r in records] == [
        (1, "parse_error", "parse"),
        (2, "ok", None),
    ]
    assert [b["seed"] for b in bodies] == [7, 8]


def test_an_unusable_answer_is_asked_again_only_once() -> None:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return _completion(ECHO)

    outcome, records = _call(handler)
    assert len(calls) == 2 and outcome.attempts == 2
    assert outcome.error and outcome.error.startswith("parse:") and "after 2 attempts" in outcome.error
    assert outcome.value == [] and {r.error_kind for r in records} == {"parse"}


def test_a_greedy_run_resamples_with_some_temperature() -> None:
    """At temperature 0 the next seed gives the same echo again (llama-server, every retry): the resample
    asks at RESAMPLE_TEMPERATURE; the first attempt keeps the run's 0."""
    from voorbeelden.caller import RESAMPLE_TEMPERATURE

    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return _completion(ECHO)

    _call(handler, seed=1, temperature=0.0)
    assert [(b["temperature"], b["seed"]) for b in bodies] == [(0.0, 1), (RESAMPLE_TEMPERATURE, 2)]


def test_no_seed_is_invented_for_a_resample() -> None:
    seeds: list[object] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seeds.append(json.loads(request.content).get("seed"))
        return _completion(ECHO)

    _call(handler)
    assert seeds == [None, None]


def test_parse_retries_zero_turns_the_resample_off() -> None:
    outcome, records = _call(lambda r: _completion(ECHO), retry=RetryPolicy(parse_retries=0))
    assert outcome.attempts == 1 and len(records) == 1


def test_a_retry_after_beyond_the_cap_is_rate_limited_at_once_not_a_timeout() -> None:
    """``retry-after: 999999``: waiting the 60 s cap and asking again cannot succeed; the part is reported
    rate-limited with the endpoint's retry-after (it was "timeout: no answer within 60 s")."""
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(
            429, headers={"retry-after": "999999"}, json={"error": {"message": "Rate limit reached"}}
        )

    outcome, records = _call(handler)
    assert len(calls) == 1
    assert (
        outcome.error_kind == "rate_limited" and outcome.error and outcome.error.startswith("rate_limited:")
    )
    assert "retry-after 999999 s is over the cap of 60 s" in outcome.error
    (rec,) = records
    assert (rec.status, rec.http_status, rec.retry_after_s) == ("rate_limited", 429, 999999.0)


def test_a_retry_after_within_the_cap_is_honoured_and_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx2.Response(429, headers={"retry-after-ms": "5"}, json={"error": {"message": "slow"}})
        return _completion("1. toestaan\n2. goedkeuren\n3. dulden\n4. laten\n5. gunnen")

    outcome, records = _call(handler)
    assert outcome.error is None and [r.status for r in records] == ["rate_limited", "ok"]


@pytest.mark.parametrize("simulator", [False, True])
def test_the_simulator_headers_go_to_the_simulator_only(simulator: bool) -> None:
    """x-sim-attempt and x-sim-key (also one a strategy adds, like split's per-item key) reach the simulator
    and no other endpoint."""
    sent: list[dict[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append({k.lower(): v for k, v in request.headers.items()})
        return _completion("1. toestaan\n2. goedkeuren\n3. dulden\n4. laten\n5. gunnen")

    _call(handler, simulator=simulator, extra_headers={"x-sim-key": "key-1#item0", "x-other": "kept"})
    (headers,) = sent
    sim_headers = {k: v for k, v in headers.items() if k.startswith("x-sim-")}
    if simulator:
        assert sim_headers == {"x-sim-attempt": "1", "x-sim-key": "key-1#item0"}
    else:
        assert sim_headers == {}
    assert headers["x-other"] == "kept"


def test_a_call_that_is_not_a_part_needs_its_label_and_parse() -> None:
    settings = GeneratorConfig().settings(Part.SYNONIEMEN)
    with pytest.raises(TypeError, match="label and parse"):
        Call(settings=settings, messages=[])

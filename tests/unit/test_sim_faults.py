"""Each fault kind as the openai SDK sees it (max_retries=0), probabilistic faults, and schedule rules.

Recorded mapping (openai 3.5x, plain and stream alike):
500, 503 -> openai.InternalServerError; 429 -> openai.RateLimitError; hang -> openai.APITimeoutError
(with a short client timeout); drop -> openai.APIConnectionError; malformed -> json.JSONDecodeError (the
SDK does not wrap a 200 body that is not JSON; a caller must catch ValueError); truncated -> no exception,
finish_reason "length".
"""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest

from voorbeelden.sim import SimConfig, running_simulator
from voorbeelden.sim.config import FaultRule

MSG = [{"role": "user", "content": 'Geef precies 3 voorbeeldzinnen voor het begrip "beschikking".'}]

EXPECTED: dict[str, type[BaseException]] = {
    "500": openai.InternalServerError,
    "503": openai.InternalServerError,
    "429": openai.RateLimitError,
    "hang": openai.APITimeoutError,
    "drop": openai.APIConnectionError,
    "malformed": json.JSONDecodeError,
}


async def _call(url: str, stream: bool, **kw):
    async with openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0, timeout=0.5) as c:
        if stream:
            s = await c.chat.completions.create(model="m", messages=MSG, stream=True, **kw)
            return [ch async for ch in s]
        return await c.chat.completions.create(model="m", messages=MSG, **kw)


@pytest.fixture(scope="module")
def sim(fast_sim):  # type: ignore[no-untyped-def]
    return fast_sim


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_fault_kind_surfaces_as_sdk_exception(sim, kind: str, stream: bool) -> None:
    sim.configure(schedule=(f"*={kind}",))
    try:
        with pytest.raises(EXPECTED[kind]):
            asyncio.run(_call(sim.base_url, stream))
    finally:
        sim.configure(schedule=())
    if kind == "hang":  # the client gave up; the server noticed and stopped counting it as in flight
        for _ in range(50):
            c = sim.counters()
            if c["in_flight"] == 0:
                break
            time.sleep(0.02)
        assert c["in_flight"] == 0 and c["by_status"].get("499", 0) >= 1


def test_truncated_fault_is_finish_length(sim) -> None:
    sim.configure(schedule=("voorbeeldzinnen=truncated",))
    try:
        r = asyncio.run(_call(sim.base_url, False))
        chunks = asyncio.run(_call(sim.base_url, True))
    finally:
        sim.configure(schedule=())
    assert r.choices[0].finish_reason == "length"
    assert len(r.choices[0].message.content.splitlines()) < 3 or not r.choices[0].message.content.endswith(
        "."
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "length"
    ]


def test_429_fault_carries_retry_after(sim) -> None:
    sim.configure(schedule=("*=429",))
    try:
        with pytest.raises(openai.RateLimitError) as exc:
            asyncio.run(_call(sim.base_url, False))
    finally:
        sim.configure(schedule=())
    h = exc.value.response.headers
    assert int(h["retry-after"]) >= 1 and int(h["retry-after-ms"]) >= 1


def test_schedule_by_attempt_and_counters(sim) -> None:
    sim.configure(schedule=("voorbeeldzinnen=503@1", "synoniemen=500"))
    sim.reset_counters()
    try:
        with pytest.raises(openai.InternalServerError) as exc:
            asyncio.run(_call(sim.base_url, False, extra_headers={"x-sim-attempt": "1"}))
        assert exc.value.status_code == 503
        ok = asyncio.run(_call(sim.base_url, False, extra_headers={"x-sim-attempt": "2"}))
        assert ok.choices[0].finish_reason == "stop"
    finally:
        sim.configure(schedule=())
    c = sim.counters()
    assert c["faults"] == {"503": 1} and c["by_status"] == {"503": 1, "200": 1}


def test_sdk_retries_count_as_attempts() -> None:
    # The SDK resends the same headers on a retry but adds x-stainless-retry-count, which the simulator
    # adds to x-sim-attempt: a fault scheduled for attempt 1 fails once, and the SDK's retry succeeds.
    with running_simulator(time_scale=0.001, schedule=("*=429@1",)) as s:

        async def go():
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="sk-test", max_retries=1) as c:
                return await c.chat.completions.create(
                    model="m", messages=MSG, extra_headers={"x-sim-key": "r"}
                )

        assert asyncio.run(go()).choices[0].finish_reason == "stop"
        assert s.counters()["by_status"] == {"429": 1, "200": 1}


def test_random_fault_counts_by_kind() -> None:
    with running_simulator(time_scale=0.001, fault_rate=1.0, faults=("500",)) as s:
        with pytest.raises(openai.InternalServerError):
            asyncio.run(_call(s.base_url, False, extra_headers={"x-sim-key": "a"}))
        assert s.counters()["faults"] == {"500": 1}


def test_fault_rate_is_keyed_and_roughly_right() -> None:
    async def many(url):
        async with openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0, timeout=5) as c:

            async def one(i):
                try:
                    await c.chat.completions.create(
                        model="m", messages=MSG, extra_headers={"x-sim-key": f"k{i}"}
                    )
                    return True
                except openai.APIStatusError:
                    return False

            return await asyncio.gather(*(one(i) for i in range(200)))

    cfg = SimConfig(time_scale=0.001, fault_rate=0.3, faults=("500", "503"), seed=3)
    with running_simulator(cfg) as s:
        first = asyncio.run(many(s.base_url))
    with running_simulator(cfg) as s:
        second = asyncio.run(many(s.base_url))
    assert first == second  # the same keys fail on a fresh server
    assert 30 < first.count(False) < 90


def test_schedule_rule_parsing() -> None:
    r = FaultRule.parse("*=429@1,2")
    assert r.matches("synoniemen", 1) and r.matches("toelichting", 2) and not r.matches("synoniemen", 3)
    assert FaultRule.parse("synoniemen=503").matches("synoniemen", 7)
    for bad in ("synoniemen", "synoniemen=404", "x=503@a"):
        with pytest.raises(ValueError):
            FaultRule.parse(bad)
    with pytest.raises(ValueError):
        SimConfig(schedule=("synoniemen=teapot",))

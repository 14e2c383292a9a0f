"""The batch building blocks on their own: the limiter's window, AIMD's reactions, the output log's resume."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from voorbeelden.batch import AdaptiveConcurrency, OutputLog, RateLimiter, cache_key, read_results
from voorbeelden.batch.transport import estimate_tokens, parse_duration


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_limiter_grants_at_most_the_limit_in_any_sliding_window() -> None:
    async def run() -> list[float]:
        limiter = RateLimiter(rpm=20, period=0.2, margin=0.0, min_margin_s=0.0)
        grants: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            grants.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(70)))
        return grants

    grants = asyncio.run(run())
    assert _max_in_window(grants, 0.2 - 1e-6) <= 20
    # and it does not idle: 70 grants at 20 per 0.2 s take three full windows and a bit
    assert max(grants) - min(grants) < 0.2 * 3 + 0.1


def test_token_limit_counts_each_requests_tokens() -> None:
    async def run() -> list[float]:
        limiter = RateLimiter(tpm=1000, period=0.2, margin=0.0, min_margin_s=0.0)
        grants = []
        for _ in range(4):
            await limiter.acquire(tokens=400)
            grants.append(time.monotonic())
        return grants

    g = asyncio.run(run())
    assert g[1] - g[0] < 0.05  # 800 tokens fit in one window
    assert g[2] - g[0] >= 0.19  # the third waits for the first to age out


def test_aimd_grows_when_saturated_and_halves_once_per_round_trip_on_429() -> None:
    async def run() -> AdaptiveConcurrency:
        aimd = AdaptiveConcurrency(initial=4, max_limit=100, decrease=0.5)
        for _ in range(10):
            ticket = await aimd.acquire()
            aimd.sent()
            aimd.release(ticket, latency_s=0.01, saturated=True)
        assert aimd.limit == pytest.approx(14)
        tickets = [await aimd.acquire() for _ in range(5)]
        for t in tickets:  # five 429s from the same round trip: one decrease
            aimd.sent()
            aimd.release(t, throttled=True)
        return aimd

    aimd = asyncio.run(run())
    assert aimd.limit == pytest.approx(7)
    assert aimd.decreases == 1


def test_aimd_does_not_grow_a_limit_it_never_used() -> None:
    async def run() -> float:
        aimd = AdaptiveConcurrency(initial=4, max_limit=100)
        for _ in range(50):
            ticket = await aimd.acquire()
            aimd.sent()
            aimd.release(ticket, latency_s=0.01, saturated=False)
        return aimd.limit

    assert asyncio.run(run()) == 4


def test_aimd_backs_off_when_latency_climbs_for_the_same_kind_of_call() -> None:
    async def run() -> AdaptiveConcurrency:
        aimd = AdaptiveConcurrency(initial=10, max_limit=100)
        for latency in [0.1] * 20 + [0.5] * 20:
            ticket = await aimd.acquire()
            aimd.sent()
            aimd.release(ticket, latency_s=latency, saturated=False, kind="m/300")
        return aimd

    aimd = asyncio.run(run())
    assert aimd.limit < 10
    assert any(h.reason == "latency" for h in aimd.history)


def test_waiting_callers_get_slots_in_arrival_order() -> None:
    async def run() -> list[int]:
        aimd = AdaptiveConcurrency(initial=1, max_limit=1, adaptive=False)
        order: list[int] = []
        first = await aimd.acquire()

        async def waiter(i: int) -> None:
            t = await aimd.acquire()
            order.append(i)
            aimd.release(t, sent=False)

        tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
        await asyncio.sleep(0.01)
        aimd.release(first, sent=False)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(run()) == [0, 1, 2, 3, 4]


def test_output_log_cuts_a_torn_last_line_and_remembers_finished_keys(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(
        json.dumps({"key": "a", "status": "ok"}) + "\n" + json.dumps({"key": "b", "status": "failed"}) + "\n"
        '{"key": "c", "stat'
    )
    with OutputLog(path) as log:
        assert log.torn_bytes > 0
        assert not log.should_run("a")
        assert not log.should_run("b")
        assert log.should_run("b", retry_failed=True)
        assert log.should_run("c")
        log.append({"key": "b", "status": "ok"})
    lines = path.read_text().splitlines()
    # closing compacts: one line per key, the retried term's newer line kept
    assert [json.loads(ln)["key"] for ln in lines] == ["a", "b"]
    assert read_results(path)["b"]["status"] == "ok"  # the newer line supersedes


def test_cache_key_ignores_what_does_not_change_the_answer() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.2, "max_tokens": 9}
    assert cache_key(body) == cache_key({**body, "user": "someone", "stream_options": None, "seed": None})
    assert cache_key(body) != cache_key({**body, "temperature": 0.3})
    assert cache_key({**body, "stream": True}) is None


def test_token_estimate_and_reset_durations_match_the_api_formats() -> None:
    assert estimate_tokens({"messages": [{"content": "abcdefgh"}], "max_tokens": 10}) == 12
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("6m0s") == pytest.approx(360)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)

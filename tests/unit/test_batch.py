"""The batch building blocks on their own: AIMD's reactions, the output log's resume (the limiter: see
test_batch_limiter.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from voorbeelden.batch import AdaptiveConcurrency, OutputLog, cache_key, generate_many, read_results
from voorbeelden.batch.admission import Admission
from voorbeelden.http_headers import parse_duration
from voorbeelden.tokens import estimate_call_tokens


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


def test_admission_counts_the_calls_running_terms_still_owe_not_the_terms() -> None:
    async def run() -> None:
        admission = Admission(6, AdaptiveConcurrency(initial=4, max_limit=4))  # room below 4 + 6 calls
        first = admission.enter()
        assert admission.has_room()
        second = admission.enter()
        assert admission.outstanding == 12 and not admission.has_room()
        for status, hedge in [("ok", True), ("timeout", False)]:  # a backup or a failure: the part is owed
            first.on_record(SimpleNamespace(status=status, hedge=hedge))  # type: ignore[arg-type]
        assert not admission.has_room()
        for _ in range(3):
            first.on_record(SimpleNamespace(status="ok", hedge=False))  # type: ignore[arg-type]
        assert admission.outstanding == 9 and admission.has_room()
        await asyncio.wait_for(admission.wait(), 1)
        first.leave()
        second.leave()
        assert admission.outstanding == 0 and admission.active == 0

    asyncio.run(run())


def test_an_unknown_batch_setting_is_refused_before_anything_opens(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(TypeError, match="rmp"):
        asyncio.run(generate_many([{"begrip": "fiets"}], out=out, rmp=100))
    assert not out.exists()


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
        json.dumps({"key": "a", "@voorbeelden": "batch-result", "status": "ok"})
        + "\n"
        + json.dumps({"key": "b", "@voorbeelden": "batch-result", "status": "failed"})
        + "\n"
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
    assert estimate_call_tokens({"messages": [{"content": "abcdefgh"}], "max_tokens": 10}) == 12
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("6m0s") == pytest.approx(360)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)

"""Rate limits (429 with the real API's headers, honoured by the SDK), capacity queueing and run-time
configuration."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from voorbeelden.sim import running_simulator
from voorbeelden.sim.ratelimit import RateLimiter, TokenBucket, go_duration, retry_after_headers

MSG = [{"role": "user", "content": 'Geef precies 5 synoniemen voor het begrip "beschikking".'}]


def test_go_duration_format() -> None:
    assert [go_duration(s) for s in (0, 0.02, 0.0004, 1, 1.5, 360, 61.25, 3725)] == [
        "0s", "20ms", "1ms", "1s", "1.5s", "6m0s", "1m1.25s", "1h2m5s",
    ]  # fmt: skip
    assert retry_after_headers(0.0123) == {"retry-after": "1", "retry-after-ms": "13"}
    assert retry_after_headers(2.5)["retry-after"] == "3"


def test_token_bucket_refills_continuously() -> None:
    b = TokenBucket(60, 60.0)  # one per second
    now = b._t
    for _ in range(60):
        assert b.wait_for(1, now) == 0
        b.take(1, now)
    assert b.wait_for(1, now) == pytest.approx(1.0)
    assert b.wait_for(1, now + 0.5) == pytest.approx(0.5)
    assert b.wait_for(1, now + 1.0) == 0
    lim = RateLimiter(rpm=None, tpm=1000, time_scale=1.0)
    assert lim.check(600).allowed and not lim.check(600).allowed


def test_rpm_429_headers_and_window() -> None:
    # rpm=20 at time_scale 0.01: 20 requests per 0.6 real seconds.
    with running_simulator(time_scale=0.01, rpm=20, tpm=100_000) as s:

        async def go():
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="sk-test", max_retries=0) as c:
                # All at once: the bucket (20) empties long before it refills (one per 30 ms).
                res = await asyncio.gather(
                    *(
                        c.chat.completions.with_raw_response.create(model="m", messages=MSG)
                        for _ in range(30)
                    ),
                    return_exceptions=True,
                )
                errs = [r for r in res if isinstance(r, openai.RateLimitError)]
                oks = [r for r in res if not isinstance(r, BaseException)]
                assert len(errs) + len(oks) == 30
                return sorted(oks, key=lambda r: -int(r.headers["x-ratelimit-remaining-requests"])), errs

        oks, errs = asyncio.run(go())
        c = s.counters()
    assert len(errs) >= 5 and len(oks) >= 20
    h = errs[0].response.headers
    assert errs[0].status_code == 429 and errs[0].body["code"] == "rate_limit_exceeded"
    assert int(h["retry-after"]) >= 1 and 1 <= int(h["retry-after-ms"]) <= 600
    assert h["x-ratelimit-limit-requests"] == "20" and int(h["x-ratelimit-remaining-requests"]) <= 1
    assert h["x-ratelimit-reset-requests"].endswith("ms") and h["x-ratelimit-limit-tokens"] == "100000"
    ok_h = oks[0].headers
    assert ok_h["x-ratelimit-limit-requests"] == "20" and int(ok_h["x-ratelimit-remaining-requests"]) == 19
    assert c["sent_429"] == len(errs) == c["rate_limited"]
    # No 0.6 s sliding window ever holds more than the bucket size plus what refilled in it (20 + 20).
    times = c["accepted_times"]
    assert len(times) == len(oks)
    assert max(sum(1 for u in times if t <= u < t + 0.6) for t in times) <= 40


def test_tpm_limit_counts_max_tokens() -> None:
    with running_simulator(time_scale=0.01, tpm=1000) as s:

        async def go():
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="sk-test", max_retries=0) as c:
                await c.chat.completions.create(model="m", messages=MSG, max_tokens=900)
                with pytest.raises(openai.RateLimitError) as exc:
                    await c.chat.completions.create(model="m", messages=MSG, max_tokens=900)
                return exc.value.response.headers

        h = asyncio.run(go())
    assert h["x-ratelimit-limit-tokens"] == "1000" and int(h["x-ratelimit-remaining-tokens"]) < 900


def test_sdk_honours_retry_after_ms() -> None:
    # Drain the bucket, then the SDK (max_retries=1) must wait ~retry-after-ms and succeed.
    with running_simulator(time_scale=0.05, rpm=2) as s:  # refill: one request per 1.5 real seconds

        async def go():
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="sk-test", max_retries=0) as c0:
                await c0.chat.completions.create(model="m", messages=MSG)
                await c0.chat.completions.create(model="m", messages=MSG)
                with pytest.raises(openai.RateLimitError) as exc:
                    await c0.chat.completions.create(model="m", messages=MSG)
                wait_ms = int(exc.value.response.headers["retry-after-ms"])
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="sk-test", max_retries=1) as c1:
                t0 = time.perf_counter()
                r = await c1.chat.completions.create(model="m", messages=MSG)
                return wait_ms, time.perf_counter() - t0, r

        wait_ms, elapsed, r = asyncio.run(go())
        c = s.counters()
    assert r.choices[0].finish_reason == "stop"
    assert 500 < wait_ms <= 1500
    # The SDK slept for the remaining retry-after (a little less than wait_ms by now), not 0.5-8 s backoff.
    assert elapsed >= (wait_ms - 200) / 1000 and elapsed < wait_ms / 1000 + 1.0
    assert c["sent_429"] == 2 and c["by_status"]["200"] == 3


def test_capacity_queues_requests() -> None:
    with running_simulator(time_scale=0.02, capacity=2) as s:  # 2 s calls -> 40 ms each

        async def go():
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="sk-test", max_retries=0) as c:
                raws = await asyncio.gather(
                    *(c.chat.completions.with_raw_response.create(model="m", messages=MSG) for _ in range(6))
                )
                return [float(r.headers["x-sim-queue-ms"]) for r in raws]

        queue_ms = asyncio.run(go())
        c = s.counters()
        assert c["peak_in_flight"] == 2  # served two at a time...
        assert c["peak_open"] == 6 and c["peak_queued"] == 4  # ...while all six were in the server
        assert c["open"] == c["queued"] == c["in_flight"] == 0
        s.configure(capacity=None)
        s.reset_counters()
        assert asyncio.run(go()) == pytest.approx([0] * 6, abs=5)
    assert sorted(queue_ms)[-1] > 60  # the last pair waited for two rounds (~80 ms)
    assert sum(1 for q in queue_ms if q > 20) >= 3


def test_capacity_limits_concurrent_service() -> None:
    with running_simulator(time_scale=0.02, capacity=2) as s:

        async def go():
            async with openai.AsyncOpenAI(base_url=s.base_url, api_key="sk-test", max_retries=0) as c:
                t0 = time.perf_counter()
                await asyncio.gather(*(c.chat.completions.create(model="m", messages=MSG) for _ in range(6)))
                return time.perf_counter() - t0

        elapsed = asyncio.run(go())
    assert elapsed > 0.1  # three rounds of ~40 ms, not one


def test_configure_validates_and_changes_profile() -> None:
    with running_simulator(time_scale=0.001) as s:
        with pytest.raises(ValueError):
            s.configure(profile="nope")
        with pytest.raises(ValueError):
            s.configure(port=1234)
        new = s.configure(profile="definitie-app", time_scale=0.002, fault_rate=0.5, faults=["500"])
        assert new["profile"] == "definitie-app" and new["faults"] == ["500"]


def test_asking_for_fewer_items_costs_proportionally_fewer_output_tokens() -> None:
    """Splitting a long part into one-item calls must be able to shorten the slowest call."""
    import httpx2

    from voorbeelden.sim import SimConfig, running_simulator

    def ask(base: str, n: int) -> int:
        body = {
            "model": "m",
            "max_tokens": 4000,
            "messages": [
                {
                    "role": "user",
                    "content": f'Geef precies {n} praktijkvoorbeelden voor het begrip "besluit".',
                }
            ],
        }
        r = httpx2.post(f"{base}/chat/completions", json=body, headers={"x-sim-key": "same"}, timeout=10)
        return r.json()["usage"]["completion_tokens"]

    with running_simulator(SimConfig(profile="definitie-app", time_scale=0.001)) as sim:
        three, one = ask(sim.base_url, 3), ask(sim.base_url, 1)
    assert one < three / 2, (one, three)

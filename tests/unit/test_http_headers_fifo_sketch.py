"""Small shared pieces: one Retry-After / rate-limit header parser for the caller and the batch, one FIFO
semaphore for the simulator and the batch, and the fixed-memory percentile sketch of the batch summary."""

from __future__ import annotations

import asyncio
import math
import random

import httpx
import pytest

from voorbeelden import caller
from voorbeelden.batch.keyset import KeySet
from voorbeelden.batch.sketch import LogHistogram
from voorbeelden.fifo import FifoSemaphore
from voorbeelden.http_headers import RateLimitHeaders, parse_duration, parse_retry_after


def test_the_caller_and_the_batch_share_one_retry_after_parser() -> None:
    import voorbeelden.batch.limiter as limiter

    assert caller.parse_retry_after is parse_retry_after is limiter.parse_retry_after


def test_retry_after_reads_an_http_date_in_gmt_and_in_minus_zero() -> None:
    now = 1_700_000_000.0  # 2023-11-14 22:13:20 GMT
    assert parse_retry_after({"retry-after": "Tue, 14 Nov 2023 22:13:50 GMT"}, now=now) == pytest.approx(30)
    assert parse_retry_after({"retry-after": "Tue, 14 Nov 2023 22:13:50 -0000"}, now=now) == pytest.approx(30)
    assert parse_retry_after({"retry-after": "Tue, 14 Nov 2023 22:13:00 GMT"}, now=now) == 0.0
    assert parse_retry_after(httpx.Headers({"Retry-After-Ms": "20"})) == pytest.approx(0.02)  # any case


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20ms", 0.02), ("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("1.5", 1.5), ("250us", 0.00025)],
)
def test_reset_durations_in_go_format(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "5 minutes", "-1s", "1x"])
def test_unreadable_durations_are_none(text: str | None) -> None:
    assert parse_duration(text) is None


def test_rate_limit_headers_need_all_three_fields_of_a_dimension() -> None:
    full = {
        "x-ratelimit-limit-requests": "30",
        "x-ratelimit-remaining-requests": "29",
        "x-ratelimit-reset-requests": "100ms",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "400",
    }
    parsed = RateLimitHeaders.parse(full)
    assert parsed is not None and parsed.tokens is None
    assert parsed.requests is not None and (parsed.requests.limit, parsed.requests.remaining) == (30, 29)
    assert parsed.requests.reset_s == pytest.approx(0.1)
    assert RateLimitHeaders.parse({"content-type": "application/json"}) is None


def test_fifo_semaphore_serves_in_order_resizes_and_survives_a_cancelled_waiter() -> None:
    async def run() -> tuple[list[int], int, int]:
        sem = FifoSemaphore(1)
        await sem.acquire()
        order: list[int] = []

        async def waiter(i: int) -> None:
            await sem.acquire()
            order.append(i)
            await asyncio.sleep(0)
            sem.release()

        tasks = [asyncio.create_task(waiter(i)) for i in range(4)]
        await asyncio.sleep(0.01)
        tasks[1].cancel()  # a waiter that gives up must not hold or lose a slot
        await asyncio.sleep(0.01)
        waiting = sem.waiting
        sem.set_capacity(2)  # a larger size wakes waiters at once
        sem.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order, waiting, sem.active

    order, waiting, active = asyncio.run(run())
    assert waiting == 3 and order == [0, 2, 3] and active == 0


def test_log_histogram_quantiles_are_within_one_percent_in_fixed_memory() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(0.0, 1.0) for _ in range(20_000)]
    h = LogHistogram()
    for v in values:
        h.add(v)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert h.quantile(q) == pytest.approx(exact, rel=0.01)
    assert len(h._bins) < 2_000 and h.count == 20_000
    assert LogHistogram().quantile(0.95) is None


def test_key_set_remembers_every_key_across_merges_and_nothing_else() -> None:
    keys = [f"{i:032x}" for i in range(0, 30_000, 3)]
    seen = KeySet()
    for k in keys:
        seen.add(k)
    seen.add(keys[0])  # adding twice keeps one
    assert len(seen) == len(keys) and len(seen._tail) < len(keys)  # most are in the sorted arrays
    assert all(k in seen for k in keys)
    assert not any(f"{i:032x}" in seen for i in range(1, 30_000, 3))
    assert "line-abc" not in seen and 5 not in seen

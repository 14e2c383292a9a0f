"""The batch limiter follows the endpoint's budget: a full bucket at the start, then the refill; the headers
correct a wrong or missing estimate; 429'd attempts cost nothing unless the server says they did; a limit the
headers do not describe (a quantized window) makes it pace instead of burst.

The closed-loop tests drive the client limiter against the simulator's own limiter object in-process (the same
code that answers HTTP requests), so they exercise the real header formats without a server or a network.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from voorbeelden.batch import RateLimiter
from voorbeelden.sim.ratelimit import RateLimiter as ServerLimiter

T = TypeVar("T")


class _VirtualSelector:
    """A selector that never sleeps: a wait for ``timeout`` seconds with nothing ready moves the loop's
    virtual clock on by ``timeout`` instead."""

    def __init__(self, loop: _VirtualLoop) -> None:
        self._inner, self._loop = selectors.DefaultSelector(), loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._inner.select(0)
        if not events and timeout:
            self._loop.now += timeout
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a fake clock: timers fire in order at once, so timing assertions are exact however
    loaded the machine is (a real clock made the quantized test fail with 16 rejections on 2 busy cores)."""

    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(selector=_VirtualSelector(self))  # type: ignore[arg-type]

    def time(self) -> float:
        return self.now


def _run_virtual(make: Callable[[Callable[[], float]], Awaitable[T]]) -> T:
    """Run ``make(clock)`` on a virtual-time loop; ``clock`` is that loop's time (for the limiters)."""
    loop = _VirtualLoop()
    try:
        return loop.run_until_complete(make(loop.time))
    finally:
        loop.close()


def _headers(limit: float, remaining: float, reset: str) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": f"{limit:g}",
        "x-ratelimit-remaining-requests": f"{remaining:g}",
        "x-ratelimit-reset-requests": reset,
    }


def test_a_told_limit_spends_the_full_bucket_at_once_then_the_refill() -> None:
    async def run() -> list[float]:
        # 20 at once, then 100 per second (no cushion, so the arithmetic is exact)
        limiter = RateLimiter(rpm=20, period=0.2, cushion_s=0.0)
        t0 = time.monotonic()
        grants = []
        for _ in range(70):
            await limiter.acquire()
            grants.append(time.monotonic() - t0)
        return grants

    g = asyncio.run(run())
    assert g[19] < 0.02  # the whole bucket without waiting (a sliding window of our own would also allow it)
    assert 0.48 < g[-1] < 0.6  # then 50 more at the refill rate: 0.5 s, not the 1.4 s of whole windows
    # never more than the bucket plus its refill (the server's own rule), allowing timer granularity
    assert all(i + 1 <= 20 + 100 * t + 1 for i, t in enumerate(g))


def test_tokens_are_a_second_bucket_charged_by_each_requests_estimate() -> None:
    async def run() -> list[float]:
        limiter = RateLimiter(tpm=1000, period=0.2)  # 1000 tokens at once, then 5000 per second
        t0 = time.monotonic()
        out = []
        for _ in range(3):
            await limiter.acquire(tokens=400)
            out.append(time.monotonic() - t0)
        return out

    g = asyncio.run(run())
    assert g[1] < 0.01  # 800 of 1000 tokens: no wait
    assert 0.035 < g[2] < 0.08  # the third needs 200 more tokens: 40 ms of refill


def test_the_headers_replace_a_wrong_estimate_and_replay_later_sends() -> None:
    async def run() -> tuple[float, float]:
        limiter = RateLimiter(rpm=600, period=3.0, cushion_s=0.0)  # told 20x too much
        first = await limiter.acquire()
        for _ in range(4):
            await limiter.acquire()  # sent after `first`; the server had not counted them when it answered
        # The server's answer to `first`: 30 per 3 s, 29 left, full again in 0.1 s.
        limiter.observe(first, 200, _headers(30, 29, "100ms"))
        room = limiter.headroom_calls(0)
        t0 = time.monotonic()
        for _ in range(int(room)):
            await limiter.acquire()
        burst_s = time.monotonic() - t0
        await limiter.acquire()  # the bucket is now empty: one more takes a refill interval (0.1 s)
        return room, time.monotonic() - t0 - burst_s

    room, wait = asyncio.run(run())
    assert 24 <= room < 26  # 29 - the 4 later sends (+ a little refill)
    assert 0.07 < wait < 0.2


def test_an_older_answer_does_not_overwrite_a_newer_one() -> None:
    async def run() -> float:
        limiter = RateLimiter()
        old = await limiter.acquire()
        new = await limiter.acquire()
        old.sent()
        new.sent()
        limiter.observe(new, 200, _headers(100, 10, "54s"))
        limiter.observe(old, 200, _headers(100, 90, "6s"))  # a slow call's answer, arriving late
        return limiter.headroom_calls(0)

    assert asyncio.run(run()) == pytest.approx(10, abs=0.5)


def test_a_429_without_headers_is_not_counted_against_the_budget() -> None:
    async def run() -> tuple[float, float]:
        limiter = RateLimiter(rpm=2, period=60.0)
        await limiter.acquire()
        rejected = await limiter.acquire()
        before = limiter.headroom_calls(0)
        limiter.observe(rejected, 429, {})  # no headers, no retry-after: nothing says it was charged
        return before, limiter.headroom_calls(0)

    before, after = asyncio.run(run())
    assert before == pytest.approx(0, abs=0.01) and after == pytest.approx(1, abs=0.01)


def test_a_429_the_headers_do_not_explain_makes_it_pace_instead_of_burst() -> None:
    async def run() -> tuple[int, float]:
        limiter = RateLimiter(rpm=60, period=1.0)
        grants = [await limiter.acquire() for _ in range(10)]
        for g in grants[1:]:  # the headers say 50 are left, yet the server refused: a shorter window
            limiter.observe(g, 429, {**_headers(60, 50, "166ms"), "retry-after-ms": "1"})
        t0 = time.monotonic()
        for _ in range(3):
            await limiter.acquire()
        return limiter.unexplained_429, time.monotonic() - t0

    unexplained, paced = asyncio.run(run())
    assert unexplained == 9
    assert paced >= 2 / 60 * 0.9  # one request per 1/60 s now, although the bucket holds 50


async def _closed_loop(
    client: RateLimiter, server: ServerLimiter, n: int, clock: Callable[[], float] = time.monotonic
) -> tuple[int, float]:
    """Send until ``n`` requests were accepted (each answered at once); returns the 429s and the wall time."""
    ok = rejected = 0
    t0 = clock()
    while ok < n:
        grant = await client.acquire()
        decision = server.check(0.0, now=clock())
        status = 200 if decision.allowed else 429
        headers = dict(decision.headers)
        if not decision.allowed:
            headers["retry-after-ms"] = str(max(1, round(decision.retry_after_s * 1000)))
        client.observe(grant, status, headers)
        ok += decision.allowed
        rejected += not decision.allowed
    return rejected, clock() - t0


@pytest.mark.parametrize("charge", [False, True])
def test_told_nothing_it_learns_the_bucket_from_the_headers_and_uses_it(charge: bool) -> None:
    # 30 per 0.6 s (rpm 30 at time_scale 0.01): 30 at once, then 50 per second.
    server = ServerLimiter(30, None, 0.01, charge_rejected=charge)
    client = RateLimiter(period=0.6)  # the server's minute (it only tells a bucket from a short window)
    rejected, wall = asyncio.run(_closed_loop(client, server, 130))
    assert rejected <= 2
    assert wall < (130 - 30) / 50 * 1.08  # at least ~93% of the limit, learnt from the headers alone
    believed = client.describe()["believed_requests"]
    assert believed["limit"] == 30 and believed["per_s"] == pytest.approx(50, rel=0.02)  # type: ignore[index]


def _server_and_client(mode: str, clock: Callable[[], float]) -> tuple[ServerLimiter, RateLimiter]:
    # rpm 60 at time_scale 0.02 with a 1 s quantum: one request per 20 ms window, although the bucket holds 60.
    server = ServerLimiter(60, None, 0.02, mode=mode, quantum_s=1.0)
    server.dims[0].bucket._t = clock()  # the server's clock is the loop's virtual one
    server.dims[0].window.t0 = clock()  # type: ignore[union-attr]
    return server, RateLimiter(rpm=60, period=1.2, clock=clock)


def test_a_quantized_window_is_learnt_from_the_429s_and_then_respected() -> None:
    """On a virtual clock (deterministic: timers fire exactly when due, however loaded the machine)."""

    async def run(clock: Callable[[], float]) -> tuple[int, float, RateLimiter]:
        server, client = _server_and_client("quantized", clock)
        return (*await _closed_loop(client, server, 100, clock), client)

    rejected, wall, client = _run_virtual(run)
    assert rejected <= 3  # the first burst learns that bursts fail; from then on one at a time
    assert wall < 100 * 0.02 * 1.05  # and the windows are used: at least 95% of them
    assert client.describe()["believed_requests"]["burst"] == 1  # type: ignore[index]


def test_headers_that_count_a_short_window_are_read_as_that_window() -> None:
    """The short-window endpoint: remaining/reset count the 20 ms window (1 request), limit names the minute
    (60). Read as a per-minute bucket those headers refill 60 times too fast; read as the window, the client
    uses >= 95% of the limit with a handful of 429s."""

    async def run(clock: Callable[[], float]) -> tuple[int, float, RateLimiter]:
        server, client = _server_and_client("short-window", clock)
        return (*await _closed_loop(client, server, 100, clock), client)

    rejected, wall, client = _run_virtual(run)
    assert rejected <= 3
    assert wall < 100 * 0.02 * 1.05
    believed = client.describe()["believed_requests"]
    assert believed["per_s"] == pytest.approx(50, rel=0.01)  # type: ignore[index]


def test_a_nearly_full_bucket_is_not_taken_for_a_short_window() -> None:
    """remaining = limit - 1 with a tiny reset is what an honest bucket says after one request: no window."""
    from voorbeelden.batch.limiter import _Budget
    from voorbeelden.http_headers import DimensionBudget

    b = _Budget(600.0, 60.0, cushion_s=0.0, now=0.0)
    assert not b.short_window(DimensionBudget(600, 599, 0.001))
    assert not b.short_window(DimensionBudget(600, 10, 59.0))  # a bucket spent down: reset ~ 59 s
    assert b.short_window(DimensionBudget(600, 7, 0.3))  # 7 left of 600 yet full in 300 ms: a window


def test_told_nothing_it_believes_the_period_the_tight_bound_gives_not_the_slow_end() -> None:
    """A bucket of 30 per 3 s (10/s). Answers taken from a full bucket say "remaining 29, full again in
    100ms": the period is at least 3 s. One answer after two quick requests ("28 left, full in 170ms") only
    says it is at most 5.1 s. Taking that slow end paced a client told nothing at 59% of the limit."""

    async def run() -> float | None:
        limiter = RateLimiter(
            period=3.0
        )  # told no limit (the period only tells a bucket from a short window)
        for remaining, reset in ((29, "100ms"), (28, "170ms"), (29, "100ms")):
            grant = await limiter.acquire()
            limiter.observe(grant, 200, _headers(30, remaining, reset))
        return limiter.calls_per_s(0.0)

    rate = asyncio.run(run())
    assert rate is not None and 9.9 <= rate <= 10.1, rate


def test_while_pacing_a_late_wake_up_is_made_up_by_the_next_request_and_idle_time_is_not() -> None:
    """10 requests/s, one at a time. A request due at 0.1 s that the loop wakes at 0.13 s leaves the next one
    due at 0.2 s (made up), not 0.23 s: otherwise every late wake-up is lost for good (3% of the limit at
    10/s in bench ratelimit setting b). After idle time nothing is owed: the next one waits a whole interval."""
    from voorbeelden.batch.limiter import _Budget

    b = _Budget(30.0, 3.0, cushion_s=0.0, now=0.0)
    b.stop_bursts()
    b.take(1.0, 0.0, 1)  # sent at 0; the next is due at 0.1
    assert b.wait_for(1.0, 0.0) == pytest.approx(0.1, abs=0.003)
    b.advance(0.13)  # woken 30 ms late: the bucket's cap has thrown those 30 ms of refill away
    b.credit_lateness(0.03)
    b.take(1.0, 0.13, 2)
    assert b.wait_for(1.0, 0.13) == pytest.approx(0.07, abs=0.003)  # due at 0.2, as if it had left on time
    b.take(1.0, 0.2, 3)
    b.advance(5.0)  # idle: no lateness to credit, so no burst after it
    b.take(1.0, 5.0, 4)
    assert b.wait_for(1.0, 5.0) == pytest.approx(0.1, abs=0.003)


def test_a_reset_header_of_years_is_capped_like_retry_after_and_the_wait_is_announced() -> None:
    """``remaining 0, reset 999999h``: 2 of 30 terms after 150 s, without a word. Now the wait is at most
    MAX_PAUSE_S and stderr (``on_wait``) says what it waits for and until when."""
    from voorbeelden.batch.limiter import MAX_PAUSE_S

    said: list[str] = []

    async def run(clock: Callable[[], float]) -> float:
        limiter = RateLimiter(rpm=10, period=60.0, clock=clock, on_wait=said.append)
        grant = await limiter.acquire()
        limiter.observe(grant, 200, _headers(10, 0, "999999h"))  # 10/min: the next one in 6 s
        t0 = clock()
        await limiter.acquire()
        return clock() - t0

    waited = _run_virtual(run)
    assert 5 < waited <= MAX_PAUSE_S + 0.1
    assert len(said) == 1 and said[0].startswith(f"waiting {waited:.0f} s (until ")
    assert "requests budget" in said[0]


def test_a_429_asking_for_a_day_pauses_at_most_the_cap_and_says_so() -> None:
    from voorbeelden.batch.limiter import MAX_PAUSE_S

    said: list[str] = []

    async def run(clock: Callable[[], float]) -> float:
        limiter = RateLimiter(clock=clock, on_wait=said.append)
        grant = await limiter.acquire()
        limiter.observe(grant, 429, {"retry-after": "86400"})
        t0 = clock()
        await limiter.acquire()
        return clock() - t0

    assert _run_virtual(run) == pytest.approx(MAX_PAUSE_S, abs=0.01)
    assert "a 429 that asked to retry after 86400 s, capped at 60 s" in said[0]

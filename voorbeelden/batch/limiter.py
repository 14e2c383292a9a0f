"""A requests-per-window and tokens-per-window limiter that holds in *every* sliding window.

aiolimiter's leaky bucket (our style model) lets a full burst through and then keeps draining, so a window
that straddles the burst can see almost twice the limit; an endpoint that counts a sliding window (or a
bucket whose burst was spent just before) answers that with 429s. Keeping a log of what was granted in the
last window and waiting until the oldest entries age out costs one deque per dimension and makes the
guarantee exact on the client side.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["Grant", "RateLimiter"]


class _Window:
    """The grants of the last ``period`` seconds for one dimension (requests or tokens)."""

    __slots__ = ("capacity", "log", "total")

    def __init__(self, capacity: float) -> None:
        self.capacity = float(capacity)
        self.log: deque[list[float]] = deque()  # [time, amount], oldest first, times never decrease
        self.total = 0.0

    def expire(self, cutoff: float) -> None:
        while self.log and self.log[0][0] <= cutoff:
            self.total -= self.log.popleft()[1]

    def wait_for(self, amount: float, now: float, period: float) -> float:
        """Seconds until ``amount`` fits; an amount above capacity waits for an empty window."""
        amount = min(amount, self.capacity)
        self.expire(now - period)
        excess = self.total + amount - self.capacity
        if excess <= 1e-9:
            return 0.0
        freed = 0.0
        for t, a in self.log:
            freed += a
            if freed >= excess - 1e-9:
                return max(0.0, t + period - now)
        return period  # unreachable while amount <= capacity; kept as a safe upper bound

    def take(self, amount: float, now: float) -> list[float]:
        entry = [now, min(amount, self.capacity)]
        self.log.append(entry)
        self.total += entry[1]
        return entry

    def restamp(self, entry: list[float], t: float) -> None:
        """Move an entry to its real send time; later entries move along so times stay ordered."""
        old = entry[0]
        if t <= old:
            return
        for item in reversed(self.log):
            if item is entry:
                entry[0] = t
                return
            if item[0] < old:
                return  # the entry has already aged out
            if item[0] < t:
                item[0] = t


class RateLimiter:
    """At most ``rpm`` requests and ``tpm`` tokens in any window of ``period`` seconds, shared by all callers.

        limiter = RateLimiter(rpm=500, tpm=200_000)
        await limiter.acquire(tokens=estimate)   # then send at once: the grant time is the send time

    :param rpm: requests allowed per ``period`` (None: unlimited).
    :param tpm: tokens allowed per ``period`` (None: unlimited); callers pass their estimate per request.
    :param period: window length in seconds; 60 for per-minute limits, ``60 * time_scale`` for the simulator.
    :param margin: extra fraction of ``period`` added to the window, so that a request granted at the end of
        one window still arrives after the matching one from the previous window has aged out at the server
        despite network jitter. 1% keeps 99% of the limit usable.
    :param min_margin_s: the margin's floor in seconds. A busy server stamps an arrival a few to tens of
        milliseconds late (measured against the simulator), which matters when a window is under a second
        (the simulator at a small ``time_scale``).
    :param burst: grants are spaced at least ``period / (rpm * burst)`` apart, so a full window's worth is
        spread over a quarter window instead of leaving in one burst. A burst is sent one request after
        another by one event loop, so its last request reaches the server later than its grant time says,
        and a sliding window counted at the server would then see more than the limit.

    Waiters are served first come, first served (an :class:`asyncio.Lock` queues them), so a large token
    request is not starved by a stream of small ones. :meth:`pause_until` lets a 429's ``retry-after`` or an
    ``x-ratelimit-remaining-*: 0`` header hold everyone back, whatever the configured limits say.
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        period: float = 60.0,
        margin: float = 0.01,
        min_margin_s: float = 0.03,
        burst: float = 4.0,
    ) -> None:
        if period <= 0:
            raise ValueError("period must be > 0 seconds")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or None for no limit)")
        self.rpm, self.tpm, self.period = rpm, tpm, period
        self.margin, self.min_margin_s = margin, min_margin_s
        self._requests = _Window(rpm) if rpm else None
        self._tokens = _Window(tpm) if tpm else None
        self._lock = asyncio.Lock()
        self._paused_until = 0.0
        self._min_interval = self.window / (rpm * burst) if rpm and burst > 0 else 0.0
        self._last_grant = -1e18
        self.granted = 0
        self.tokens_granted = 0.0
        self.waited_s = 0.0

    @property
    def window(self) -> float:
        return self.period + max(self.period * self.margin, self.min_margin_s)

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def calls_per_s(self, tokens_per_call: float) -> float | None:
        """The steady rate the limits allow for calls of this size (None: unlimited); used to size concurrency."""
        rates = []
        if self.rpm:
            rates.append(self.rpm / self.window)
        if self.tpm and tokens_per_call > 0:
            rates.append(self.tpm / self.window / min(tokens_per_call, self.tpm))
        return min(rates) if rates else None

    def pause_until(self, t_monotonic: float) -> None:
        """Hold every grant until this time (never shortens an existing pause)."""
        self._paused_until = max(self._paused_until, t_monotonic)

    def _wait(self, tokens: float, now: float) -> float:
        wait = max(self._paused_until, self._last_grant + self._min_interval) - now
        if self._requests is not None:
            wait = max(wait, self._requests.wait_for(1, now, self.window))
        if self._tokens is not None:
            wait = max(wait, self._tokens.wait_for(tokens, now, self.window))
        return wait

    async def acquire(self, tokens: float = 0.0) -> Grant:
        """Wait until one request of ``tokens`` fits in every window and record it at the current time.

        Call ``grant.sent()`` when the request has really left (the gate does, from the HTTP client's
        headers-sent event): a first request on a new connection, or one delayed by a busy event loop,
        leaves tens of milliseconds after its grant, and the server counts it from when it arrives.
        """
        start = time.monotonic()
        if not self.active and self._paused_until <= start:
            self.granted += 1
            return Grant(self, 0.0, ())
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self._wait(tokens, now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._last_grant = now
            entries = []
            if self._requests is not None:
                entries.append((self._requests, self._requests.take(1, now)))
            if self._tokens is not None:
                entries.append((self._tokens, self._tokens.take(tokens, now)))
        self.granted += 1
        self.tokens_granted += tokens
        waited = now - start
        self.waited_s += waited
        return Grant(self, waited, tuple(entries))


class Grant:
    """One granted request: how long it waited, and a way to move its window entries to the real send time."""

    __slots__ = ("_entries", "_limiter", "waited")

    def __init__(
        self, limiter: RateLimiter, waited: float, entries: tuple[tuple[_Window, list[float]], ...]
    ) -> None:
        self._limiter, self.waited, self._entries = limiter, waited, entries

    def sent(self, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        for window, entry in self._entries:
            window.restamp(entry, t)

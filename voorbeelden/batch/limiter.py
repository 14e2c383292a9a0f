"""The endpoint's rate-limit budget as the client believes it, corrected by every answer's headers.

    limiter = RateLimiter(rpm=500, period=60)      # or RateLimiter() to learn everything from the headers
    grant = await limiter.acquire(tokens=estimate)  # waits until the believed budget has room; send at once
    grant.sent()                                    # when the request has really left
    limiter.observe(grant, response.status_code, response.headers)

Why a model of the server and not a window of our own: OpenAI's limits (and the simulator's default) are
buckets that hold a minute's allowance, start full and refill continuously. A client that counts its own
sends in a sliding window admits at most ``rpm`` per minute, so it idles while the server would take a
full bucket at the start and then the refill; and one that counts its own 429'd attempts spends budget the
server never charged. Here each dimension (requests, tokens) is a bucket that starts as the configured
estimate (full), and every response re-anchors it: ``x-ratelimit-remaining-*`` says what the server held
after counting that request, ``x-ratelimit-reset-*`` how long until it is full again (hence the refill rate
and, when the server is in debt, how deep), ``x-ratelimit-limit-*`` its size. Sends made after the anchored
request are replayed on top, so answers that return late (a 2 s call) still give a current picture; an
answer older than the last anchor is ignored.

A 429 whose own headers show room in every dimension means a limit the headers do not describe (OpenAI
enforces per-minute limits "over shorter periods"): from then on the client sends no burst, one request at
a time at the refill rate, which loses nothing in steady state (the rate is the same) and only the catch-up
after an idle spell. (Halving the burst per 429 took six rounds of 429s from a bucket of 60, and a call that
meets three of them fails.) A 429 pauses every sender for its ``retry-after``. Without headers a 429'd
attempt is refunded (nothing says the server charged it).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from voorbeelden.http_headers import DimensionBudget, RateLimitHeaders, parse_retry_after

__all__ = ["Grant", "RateLimiter"]

MAX_PAUSE_S = 120.0  # the openai SDK's own ceiling for honouring retry-after
_LOG_LIMIT = 8192  # sends kept for replay; more than any in-flight count the gate allows
_BURST_SLACK_S = 0.002
_SILENT_LIMIT = 256  # answers without a dimension's headers before its replay log is no longer kept


class _Budget:
    """One dimension of the endpoint's budget: a bucket of ``capacity`` refilling over ``period`` seconds.

    ``capacity`` None means unknown (no limit until headers describe one). ``burst`` caps how much of the
    bucket may leave at once (learnt from 429s the bucket cannot explain); it is a second bucket of that
    size (plus the cushion) with the same rate.
    """

    __slots__ = (
        "_period_hi",
        "_period_lo",
        "anchor_t",
        "burst",
        "burst_level",
        "capacity",
        "cushion_s",
        "learned",
        "level",
        "log",
        "period",
        "prior_period",
        "silent",
        "t",
    )

    def __init__(self, capacity: float | None, period: float | None, cushion_s: float, now: float) -> None:
        self.capacity, self.period, self.cushion_s = capacity, period, cushion_s
        self.prior_period = period
        self.level = self.burst_level = capacity or 0.0
        self.burst = capacity
        self.t = now
        # [t_sent, amount, seq, sent?, taken from a full bucket?] of every send the server may not have
        # counted at the last anchor
        self.log: deque[list[float]] = deque(maxlen=_LOG_LIMIT)
        self.anchor_t = -math.inf
        self.learned = False
        self.silent = 0  # answers in a row without headers for this dimension
        self._period_lo, self._period_hi = 0.0, math.inf

    @property
    def known(self) -> bool:
        return bool(self.capacity and self.period)

    @property
    def rate(self) -> float:
        """Refill per second (0 while unknown)."""
        return self.capacity / self.period if self.capacity and self.period else 0.0

    @property
    def pacing(self) -> bool:
        """True when a burst cap below the bucket's size is in force."""
        return self.burst is not None and self.capacity is not None and self.burst < self.capacity

    def _burst_cap(self) -> float:
        # The slack lets a send that left a little late (a timer fires late) be made up by the next one,
        # but only by a little: two sends closer than one interval may share the server's short window.
        return (self.burst or 0.0) + self.rate * _BURST_SLACK_S

    def advance(self, now: float) -> None:
        if self.known and now > self.t:
            assert self.capacity is not None
            gain = (now - self.t) * self.rate
            self.level = min(self.capacity, self.level + gain)
            self.burst_level = min(self._burst_cap(), self.burst_level + gain)
        self.t = max(self.t, now)

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits, keeping ``cushion_s`` worth of refill in hand against arrival jitter
        (a constant offset, so it costs no throughput); an amount above the capacity waits for a full bucket."""
        if not self.known:
            return 0.0
        assert self.capacity is not None
        self.advance(now)
        rate = self.rate
        amount = min(amount, self.capacity)
        wait = (min(amount + rate * self.cushion_s, self.capacity) - self.level) / rate
        if self.pacing:
            assert self.burst is not None
            slack = rate * _BURST_SLACK_S
            wait = max(wait, (min(amount, self.burst) + slack - self.burst_level) / rate)
        return max(0.0, wait)

    def take(self, amount: float, now: float, seq: int) -> list[float]:
        self.advance(now)
        full = self.known and self.capacity is not None and self.level >= self.capacity - 1e-9
        if self.capacity:
            amount = min(amount, self.capacity)
        self.level -= amount
        self.burst_level -= amount
        entry = [now, amount, float(seq), 0.0, 1.0 if full else 0.0]
        if self.silent < _SILENT_LIMIT:  # an endpoint that never describes this dimension needs no replay log
            self.log.append(entry)
        return entry

    def restamp(self, entry: list[float], t: float) -> None:
        """The request left at ``t``, not when it was granted. Taken from a full bucket, that matters: the
        server's bucket stayed full (its refill wasted) until the request arrived, while the model has been
        refilling since the grant; take that refill back."""
        if t <= entry[0]:
            return
        if entry[4] and self.known:
            self.advance(t)
            lost = self.rate * (t - entry[0])
            self.level -= lost
            self.burst_level -= lost
        entry[0] = t

    def refund(self, entry: list[float]) -> None:
        """Give back a send the server did not count (its 429 carried no headers to say otherwise)."""
        if entry[1] and (entry[0] > self.anchor_t or not entry[3]):
            self.level = min(self.capacity or math.inf, self.level + entry[1])
            self.burst_level += entry[1]
            entry[1] = 0.0

    def anchor(self, entry: list[float], budget: DimensionBudget, now: float) -> bool:
        """Set the bucket from the headers of the request ``entry``; False if a newer answer already did."""
        t_anchor = entry[0]  # when that request left (the server counted it on arrival, a little later)
        if t_anchor < self.anchor_t:
            return False
        self.advance(now)  # bring the burst bucket up to now before the main level is replaced
        was_known = self.known
        limit, remaining, reset = budget.limit, budget.remaining, budget.reset_s
        if limit != self.capacity:
            shrunk = self.pacing
            self.capacity = limit
            self.burst = min(self.burst or limit, limit) if shrunk else limit
        self._learn_period(limit, remaining, reset)
        rate = self.rate
        # remaining is floor(level): the level is in [R, R + 1). At R = 0 it may also be a debt (rejected
        # requests charged), which only the reset time shows: full again after reset => level = C - rate*reset.
        level = remaining if remaining >= 1 else min(0.0, limit - rate * reset)
        # Replay what the server had not counted: sends that left after this one, and grants not yet sent.
        # Grant order is not send order (a new connection, a busy loop), so this goes by send time; a send
        # that left just after but arrived just before is counted twice, which errs on the safe side.
        later = sorted(
            (e for e in self.log if e is not entry and (e[0] > t_anchor or not e[3])), key=lambda e: e[0]
        )
        t = t_anchor
        for t_i, amount, *_ in later:
            level = min(limit, level + rate * max(0.0, t_i - t)) - amount
            t = max(t, t_i)
        self.level = min(limit, level + rate * max(0.0, now - t))
        self.t = max(now, t)
        # The burst bucket cannot hold more than the bucket; while nothing was known it was not kept at all.
        self.burst_level = min(self.burst_level if was_known else math.inf, self.level, self._burst_cap())
        self.log = deque((e for e in self.log if e[0] > t_anchor or not e[3]), maxlen=_LOG_LIMIT)
        self.anchor_t = t_anchor
        self.learned = True
        self.silent = 0
        return True

    def unanswered(self) -> None:
        """An answer without headers for this dimension; after many in a row the replay log is dropped."""
        self.silent += 1
        if self.silent == _SILENT_LIMIT:
            self.log.clear()

    def _learn_period(self, limit: float, remaining: float, reset: float) -> None:
        # The server refills `limit` per period, so it is full again after reset = (limit - level) * period /
        # limit, with level in [R, R + 1) (R = remaining, a floor) and reset rounded to the millisecond.
        # Each answer with R >= 1 therefore bounds the period from both sides; intersecting the bounds pins
        # it down within a few answers. Within the bounds the configured period (a minute) is kept; without
        # one the lower bound is taken. It is the tight one: a request taken from a full bucket (the steady
        # state of a client paced at the refill) reports exactly one refill interval as its reset, so the
        # lower bound is the period within the header's millisecond, while the upper bound needs an answer
        # that happens to arrive just before a refill and can stay far off. (The slow end, taken before,
        # paced a client told nothing 16-46% below the limit once one answer had shown two requests in a
        # refill interval: `voorbeelden bench ratelimit --settings b --modes quantized`.) A period believed a
        # hair short costs an occasional 429, which re-anchors the budget and pauses for its retry-after.
        # R = 0 may hide a debt (charged rejections), so such an answer only gives a guess while no bound
        # exists. Bounds that contradict each other (the limit changed) restart.
        if reset <= 0 or limit - remaining < 1:
            return
        if remaining >= 1:
            lo = max(0.0, reset - 0.0005) * limit / (limit - remaining)
            hi = (reset + 0.0005) * limit / (limit - remaining - 1) if limit - remaining > 1 else math.inf
            if lo > self._period_hi or hi < self._period_lo:
                self._period_lo, self._period_hi = lo, hi
            else:
                self._period_lo, self._period_hi = max(lo, self._period_lo), min(hi, self._period_hi)
        lo, hi = self._period_lo, self._period_hi
        if lo > 0:
            if self.prior_period is not None:
                self.period = min(max(self.prior_period, lo), hi)
            else:
                self.period = lo
        elif self.period is None:
            self.period = reset * limit / (limit - 0.5)

    def credit_lateness(self, late_s: float) -> None:
        """A waiting request was granted ``late_s`` after it was due (the loop woke it late). While pacing,
        give that refill back, which the bucket's cap would otherwise have thrown away: the next request is
        then due one interval after this one was *due*, not after it woke, so wake-up delays do not add up
        over a long run (they cost 3% of the limit at 10 requests/s). Only lateness is credited, never idle
        time, and at most half an interval, so no two requests leave closer than half an interval apart."""
        if self.pacing and late_s > 0:
            self.burst_level += min(late_s * self.rate, 0.5)

    def stop_bursts(self) -> None:
        if self.capacity is not None:
            self.burst = 1.0
            self.burst_level = min(self.burst_level, self._burst_cap())


class RateLimiter:
    """Shared by every call of a batch: waits until the endpoint's believed budget has room.

    :param rpm: requests per ``period``, the starting estimate (None: unknown until the headers say).
    :param tpm: tokens per ``period`` likewise; callers pass their estimate per request.
    :param period: the length the limits are given for; 60 for per-minute limits, ``60 * time_scale`` for
        the simulator.
    :param cushion_s: refill kept in hand (seconds' worth) against jitter between sending and arriving: a
        request that arrives later than the one sent after it (a busy server process, a new connection)
        still finds its token. It is a constant offset of the level, so it costs no throughput, only that
        much of the first burst.
    :param learn: False ignores the headers and 429s (a fixed client-side bucket).

    Waiters are served first come, first served (an :class:`asyncio.Lock` queues them), so a large token
    request is not starved by a stream of small ones.
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        period: float = 60.0,
        cushion_s: float = 0.02,
        learn: bool = True,
    ) -> None:
        if period <= 0:
            raise ValueError("period must be > 0 seconds")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or None for no limit)")
        now = time.monotonic()
        self.rpm, self.tpm, self.period, self.cushion_s, self.learn = rpm, tpm, period, cushion_s, learn
        self._dims = {
            "requests": _Budget(rpm, period if rpm else None, cushion_s, now),
            "tokens": _Budget(tpm, period if tpm else None, cushion_s, now),
        }
        self._lock = asyncio.Lock()
        self._changed: asyncio.Event | None = None
        self._paused_until = 0.0
        self._seq = 0
        self.granted = 0
        self.tokens_granted = 0.0
        self.waited_s = 0.0
        self.anchors = 0
        self.unexplained_429 = 0
        self.refunds = 0

    @property
    def active(self) -> bool:
        return any(d.known for d in self._dims.values())

    def calls_per_s(self, tokens_per_call: float) -> float | None:
        """The steady rate the budget allows for calls of this size (None: unlimited); sizes concurrency."""
        rates = []
        req, tok = self._dims["requests"], self._dims["tokens"]
        if req.known:
            rates.append(req.rate)
        if tok.known and tokens_per_call > 0:
            assert tok.capacity is not None
            rates.append(tok.rate / min(tokens_per_call, tok.capacity))
        return min(rates) if rates else None

    def headroom_calls(self, tokens_per_call: float, now: float | None = None) -> float:
        """How many calls of this size the believed budget would admit at once right now."""
        now = time.monotonic() if now is None else now
        room = math.inf
        req, tok = self._dims["requests"], self._dims["tokens"]
        if req.known:
            req.advance(now)
            room = min(room, req.level, req.burst_level if req.pacing else math.inf)
        if tok.known and tokens_per_call > 0:
            tok.advance(now)
            room = min(room, tok.level / tokens_per_call)
        return max(0.0, room) if math.isfinite(room) else 0.0

    def pause_until(self, t_monotonic: float) -> None:
        """Hold every grant until this time (never shortens an existing pause)."""
        self._paused_until = max(self._paused_until, t_monotonic)
        self._notify()

    def _wait(self, tokens: float, now: float) -> float:
        wait = self._paused_until - now
        wait = max(wait, self._dims["requests"].wait_for(1.0, now))
        if tokens > 0:
            wait = max(wait, self._dims["tokens"].wait_for(tokens, now))
        return wait

    async def acquire(self, tokens: float = 0.0) -> Grant:
        """Wait until one request of ``tokens`` fits the believed budget, then take it from the budget."""
        start = time.monotonic()
        async with self._lock:
            due: float | None = None
            while True:
                now = time.monotonic()
                wait = self._wait(tokens, now)
                if wait <= 0:
                    break
                due = now + wait
                await self._sleep(wait)
            if due is not None and now > due:  # it slept its whole wait and woke late
                for dim in self._dims.values():
                    dim.credit_lateness(now - due)
            self._seq += 1
            entries = {"requests": self._dims["requests"].take(1.0, now, self._seq)}
            if tokens > 0:
                entries["tokens"] = self._dims["tokens"].take(tokens, now, self._seq)
        self.granted += 1
        self.tokens_granted += tokens
        waited = now - start
        self.waited_s += waited
        return Grant(self, waited, entries)

    async def _sleep(self, wait: float) -> None:
        # Sleep until the wait is over or an answer changes the picture (a correction upwards, a pause).
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.clear()
        try:
            async with asyncio.timeout(wait):
                await self._changed.wait()
        except TimeoutError:
            pass

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def observe(
        self, grant: Grant, status: int | None, headers: Mapping[str, str] | None, now: float | None = None
    ) -> None:
        """Learn from the answer to ``grant``'s request: re-anchor the budget, honour a 429's retry-after."""
        if not self.learn:
            return
        now = time.monotonic() if now is None else now
        for entry in grant.entries.values():
            entry[3] = 1.0  # it was answered, so it was sent (whether or not the transport said when)
        info = RateLimitHeaders.parse(headers)
        for name, budget in (("requests", info and info.requests), ("tokens", info and info.tokens)):
            entry = grant.entries.get(name)
            if budget is None:
                self._dims[name].unanswered()
            elif entry is not None and self._dims[name].anchor(entry, budget, now):
                self.anchors += 1
        if status == 429:
            self._throttled(grant, headers, info, now)
        self._notify()

    def _throttled(
        self, grant: Grant, headers: Mapping[str, str] | None, info: RateLimitHeaders | None, now: float
    ) -> None:
        wait = parse_retry_after(headers)
        if wait is not None:
            self.pause_until(now + min(wait, MAX_PAUSE_S))
        if info is None:
            for name, entry in grant.entries.items():
                self._dims[name].refund(entry)
            self.refunds += 1
            self._stop_bursts()  # told a limit and still refused: send one at a time
            return
        needs = {"requests": 1.0, "tokens": grant.entries["tokens"][1] if "tokens" in grant.entries else 0.0}
        described = [(info.requests, needs["requests"]), (info.tokens, needs["tokens"])]
        if all(b is None or b.remaining >= need for b, need in described):
            self.unexplained_429 += 1
            self._stop_bursts()

    def _stop_bursts(self) -> None:
        for dim in self._dims.values():
            dim.stop_bursts()

    def describe(self) -> dict[str, object]:
        """What the limiter believes and did, for the batch summary."""
        out: dict[str, object] = {
            "limiter_wait_s": round(self.waited_s, 3),
            "header_anchors": self.anchors,
            "unexplained_429": self.unexplained_429,
        }
        for name, dim in self._dims.items():
            if dim.known:
                out[f"believed_{name}"] = {
                    "limit": dim.capacity,
                    "per_s": round(dim.rate, 4),
                    "burst": dim.burst,
                    "from_headers": dim.learned,
                }
        return out


@dataclass
class Grant:
    """One granted request: how long it waited, and its entries in the budget's log (to re-anchor on)."""

    limiter: RateLimiter
    waited: float
    entries: dict[str, list[float]]

    def sent(self, t: float | None = None) -> None:
        """Move the entries to the real send time (a new connection or a busy loop sends a little late);
        called when the request's bytes have been written (possibly more than once: the last one counts)."""
        t = time.monotonic() if t is None else t
        for name, entry in self.entries.items():
            self.limiter._dims[name].restamp(entry, t)
            entry[3] = 1.0

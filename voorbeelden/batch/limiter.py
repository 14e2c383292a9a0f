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

Some gateways count ``remaining``/``reset`` over that shorter window while ``limit`` still names the minute
(remaining 7 of 600, full again in 300ms). Read as one bucket, such headers describe a budget that refills a
hundred times too fast. A bucket that honest headers describe is full again after ``(limit - remaining) *
period / limit`` (the period the limiter was given, a minute); a reset far shorter than that (under a
quarter) can only be a short window, so from then on the dimension is that window: ``remaining`` now, one
more when it reopens after ``reset``, and the minute's rate after that (see :meth:`_Budget.short_window`).

Waits the endpoint asks for are capped at :data:`MAX_PAUSE_S`, whether they come from a ``retry-after`` or
from the reset headers (``x-ratelimit-reset-requests: 999999h`` would otherwise stall the batch without a
word), and every wait longer than :data:`ANNOUNCE_WAIT_S` is announced (``on_wait``) with its reason and end.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from voorbeelden.batch.budget import MAX_PAUSE_S, _Budget
from voorbeelden.http_headers import RateLimitHeaders, parse_retry_after

__all__ = ["Grant", "RateLimiter"]

log = logging.getLogger("voorbeelden.batch.limiter")

ANNOUNCE_WAIT_S = 5.0  # a longer wait is announced: what it waits for and until when


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
    :param on_wait: told (one line of text) about every wait longer than :data:`ANNOUNCE_WAIT_S`: what it
        waits for and until when (the batch prints it on stderr); None: logged as a warning.
    :param clock: the monotonic clock (a test passes its event loop's virtual time).

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
        on_wait: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if period <= 0:
            raise ValueError("period must be > 0 seconds")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or None for no limit)")
        self._clock, self.on_wait = clock, on_wait
        now = clock()
        self.rpm, self.tpm, self.period, self.cushion_s, self.learn = rpm, tpm, period, cushion_s, learn
        self._dims = {
            "requests": _Budget(rpm, period if rpm else None, cushion_s, now, period),
            "tokens": _Budget(tpm, period if tpm else None, cushion_s, now, period),
        }
        self._lock = asyncio.Lock()
        self._changed: asyncio.Event | None = None
        self._paused_until = 0.0
        self._pause_reason = ""
        self._announced_until = -math.inf
        self._seq = 0
        self.waited_s = 0.0
        self.anchors = 0
        self.unexplained_429 = 0

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
        now = self._clock() if now is None else now
        room = math.inf
        req, tok = self._dims["requests"], self._dims["tokens"]
        if req.known:
            req.advance(now)
            room = min(room, req.level, req.burst_level if req.pacing else math.inf)
        if tok.known and tokens_per_call > 0:
            tok.advance(now)
            room = min(room, tok.level / tokens_per_call)
        return max(0.0, room) if math.isfinite(room) else 0.0

    def pause_until(self, t_monotonic: float, reason: str = "a pause") -> None:
        """Hold every grant until this time (never shortens an existing pause)."""
        if t_monotonic > self._paused_until:
            self._paused_until, self._pause_reason = t_monotonic, reason
        self._notify()

    def _why(self, tokens: float, now: float) -> str:
        """What a wait is for: the pause a 429 asked for, or the dimension whose budget is short."""
        if self._paused_until - now > 0:
            return self._pause_reason
        waits = {
            name: dim.wait_for(1.0 if name == "requests" else tokens, now) for name, dim in self._dims.items()
        }
        name = max(waits, key=lambda k: waits[k])
        dim = self._dims[name]
        return f"the endpoint's {name} budget, refilling at {dim.rate:.3g}/s"

    def _announce(self, wait: float, tokens: float, now: float) -> None:
        """Say on stderr (``on_wait``) what a long wait is for and until when; once per wait."""
        due = now + wait
        if wait < ANNOUNCE_WAIT_S or due <= self._announced_until + 1.0:
            return
        self._announced_until = due
        until = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
        text = f"waiting {wait:.0f} s (until {until}) for {self._why(tokens, now)}"
        if self.on_wait is not None:
            self.on_wait(text)
        else:
            log.warning("%s", text)

    def _wait(self, tokens: float, now: float) -> float:
        wait = self._paused_until - now
        wait = max(wait, self._dims["requests"].wait_for(1.0, now))
        if tokens > 0:
            wait = max(wait, self._dims["tokens"].wait_for(tokens, now))
        return wait

    async def acquire(self, tokens: float = 0.0) -> Grant:
        """Wait until one request of ``tokens`` fits the believed budget, then take it from the budget."""
        start = self._clock()
        async with self._lock:
            due: float | None = None
            while True:
                now = self._clock()
                wait = self._wait(tokens, now)
                if wait <= 1e-9:  # below any clock's resolution: a rounding error, not a wait
                    break
                due = now + wait
                self._announce(wait, tokens, now)
                await self._sleep(wait)
            if due is not None and now > due:  # it slept its whole wait and woke late
                for dim in self._dims.values():
                    dim.credit_lateness(now - due)
            self._seq += 1
            entries = {"requests": self._dims["requests"].take(1.0, now, self._seq)}
            if tokens > 0:
                entries["tokens"] = self._dims["tokens"].take(tokens, now, self._seq)
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
    ) -> bool:
        """Learn from the answer to ``grant``'s request: re-anchor the budget, honour a 429's retry-after.
        True for a 429 that the headers explain (a dimension without room): a matter of rate, which the
        budget now paces, not of how many calls are in flight."""
        if not self.learn:
            return False
        now = self._clock() if now is None else now
        for entry in grant.entries.values():
            entry[3] = 1.0  # it was answered, so it was sent (whether or not the transport said when)
        info = RateLimitHeaders.parse(headers)
        for name, budget in (("requests", info and info.requests), ("tokens", info and info.tokens)):
            entry = grant.entries.get(name)
            if budget is None:
                self._dims[name].unanswered()
            elif entry is not None and self._dims[name].anchor(entry, budget, now):
                self.anchors += 1
        explained = status == 429 and self._throttled(grant, headers, info, now)
        self._notify()
        return explained

    def _throttled(
        self, grant: Grant, headers: Mapping[str, str] | None, info: RateLimitHeaders | None, now: float
    ) -> bool:
        wait = parse_retry_after(headers)
        if wait is not None:
            capped = min(wait, MAX_PAUSE_S)
            asked = f"{wait:.0f} s, capped at {MAX_PAUSE_S:.0f} s" if wait > capped else f"{wait:.0f} s"
            self.pause_until(now + capped, f"a 429 that asked to retry after {asked}")
        if info is None:
            for name, entry in grant.entries.items():
                self._dims[name].refund(entry)
            self._stop_bursts()  # told a limit and still refused: send one at a time
            return False
        needs = {"requests": 1.0, "tokens": grant.entries["tokens"][1] if "tokens" in grant.entries else 0.0}
        described = [(info.requests, needs["requests"]), (info.tokens, needs["tokens"])]
        if all(b is None or b.remaining >= need for b, need in described):
            self.unexplained_429 += 1
            self._stop_bursts()
            return False
        return True

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
        t = self.limiter._clock() if t is None else t
        for name, entry in self.entries.items():
            self.limiter._dims[name].restamp(entry, t)
            entry[3] = 1.0

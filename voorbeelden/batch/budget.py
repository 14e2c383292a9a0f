"""One dimension (requests or tokens) of the endpoint's rate-limit budget, as the client believes it.

:class:`~voorbeelden.batch.limiter.RateLimiter` holds one per dimension and asks it how long a request must
wait; every answer's ``x-ratelimit-*`` headers re-anchor it (see ``limiter.py`` for why a model of the
server's bucket and not a window of the client's own). The headers may also describe a window shorter than
the period their limit names (:meth:`_Budget.short_window`); the budget then models that window.
"""

from __future__ import annotations

import math
from collections import deque

from voorbeelden.http_headers import DimensionBudget

__all__ = ["MAX_PAUSE_S", "SHORT_WINDOW_RATIO"]

MAX_PAUSE_S = 60.0  # the caller's ceiling for a retry-after; header-derived waits are capped alike
SHORT_WINDOW_RATIO = 0.25  # a reset under this share of what a per-period bucket implies is a short window
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
        "nominal",
        "period",
        "prior_period",
        "silent",
        "t",
        "window",
    )

    def __init__(
        self,
        capacity: float | None,
        period: float | None,
        cushion_s: float,
        now: float,
        nominal: float | None = None,
    ) -> None:
        self.capacity, self.period, self.cushion_s = capacity, period, cushion_s
        self.prior_period = period
        self.nominal = nominal if nominal is not None else period  # the period the limits are given for
        self.window: float | None = None  # the short window's allowance, once the headers showed one
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

    def short_window(self, budget: DimensionBudget) -> bool:
        """Whether these headers count a window shorter than the period their limit is given for (then the
        dimension is that window from now on). A per-period bucket that is not full needs ``(limit -
        remaining) * period / limit`` to fill again, more than ``(limit - remaining - 1) * period / limit``
        since ``remaining`` is a floor; a reset under a quarter of that is not a bucket of this limit. A
        nearly full bucket (remaining = limit - 1) says nothing either way."""
        if self.window is not None:
            return True
        if not self.nominal or budget.reset_s <= 0 or budget.limit - budget.remaining < 2:
            return False
        bucket_reset = self.nominal * (budget.limit - budget.remaining - 1) / budget.limit
        return budget.reset_s < SHORT_WINDOW_RATIO * bucket_reset

    def _window_anchor(self, budget: DimensionBudget) -> tuple[float, float]:
        """(the window's allowance as far as seen, the level now) for short-window headers. The window admits
        ``remaining`` until it reopens ``reset`` from now, and then the minute's rate: a level that reaches
        remaining + 1 exactly at the reset does both (never more than ``remaining`` before it)."""
        assert self.nominal
        rate = budget.limit / self.nominal
        self.window = max(self.window or 1.0, budget.remaining + 1.0)
        self.period = self.window / rate
        return self.window, min(self.window, budget.remaining + 1.0 - rate * budget.reset_s)

    def anchor(self, entry: list[float], budget: DimensionBudget, now: float) -> bool:
        """Set the bucket from the headers of the request ``entry``; False if a newer answer already did."""
        t_anchor = entry[0]  # when that request left (the server counted it on arrival, a little later)
        if t_anchor < self.anchor_t:
            return False
        self.advance(now)  # bring the burst bucket up to now before the main level is replaced
        was_known = self.known
        # A reset beyond what may be waited for is capped: the headers then only delay, never stall.
        budget = DimensionBudget(budget.limit, budget.remaining, min(budget.reset_s, MAX_PAUSE_S))
        window = self.short_window(budget)
        limit, remaining, reset = budget.limit, budget.remaining, budget.reset_s
        if window:
            limit, level = self._window_anchor(budget)
        if limit != self.capacity:
            shrunk = self.pacing
            self.capacity = limit
            self.burst = min(self.burst or limit, limit) if shrunk else limit
        if not window:
            self._learn_period(limit, remaining, reset)
            # remaining is floor(level): the level is in [R, R + 1). At R = 0 it may also be a debt (rejected
            # requests charged), which only the reset time shows: full again after reset => level = C -
            # rate*reset.
            level = remaining if remaining >= 1 else min(0.0, limit - self.rate * reset)
        rate = self.rate
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

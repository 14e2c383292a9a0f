"""AIMD concurrency: find how many calls an endpoint takes at once without being told.

The limit grows while calls succeed and the endpoint is the bottleneck, and shrinks multiplicatively on a
429 or when latency climbs well above its baseline (the sign of queueing at the server). Like TCP it starts
in slow start (+1 per success, doubling per round trip) and switches to congestion avoidance (+1 per round
trip) at the first sign of congestion, so it reaches a high limit in a few round trips and then stays close
to it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from voorbeelden.fifo import FifoSemaphore

__all__ = ["AdaptiveConcurrency", "LimitChange"]


@dataclass(frozen=True)
class LimitChange:
    """One change of the limit, for plots: when (monotonic seconds), to what, and why."""

    t: float
    limit: float
    reason: str
    effective: int = 0


class AdaptiveConcurrency:
    """A concurrency limit that adapts to the endpoint.

        aimd = AdaptiveConcurrency(initial=4, max_limit=256)
        ticket = await aimd.acquire()
        ...send...
        aimd.release(ticket, throttled=status == 429, latency_s=elapsed)

    :param initial: the limit to start from (calls in flight).
    :param min_limit: never go below this many calls in flight.
    :param max_limit: never above this (the hard cap, ``--max-in-flight``).
    :param decrease: the factor applied on congestion (0.7: drop by 30%).
    :param latency_tolerance: congestion when the recent latency (EWMA) exceeds this multiple of the baseline.
    :param adaptive: False turns it into a fixed semaphore of ``initial`` (for comparisons).

    A decrease applies at most once per round trip: 429s of calls sent before the last decrease describe the
    old limit and are ignored (each ticket carries the epoch it was sent in).
    """

    def __init__(
        self,
        initial: float = 4,
        *,
        min_limit: float = 1,
        max_limit: float = 256,
        decrease: float = 0.7,
        latency_tolerance: float = 2.0,
        adaptive: bool = True,
    ) -> None:
        if not 1 <= min_limit <= max_limit:
            raise ValueError("need 1 <= min_limit <= max_limit")
        if not 0 < decrease < 1:
            raise ValueError("decrease is a factor between 0 and 1")
        self.min_limit, self.max_limit = float(min_limit), float(max_limit)
        self.limit = float(min(max(initial, min_limit), max_limit))
        self.decrease, self.latency_tolerance, self.adaptive = decrease, latency_tolerance, adaptive
        self.ceiling: float | None = None  # set by the gate when a rate limit makes more calls useless
        self.slow_start = True
        self._slots = FifoSemaphore(self.effective)
        self.sending = 0
        self.epoch = 0
        self._kinds: dict[str, list[float]] = {}  # kind -> [smoothed latency, baseline, samples]
        self._ratio = 1.0  # smoothed latency / baseline over all kinds
        self.history: deque[LimitChange] = deque(maxlen=4096)
        self.decreases = 0

    @property
    def effective(self) -> int:
        limit = self.limit if self.ceiling is None else min(self.limit, max(self.min_limit, self.ceiling))
        return max(1, math.floor(limit))

    @property
    def in_flight(self) -> int:
        return self._slots.active

    @property
    def waiting(self) -> int:
        return self._slots.waiting

    async def acquire(self) -> int:
        """Wait for a slot (first come, first served); returns the epoch ticket for :meth:`release`."""
        await self._slots.acquire()
        return self.epoch

    def set_ceiling(self, ceiling: float | None, now: float = 0.0) -> None:
        """Cap the limit from outside (a rate limit makes calls beyond rate x latency only queue)."""
        before = self.effective
        self.ceiling = ceiling
        if self.effective != before:
            self.history.append(LimitChange(now, self.limit, "ceiling", self.effective))
        self._slots.set_capacity(self.effective)

    def sent(self) -> bool:
        """Mark the call as on the wire; returns whether the endpoint (not a rate limit) is what is full.

        80% rather than 100%: a paced limiter keeps a call or two between slot and wire at any moment, and
        requiring every slot on the wire would stall slow start for no reason."""
        self.sending += 1
        return self.sending >= 0.8 * self.effective

    def release(
        self,
        ticket: int,
        *,
        sent: bool = True,
        throttled: bool = False,
        latency_s: float | None = None,
        kind: str = "",
        saturated: bool = False,
        now: float = 0.0,
    ) -> None:
        """Give the slot back and learn from the outcome.

        ``kind`` groups calls of similar cost (the gate uses model + max_tokens) for the latency baseline.
        ``saturated`` is what :meth:`sent` returned: growth only counts when every slot was in use on the
        wire, otherwise a limit that was never reached would grow without bound (TCP's cwnd validation).
        """
        if sent:
            self.sending -= 1
        if self.adaptive:
            if throttled:
                self._congestion(ticket, now, "429")
            elif latency_s is not None:
                self._observe(ticket, latency_s, saturated, now, kind)
        self._slots.capacity = self.effective
        self._slots.release()

    def _observe(self, ticket: int, latency_s: float, saturated: bool, now: float, kind: str) -> None:
        # Calls of different kinds (a 300-token list of synonyms, a 1,500-token case description) differ
        # tenfold in latency, so a shift in the mix would look like congestion. Each kind gets its own
        # baseline (the lowest smoothed latency seen for it) and congestion is judged on the smoothed
        # *ratio* of latency to that baseline.
        base = self._kinds.get(kind)
        if base is None:
            base = self._kinds[kind] = [latency_s, latency_s, 0]
        base[0] = 0.8 * base[0] + 0.2 * latency_s  # smoothed latency of this kind
        base[2] += 1
        if base[0] < base[1]:
            base[1] = base[0]
        else:
            # Let the baseline drift up slowly so a permanent change (another tenant, a slower model)
            # is accepted after a while instead of holding the limit down forever.
            base[1] *= 1.001
        if base[2] >= 5:  # a baseline from fewer calls is noise
            self._ratio = 0.9 * self._ratio + 0.1 * (latency_s / base[1])
            if self._ratio > self.latency_tolerance:
                self._congestion(ticket, now, "latency")
                return
        if not saturated or self.limit >= self.max_limit:
            return
        if self.ceiling is not None and self.limit >= self.ceiling:
            return  # growing past the ceiling would only store up a limit that a 429 then has to undo
        self.limit = min(self.max_limit, self.limit + (1.0 if self.slow_start else 1.0 / self.limit))
        self.history.append(LimitChange(now, self.limit, "increase", self.effective))

    def _congestion(self, ticket: int, now: float, reason: str) -> None:
        if ticket < self.epoch:
            return
        self.epoch += 1
        self.slow_start = False
        self.decreases += 1
        self.limit = max(self.min_limit, self.limit * self.decrease)
        if reason == "latency":
            # Judge the next round trip afresh, not by the latencies that triggered this decrease.
            self._ratio = 1.0
        self.history.append(LimitChange(now, self.limit, reason, self.effective))

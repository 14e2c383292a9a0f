"""What a running server shares between requests: the capacity gate, the counters and the live config.

All of it is owned by the server's event loop and touched only from it, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

from voorbeelden.fifo import FifoSemaphore
from voorbeelden.sim.batching import SharedDecoder
from voorbeelden.sim.config import SimConfig
from voorbeelden.sim.ratelimit import RateLimiter

MAX_ACCEPTED_TIMES = 100_000
# The counters a request enters and leaves (SimState.enter/leave), each with its peak_ twin.
GAUGES = ("open", "queued", "in_flight")


class CapacityGate(FifoSemaphore):
    """The server's workers: ``capacity`` requests served at once (None: unlimited), queued in arrival order,
    so queueing in the simulator behaves like a server with a fixed number of workers."""


@dataclass
class Counters:
    requests_total: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    by_part: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    open: int = 0  # received and not yet answered, queued or not
    peak_open: int = 0
    queued: int = 0  # waiting for a capacity slot
    peak_queued: int = 0
    in_flight: int = 0  # being served: holding a slot (or hanging)
    peak_in_flight: int = 0
    sent_429: int = 0
    rate_limited: int = 0
    accepted_times: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_ACCEPTED_TIMES)
    )
    loop_lag_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=10_000))

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "by_status": dict(self.by_status),
            "by_part": dict(self.by_part),
            "faults": dict(self.faults),
            "open": self.open,
            "peak_open": self.peak_open,
            "queued": self.queued,
            "peak_queued": self.peak_queued,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "sent_429": self.sent_429,
            "rate_limited": self.rate_limited,
            # monotonic seconds (time.monotonic, same clock for every process on the host) of requests that
            # passed the rate limiter, so a test can count requests in any sliding window
            "accepted_times": list(self.accepted_times),
            # how late the server's own event loop woke up (10 ms ticker): the simulator's share of any
            # difference between scheduled and observed latency
            "loop_lag_ms_p99": _percentile(self.loop_lag_ms, 0.99),
            "loop_lag_ms_max": max(self.loop_lag_ms, default=0.0),
        }


def _percentile(values: collections.deque[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _limit_fields(c: SimConfig) -> tuple[object, ...]:
    return (c.rpm, c.tpm, c.time_scale, c.rate_limit_mode, c.rate_limit_quantum_s, c.charge_rejected)


def _limiter(c: SimConfig) -> RateLimiter:
    return RateLimiter(
        c.rpm,
        c.tpm,
        c.time_scale,
        mode=c.rate_limit_mode,
        quantum_s=c.rate_limit_quantum_s,
        charge_rejected=c.charge_rejected,
    )


def _slots(c: SimConfig) -> int | None:
    """Calls served at once: ``capacity``, and at most the profile's ``max_batch`` when it batches."""
    batching = c.resolved_profile().batching
    if batching is None:
        return c.capacity
    return batching.max_batch if c.capacity is None else min(c.capacity, batching.max_batch)


def _decoder(c: SimConfig) -> SharedDecoder | None:
    batching = c.resolved_profile().batching
    return None if batching is None else SharedDecoder(batching)


class SimState:
    """Everything a running server shares between requests; owned by the server's event loop."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.gate = CapacityGate(_slots(config))
        # the streams a batching profile decodes together (None: calls do not slow each other)
        self.decoder = _decoder(config)
        self.limiter = _limiter(config)
        self.shutdown = asyncio.Event()
        self.seq = 0

    def apply(self, config: SimConfig) -> None:
        old = self.config
        self.config = config
        if _slots(config) != _slots(old):
            self.gate.set_capacity(_slots(config))
        if config.resolved_profile().batching != old.resolved_profile().batching:
            # streams already running finish on the decoder they joined
            self.decoder = _decoder(config)
        if _limit_fields(config) != _limit_fields(old):
            self.limiter = _limiter(config)

    def reset_counters(self) -> None:
        """Fresh counters that keep the gauges: requests still running will decrement the new counters when
        they finish, and each peak starts from what is open now."""
        live = {name: getattr(self.counters, name) for name in GAUGES}
        self.counters = Counters(**live, **{f"peak_{name}": value for name, value in live.items()})

    def enter(self, what: str) -> None:
        c = self.counters
        value = getattr(c, what) + 1
        setattr(c, what, value)
        if value > getattr(c, f"peak_{what}"):
            setattr(c, f"peak_{what}", value)

    def leave(self, what: str) -> None:
        c = self.counters
        setattr(c, what, getattr(c, what) - 1)

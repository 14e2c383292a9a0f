"""Requests-per-minute and tokens-per-minute limits, in the shapes real providers enforce them.

Three modes (``SimConfig.rate_limit_mode``) and one switch (``SimConfig.charge_rejected``):

``bucket`` (the default)
    A token bucket per dimension that holds one minute's allowance, starts full and refills continuously,
    the way OpenAI documents its limits: a client that has been idle may spend a whole minute's worth at
    once, and one that respects ``retry-after`` gets through promptly instead of waiting for the next minute.
``quantized``
    The same per-minute bucket, and on top of it fixed windows of about ``rate_limit_quantum_s`` (simulated
    seconds, aligned to the server's start) that admit only their share of the minute. OpenAI's help centre:
    a limit "may be enforced over shorter periods", e.g. "1 request per second for a 60 RPM limit", so short
    bursts get 429s although the per-minute figure is not reached. A window admits ``n = max(1,
    round(limit * quantum / 60))`` and lasts ``60 * n / limit`` seconds, so the long-run rate is exactly the
    limit (rpm 30 with a 1 s quantum: one request per 2 s window). The headers still describe the per-minute
    bucket, as the real API's do; the shorter window shows only as 429s with a ``retry-after``.
``charge_rejected``
    Off: a rejected request costs nothing (today's behaviour). On: it is charged like an accepted one
    ("unsuccessful requests count toward the limit", same source), so blind retries dig a hole. The debt is
    floored at one minute's allowance (the bucket goes down to ``-capacity``, as if rejections older than a
    minute were forgotten); ``x-ratelimit-remaining-*`` never shows a negative number, but the reset time
    grows with the debt.

Tokens are estimated the way a client would before the call: prompt characters / 4 + ``max_tokens``. Every
window is multiplied by ``time_scale``, so ``rpm=60`` at ``time_scale=0.01`` admits 60 requests per 0.6 real
seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

RATE_LIMIT_MODES: tuple[str, ...] = ("bucket", "quantized", "short-window")


def go_duration(seconds: float) -> str:
    """Format like the real API's reset headers (Go's ``time.Duration``): ``20ms``, ``1s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    total_ms = round(seconds * 1000)
    h, rem = divmod(total_ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s = rem / 1000
    s_text = f"{s:.3f}".rstrip("0").rstrip(".")
    if h:
        return f"{h}h{m}m{s_text}s"
    if m:
        return f"{m}m{s_text}s"
    return f"{s_text}s"


class TokenBucket:
    """A bucket of ``capacity`` that refills ``capacity`` per ``window_s``; starts full.

    :meth:`charge` may take it below zero (down to ``-capacity``): that is the debt a rejected request leaves
    when rejected requests are charged."""

    def __init__(self, capacity: float, window_s: float, now: float | None = None) -> None:
        self.capacity = float(capacity)
        self.rate = self.capacity / window_s
        self._level = self.capacity
        self._t = time.monotonic() if now is None else now

    def _refill(self, now: float) -> None:
        self._level = min(self.capacity, self._level + max(0.0, now - self._t) * self.rate)
        self._t = max(self._t, now)

    def level(self, now: float) -> float:
        self._refill(now)
        return self._level

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now); amounts above capacity wait for a full bucket."""
        self._refill(now)
        need = min(amount, self.capacity) - self._level
        return max(0.0, need / self.rate)

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self._level -= min(amount, self.capacity)

    def charge(self, amount: float, now: float) -> None:
        """Take ``amount`` although it did not fit (a charged rejection); the debt stops at ``-capacity``."""
        self._refill(now)
        self._level = max(-self.capacity, self._level - min(amount, self.capacity))

    def reset_s(self, now: float) -> float:
        """Seconds until the bucket is full again (what ``x-ratelimit-reset-*`` reports)."""
        self._refill(now)
        return (self.capacity - self._level) / self.rate


class QuantizedWindow:
    """Fixed windows aligned to ``t0``, each admitting ``allowance`` (the quantum's share of the minute).

    :param per_minute: the per-minute limit (requests or tokens).
    :param minute_s: the real length of a minute (``60 * time_scale``).
    :param quantum_s: the real length the minute's share is enforced over (``rate_limit_quantum_s *
        time_scale``); rounded so that each window admits a whole number and the rate stays exact.
    """

    def __init__(self, per_minute: float, minute_s: float, quantum_s: float, t0: float) -> None:
        self.allowance = float(max(1, round(per_minute * quantum_s / minute_s)))
        self.length = minute_s * self.allowance / per_minute
        self.t0 = t0
        self._index = 0
        self._used = 0.0

    def _roll(self, now: float) -> None:
        # (a hair of slack: a time that is a window's end computed in floating point opens the next window)
        index = math.floor((now - self.t0) / self.length + 1e-9)
        if index > self._index:
            self._index, self._used = index, 0.0

    def wait_for(self, amount: float, now: float) -> float:
        self._roll(now)
        if self._used + min(amount, self.allowance) <= self.allowance + 1e-9:
            return 0.0
        return max(0.0, self.t0 + (self._index + 1) * self.length - now)

    def take(self, amount: float, now: float) -> None:
        self._roll(now)
        self._used += min(amount, self.allowance)

    def remaining(self, now: float) -> float:
        """What the current window still admits."""
        self._roll(now)
        return max(0.0, self.allowance - self._used)

    def reset_s(self, now: float) -> float:
        """Seconds until the next window opens."""
        self._roll(now)
        return max(0.0, self.t0 + (self._index + 1) * self.length - now)


@dataclass
class Decision:
    allowed: bool
    retry_after_s: float
    headers: dict[str, str]
    which: str = "requests"  # the dimension that said no (or would have been the tightest)


@dataclass
class _Dimension:
    name: str
    bucket: TokenBucket
    window: QuantizedWindow | None = None

    def wait_for(self, amount: float, now: float) -> float:
        wait = self.bucket.wait_for(amount, now)
        if self.window is not None:
            wait = max(wait, self.window.wait_for(amount, now))
        return wait

    def take(self, amount: float, now: float) -> None:
        self.bucket.take(amount, now)
        if self.window is not None:
            self.window.take(amount, now)

    def charge(self, amount: float, now: float) -> None:
        self.bucket.charge(amount, now)
        if self.window is not None:
            self.window.take(amount, now)


@dataclass
class RateLimiter:
    """Both dimensions together: a request passes only if both have room, and then takes from both.

    limiter = RateLimiter(rpm=60, tpm=None, time_scale=1.0, mode="quantized")
    decision = limiter.check(est_tokens)   # 429 with decision.headers when not decision.allowed
    """

    rpm: float | None
    tpm: float | None
    time_scale: float
    mode: str = "bucket"
    quantum_s: float = 1.0
    charge_rejected: bool = False
    dims: list[_Dimension] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in RATE_LIMIT_MODES:
            raise ValueError(
                f"rate limit mode {self.mode!r} is unknown; use one of {', '.join(RATE_LIMIT_MODES)}"
            )
        minute = 60.0 * self.time_scale
        t0 = time.monotonic()
        for name, limit in (("requests", self.rpm), ("tokens", self.tpm)):
            if not limit:
                continue
            window = None
            if self.mode in ("quantized", "short-window"):
                window = QuantizedWindow(limit, minute, self.quantum_s * self.time_scale, t0)
            self.dims.append(_Dimension(name, TokenBucket(limit, minute, t0), window))

    @property
    def active(self) -> bool:
        return bool(self.dims)

    @property
    def requests(self) -> TokenBucket | None:
        return next((d.bucket for d in self.dims if d.name == "requests"), None)

    @property
    def tokens(self) -> TokenBucket | None:
        return next((d.bucket for d in self.dims if d.name == "tokens"), None)

    def check(self, est_tokens: float, now: float | None = None) -> Decision:
        now = time.monotonic() if now is None else now
        amounts = {"requests": 1.0, "tokens": float(est_tokens)}
        waits = {d.name: d.wait_for(amounts[d.name], now) for d in self.dims}
        which = max(waits, key=lambda k: waits[k], default="requests")
        allowed = all(w <= 0 for w in waits.values())
        if allowed:
            for d in self.dims:
                d.take(amounts[d.name], now)
        elif self.charge_rejected:
            for d in self.dims:
                d.charge(amounts[d.name], now)
            waits = {d.name: d.wait_for(amounts[d.name], now) for d in self.dims}
        return Decision(allowed, max(waits.values(), default=0.0), self.headers(now), which)

    def headers(self, now: float | None = None) -> dict[str, str]:
        """The per-minute budget after this request, as the real API reports it (never a negative count);
        in the ``short-window`` mode the remaining count and reset of the current short window instead."""
        now = time.monotonic() if now is None else now
        h: dict[str, str] = {}
        for d in self.dims:
            bucket = d.bucket
            remaining, reset = bucket.level(now), bucket.reset_s(now)
            if self.mode == "short-window" and d.window is not None:
                remaining = min(remaining, d.window.remaining(now))
                reset = d.window.reset_s(now)
            h[f"x-ratelimit-limit-{d.name}"] = str(int(bucket.capacity))
            h[f"x-ratelimit-remaining-{d.name}"] = str(max(0, math.floor(remaining)))
            h[f"x-ratelimit-reset-{d.name}"] = go_duration(reset)
        return h


def retry_after_headers(wait_s: float) -> dict[str, str]:
    """``retry-after`` in whole seconds rounded up (the standard allows no fraction) plus the precise
    ``retry-after-ms`` the openai SDK prefers; at least 1 ms, because the SDK ignores a zero."""
    ms = max(1, math.ceil(wait_s * 1000))
    return {"retry-after": str(max(1, math.ceil(wait_s))), "retry-after-ms": str(ms)}

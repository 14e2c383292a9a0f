"""Requests-per-minute and tokens-per-minute limits as continuously refilling token buckets.

OpenAI documents its limits as buckets that refill continuously rather than fixed minute windows, so a
client that respects ``retry-after`` gets through promptly instead of waiting for the next minute. Tokens
are estimated the way a client would before the call: prompt characters / 4 + ``max_tokens``. The window
(one minute) is multiplied by ``time_scale``, so ``rpm=60`` at ``time_scale=0.01`` admits 60 requests per
0.6 real seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


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
    """A bucket of ``capacity`` that refills ``capacity`` per ``window_s``; starts full."""

    def __init__(self, capacity: float, window_s: float) -> None:
        self.capacity = float(capacity)
        self.rate = self.capacity / window_s
        self._level = self.capacity
        self._t = time.monotonic()

    def _refill(self, now: float) -> None:
        self._level = min(self.capacity, self._level + (now - self._t) * self.rate)
        self._t = now

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

    def reset_s(self, now: float) -> float:
        """Seconds until the bucket is full again (what ``x-ratelimit-reset-*`` reports)."""
        self._refill(now)
        return (self.capacity - self._level) / self.rate


@dataclass
class Decision:
    allowed: bool
    retry_after_s: float
    headers: dict[str, str]


class RateLimiter:
    """Both buckets together: a request passes only if both have room, and then takes from both."""

    def __init__(self, rpm: float | None, tpm: float | None, time_scale: float) -> None:
        window = 60.0 * time_scale
        self.rpm, self.tpm = rpm, tpm
        self.requests = TokenBucket(rpm, window) if rpm else None
        self.tokens = TokenBucket(tpm, window) if tpm else None

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def check(self, est_tokens: float, now: float | None = None) -> Decision:
        now = time.monotonic() if now is None else now
        waits = []
        if self.requests is not None:
            waits.append(self.requests.wait_for(1, now))
        if self.tokens is not None:
            waits.append(self.tokens.wait_for(est_tokens, now))
        wait = max(waits, default=0.0)
        allowed = wait <= 0
        if allowed:
            if self.requests is not None:
                self.requests.take(1, now)
            if self.tokens is not None:
                self.tokens.take(est_tokens, now)
        return Decision(allowed=allowed, retry_after_s=wait, headers=self.headers(now))

    def headers(self, now: float | None = None) -> dict[str, str]:
        now = time.monotonic() if now is None else now
        h: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is None:
                continue
            h[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
            h[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level(now))))
            h[f"x-ratelimit-reset-{name}"] = go_duration(bucket.reset_s(now))
        return h


def retry_after_headers(wait_s: float) -> dict[str, str]:
    """``retry-after`` in whole seconds rounded up (the standard allows no fraction) plus the precise
    ``retry-after-ms`` the openai SDK prefers; at least 1 ms, because the SDK ignores a zero."""
    ms = max(1, math.ceil(wait_s * 1000))
    return {"retry-after": str(max(1, math.ceil(wait_s))), "retry-after-ms": str(ms)}

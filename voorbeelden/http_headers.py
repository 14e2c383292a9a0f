"""What an endpoint's response headers say about its rate limits: the one parser for the caller and the batch.

    wait = parse_retry_after(response.headers)        # seconds, or None
    budget = RateLimitHeaders.parse(response.headers)  # remaining/limit/reset per dimension, or None

``retry-after-ms`` is read first (precise; the openai SDK does the same), then ``retry-after`` as seconds or
as an HTTP date (RFC 9110 allows both). ``x-ratelimit-reset-*`` are Go durations (``20ms``, ``1s``,
``6m0s``), the format OpenAI sends. Only the standard library is imported, so the simulator process and
the batch gate can use this module without the SDK.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DimensionBudget", "RateLimitHeaders", "parse_duration", "parse_retry_after"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date); None if absent
    or unreadable. A date in the past gives 0. ``now`` is a Unix time (for tests)."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            seconds = _finite(float(value) / 1000.0)
            if seconds is not None:
                return seconds
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _finite(float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" gives a naive datetime; RFC 9110 dates are GMT, not local time
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def parse_duration(text: str | None) -> float | None:
    """Go-style durations from ``x-ratelimit-reset-*`` (``20ms``, ``1s``, ``6m0s``, ``1h2m3.5s``) in seconds;
    a bare number is taken as seconds. None if absent or unreadable."""
    if not text:
        return None
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        try:
            return _finite(float(text))
        except ValueError:
            return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return _finite(float(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class DimensionBudget:
    """One dimension (requests or tokens) as the endpoint reported it after counting this request."""

    limit: float
    remaining: float
    reset_s: float


@dataclass(frozen=True)
class RateLimitHeaders:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; a dimension is None unless all three parse."""

    requests: DimensionBudget | None
    tokens: DimensionBudget | None

    @classmethod
    def parse(cls, headers: Mapping[str, str] | None) -> RateLimitHeaders | None:
        if not headers:
            return None
        dims: dict[str, DimensionBudget | None] = {}
        for name in ("requests", "tokens"):
            limit = _number(headers.get(f"x-ratelimit-limit-{name}"))
            remaining = _number(headers.get(f"x-ratelimit-remaining-{name}"))
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{name}"))
            ok = limit is not None and limit > 0 and remaining is not None and reset is not None
            dims[name] = DimensionBudget(limit, remaining, reset) if ok else None  # type: ignore[arg-type]
        if dims["requests"] is None and dims["tokens"] is None:
            return None
        return cls(dims["requests"], dims["tokens"])

"""Deliberate slowdowns, switched on by two documented test knobs, to prove that ``voorbeelden compare`` sees
a real regression (docs/COMPARE.md). Unset (always, outside that proof) they change nothing.

* ``VOORBEELDEN_TEST_CALL_DELAY_MS=50``: the client's HTTP transport (:mod:`voorbeelden.transport`) waits
  this many wall-clock milliseconds before sending every request: a client that got 50 ms slower per call.
  Real time, never scaled by the simulator's ``time_scale`` (a slow client is slow in real seconds).
* ``VOORBEELDEN_TEST_SLOW_PART=praktijkvoorbeelden:1.2``: the simulator serves that part ``factor`` times
  slower (its time to first token times the factor, its token rate divided by it, so its whole service time
  scales, whatever ``max_tokens`` cuts): a profile with one part 20% slower.

Environment variables, like ``VOORBEELDEN_SEED``, because they must reach code that no parameter reaches:
the notebooks' kernels and the simulator process inherit them from ``voorbeelden report``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

CALL_DELAY_ENV = "VOORBEELDEN_TEST_CALL_DELAY_MS"
SLOW_PART_ENV = "VOORBEELDEN_TEST_SLOW_PART"


def call_delay_s() -> float:
    """The client-side delay per request in seconds (0.0 when the knob is unset)."""
    raw = os.environ.get(CALL_DELAY_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        ms = float(raw)
    except ValueError:
        ms = math.nan
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"{CALL_DELAY_ENV}={raw!r}: must be a number of milliseconds >= 0")
    return ms / 1000.0


def slow_part() -> tuple[str, float] | None:
    """``(part, factor)`` from the knob, None when unset."""
    raw = os.environ.get(SLOW_PART_ENV, "").strip()
    if not raw:
        return None
    part, _, factor_text = raw.partition(":")
    from voorbeelden.types import ALL_PARTS

    names = [p.value for p in ALL_PARTS]
    try:
        factor = float(factor_text)
    except ValueError:
        factor = math.nan
    if part not in names or not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"{SLOW_PART_ENV}={raw!r}: expected PART:FACTOR with PART one of {', '.join(names)}")
    return part, factor


def with_slow_part(profile: Any) -> Any:
    """``profile`` (a :class:`voorbeelden.sim.profiles.Profile`) with the knob's part slowed; itself unset."""
    knob = slow_part()
    if knob is None:
        return profile
    part, factor = knob
    pp = profile.part_profile(part)
    slowed = dataclasses.replace(
        pp,
        ttft_s=dataclasses.replace(pp.ttft_s, median=pp.ttft_s.median * factor),
        tokens_per_s=dataclasses.replace(pp.tokens_per_s, median=pp.tokens_per_s.median / factor),
    )
    return dataclasses.replace(profile, parts={**profile.parts, part: slowed})

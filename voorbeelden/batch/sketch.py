"""Percentiles of a stream in fixed memory: a histogram with logarithmic bins.

    walls = LogHistogram()
    walls.add(1.23)
    walls.quantile(0.95)   # within 1% of the exact value

A batch of a million terms must not keep a million wall times to report one p95. Bins 1% apart in value
(from 1 microsecond to about 30 years) bound the relative error by 1%; only the bins that were hit are
stored, a few hundred for any real spread of times.
"""

from __future__ import annotations

import math

__all__ = ["LogHistogram"]


class LogHistogram:
    """Counts per logarithmic bin of relative width ``precision`` (values <= ``floor`` share the first bin)."""

    __slots__ = ("_bins", "_log_step", "count", "floor", "maximum", "minimum")

    def __init__(self, precision: float = 0.01, floor: float = 1e-6) -> None:
        if not 0 < precision < 1:
            raise ValueError("precision is a fraction between 0 and 1")
        self._log_step = math.log1p(precision)
        self.floor = floor
        self._bins: dict[int, int] = {}
        self.count = 0
        self.minimum = math.inf
        self.maximum = -math.inf

    def add(self, value: float) -> None:
        index = 0 if value <= self.floor else 1 + int(math.log(value / self.floor) / self._log_step)
        self._bins[index] = self._bins.get(index, 0) + 1
        self.count += 1
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (nearest rank, as ``sorted(values)[ceil(q * n) - 1]``); None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self._bins):
            seen += self._bins[index]
            if seen >= rank:
                if index == 0:
                    return self.minimum
                # the bin's geometric middle, clamped to what was really seen
                mid = self.floor * math.exp((index - 0.5) * self._log_step)
                return min(self.maximum, max(self.minimum, mid))
        return self.maximum

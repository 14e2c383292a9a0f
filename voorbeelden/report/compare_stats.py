"""How a figure's change between two reports is judged: a ratio with a 95% bootstrap CI, and a verdict.

A figure is a statistic (median, p95, mean) over per-unit values (one per generation or per sequential /
parallel pair) of one report. The change is ``stat(new) / stat(base)``; its CI comes from resampling the
units, never from the two summaries' point values, so the noise of both runs is in it.

Paired when possible: two simulator reports with the same seed send the same keys for the same trial, so the
simulator draws the same latencies for unit ``0:besluit`` in both (common random numbers). When both reports
hold exactly the same unit keys, the bootstrap resamples keys *jointly* (one draw picks the same units in both
runs), so what is left in the CI is what differs between the runs (client, machine), not the draws. Otherwise
(keys differ, a real endpoint with nothing keyed) the two runs are resampled independently.

The verdict needs the *whole* CI beyond the threshold: ``regression`` when it lies beyond ``1 + t`` (for a
figure where up is bad) or below ``1 - t`` (down is bad), ``improvement`` the other way round, else
``no change detected``. With fewer than two units on a side there is no CI: ``insufficient data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

Bad = Literal["up", "down"]
Stat = Literal["median", "p95", "mean"]

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no change detected"
INSUFFICIENT = "insufficient data"

DEFAULT_N_BOOT = 4000
DEFAULT_LEVEL = 0.95


def statistic(values: np.ndarray, stat: Stat, axis: int = -1) -> np.ndarray:
    """``stat`` of ``values`` along ``axis`` (p95 by linear interpolation, as the reports compute it)."""
    if stat == "median":
        return np.median(values, axis=axis)
    if stat == "p95":
        return np.percentile(values, 95, axis=axis)
    if stat == "mean":
        return np.mean(values, axis=axis)
    raise ValueError(f"unknown statistic {stat!r}")


@dataclass(frozen=True)
class RatioEstimate:
    """``new / base`` of one figure: the point values, the ratio and its bootstrap CI, and what it rests on."""

    base: float
    new: float
    ratio: float
    ci_low: float
    ci_high: float
    n_base: int
    n_new: int
    paired: bool


def _ratio(new: np.ndarray, base: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(new, dtype=float) / np.asarray(base, dtype=float)


def ratio_ci(
    base: Mapping[str, float],
    new: Mapping[str, float],
    stat: Stat,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    pairable: bool = True,
) -> RatioEstimate:
    """Percentile-bootstrap CI of ``stat(new) / stat(base)`` over the units (key -> value) of both reports;
    paired (keys resampled jointly) when ``pairable`` and both hold exactly the same keys. NaN CI below two
    units a side; two runs whose units are all the same value (a share that is 0 in both) are a ratio of 1."""
    b_keys, n_keys = sorted(base), sorted(new)
    b = np.array([base[k] for k in b_keys], dtype=float)
    n = np.array([new[k] for k in n_keys], dtype=float)
    point_b = float(statistic(b, stat)) if b.size else float("nan")
    point_n = float(statistic(n, stat)) if n.size else float("nan")
    ratio = float(_ratio(point_n, point_b)) if b.size and n.size else float("nan")
    paired = pairable and b_keys == n_keys
    if b.size < 2 or n.size < 2:
        return RatioEstimate(point_b, point_n, ratio, float("nan"), float("nan"), b.size, n.size, paired)
    if np.all(b == b[0]) and np.all(n == b[0]):  # nothing varies: no resample can differ either
        return RatioEstimate(point_b, point_n, 1.0, 1.0, 1.0, b.size, n.size, paired)
    rng = np.random.default_rng(seed)
    if paired:
        idx = rng.integers(0, b.size, size=(n_boot, b.size))
        boots = _ratio(statistic(n[idx], stat), statistic(b[idx], stat))
    else:
        ib = rng.integers(0, b.size, size=(n_boot, b.size))
        inn = rng.integers(0, n.size, size=(n_boot, n.size))
        boots = _ratio(statistic(n[inn], stat), statistic(b[ib], stat))
    boots = boots[~np.isnan(boots)]
    if boots.size == 0:  # every resample divided zero by zero (e.g. a share that is 0 in both runs)
        return RatioEstimate(point_b, point_n, ratio, float("nan"), float("nan"), b.size, n.size, paired)
    alpha = (1 - level) / 2
    # inverted_cdf picks resampled values instead of interpolating between them: a share that was 0 in some
    # resamples of the base gives infinite ratios there, and inf - inf would make the bound NaN
    lo, hi = np.quantile(boots, [alpha, 1 - alpha], method="inverted_cdf")
    return RatioEstimate(point_b, point_n, ratio, float(lo), float(hi), b.size, n.size, paired)


def verdict(ci_low: float, ci_high: float, threshold: float, bad: Bad) -> str:
    """``regression`` / ``improvement`` when the whole CI lies beyond ``1 ± threshold`` in the bad / good
    direction, ``no change detected`` otherwise; ``insufficient data`` without a CI (an infinite bound, a
    share that went up from zero, is still a bound)."""
    if np.isnan(ci_low) or np.isnan(ci_high):
        return INSUFFICIENT
    up, down = ci_low > 1 + threshold, ci_high < 1 - threshold
    if bad == "up":
        return REGRESSION if up else IMPROVEMENT if down else NO_CHANGE
    return REGRESSION if down else IMPROVEMENT if up else NO_CHANGE

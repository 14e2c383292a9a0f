"""What a load level measured, reduced to figures: percentiles, throughput and goodput per window, the knee.

Pure functions over :class:`GenRow` (one generation under load, times in model seconds since the level
started), so the figures can be checked on hand-made rows without a server. Why windows: a level's
measurement is split into consecutive windows of equal length, and the knee is found once over the whole
measurement and once per window; the spread of the per-window knees is the knee's uncertainty (a sweep is
one run, so there is no other honest source of it).

Counting rules (said once here, used everywhere). A generation is *measured* in a window when it overlaps it
(started before the window ends, ended after it began): under load a generation often lasts longer than a
window, so "started in the window" would leave long levels with no generation at all, and "ended in it" would
drop exactly the slow ones that are still running (survivor bias).

* **latency** (wall, time to first visible part) is over the measured generations, each with its whole wall
  (the sweep awaits them after the window); a generation cut when the drain time ran out (``censored``) keeps
  its elapsed time, a lower bound that is always above the SLO (the drain is at least the SLO);
* **throughput** (generations/min, goodput/min) counts each measured generation by the share of its wall that
  falls inside the window (a generation entirely inside counts 1, one half inside 0.5): in steady state that
  is the completion rate, with far less noise than counting the few completions of a short window; cut
  generations never count, and goodput counts only complete generations (six parts) within the SLO;
  ``generations_ended`` is the plain count of completions in the window beside it;
* **calls** (calls/min, 429s) count attempts that ended in the window; **in flight** is time-weighted over
  the window (mean), with its peak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

N_PARTS = 6
# A level is past saturation when its p95 wall grew by this factor over the previous level's while its
# throughput grew by less than THROUGHPUT_FLAT (guidellm's over-saturation stop, in two numbers; 20% leaves room
# for the noise of a few generations per level).
P95_CLIMB = 1.5
THROUGHPUT_FLAT = 1.2
N_BOOT = 2000
# A sweep also stops at a level whose p95 wall is over this many SLOs: the knee is behind it.
FAR_PAST_KNEE = 2.0


@dataclass
class GenRow:
    """One generation under load; times in model seconds since the level started."""

    t_start: float
    t_end: float
    parts_delivered: int = N_PARTS
    first_visible_s: float | None = None
    censored: bool = False  # cut when the drain time ran out: wall is a lower bound
    calls: list[tuple[float, float, bool]] = field(default_factory=list)  # (start, end, answered 429)

    @property
    def wall_s(self) -> float:
        return self.t_end - self.t_start

    @property
    def complete(self) -> bool:
        return not self.censored and self.parts_delivered == N_PARTS


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def _peak(intervals: Sequence[tuple[float, float]], lo: float, hi: float) -> int:
    """Most intervals open at once within [lo, hi)."""
    events: list[tuple[float, int]] = []
    for a, b in intervals:
        a, b = max(a, lo), min(b, hi)
        if b > a:
            events += [(a, 1), (b, -1)]
    peak = now = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def _share(r: GenRow, lo: float, hi: float) -> float:
    """How much of the generation's wall lies in [lo, hi): its weight in the throughput of that window."""
    if r.wall_s <= 0:
        return 1.0 if lo <= r.t_end < hi else 0.0
    return _overlap(r.t_start, r.t_end, lo, hi) / r.wall_s


def window_figures(rows: Sequence[GenRow], lo: float, hi: float, slo_s: float) -> dict[str, Any]:
    """The figures of one window [lo, hi) (model seconds since the level started); see the module docstring."""
    minutes = (hi - lo) / 60.0
    measured = [r for r in rows if r.t_start < hi and r.t_end > lo]
    walls = [r.wall_s for r in measured]
    visible = [r.first_visible_s for r in measured if r.first_visible_s is not None]
    calls = [c for r in rows for c in r.calls]
    finished = [r for r in measured if not r.censored]
    good = [r for r in finished if r.complete and r.wall_s <= slo_s]
    return {
        "generations_measured": len(measured),
        "generations_started": sum(1 for r in measured if r.t_start >= lo),
        "generations_ended": sum(1 for r in finished if r.t_end < hi),
        "generations_complete": sum(1 for r in measured if r.complete),
        "generations_cut": sum(1 for r in measured if r.censored),
        "parts_delivered": sum(r.parts_delivered for r in measured),
        "parts_asked": N_PARTS * len(measured),
        "within_slo": len(good),
        "wall_p50_s": _pct(walls, 50),
        "wall_p95_s": _pct(walls, 95),
        "wall_p99_s": _pct(walls, 99),
        "wall_max_s": max(walls, default=None),
        "first_visible_p50_s": _pct(visible, 50),
        "first_visible_p95_s": _pct(visible, 95),
        "generations_per_min": sum(_share(r, lo, hi) for r in finished) / minutes,
        "goodput_per_min": sum(_share(r, lo, hi) for r in good) / minutes,
        "calls_per_min": sum(1 for c in calls if lo <= c[1] < hi) / minutes,
        "rate_limited_429": sum(1 for c in calls if c[2] and lo <= c[1] < hi),
        "calls_in_flight_mean": sum(_overlap(a, b, lo, hi) for a, b, _ in calls) / (hi - lo),
        "calls_in_flight_peak": _peak([(a, b) for a, b, _ in calls], lo, hi),
        "generations_in_flight_mean": sum(_overlap(r.t_start, r.t_end, lo, hi) for r in rows) / (hi - lo),
    }


def level_figures(
    rows: Sequence[GenRow], warmup_s: float, duration_s: float, windows: int, slo_s: float
) -> dict[str, Any]:
    """The whole measurement's figures plus ``windows``: the same figures per consecutive window."""
    lo, hi = warmup_s, warmup_s + duration_s
    out = window_figures(rows, lo, hi, slo_s)
    out["walls_s"] = sorted(round(r.wall_s, 4) for r in rows if r.t_start < hi and r.t_end > lo)
    step = duration_s / windows
    out["windows"] = [
        {
            k: v
            for k, v in window_figures(rows, lo + i * step, lo + (i + 1) * step, slo_s).items()
            if k in _WINDOW_KEYS
        }
        for i in range(windows)
    ]
    return out


_WINDOW_KEYS = ("generations_measured", "wall_p95_s", "generations_per_min", "goodput_per_min")


def saturated(prev: dict[str, Any], cur: dict[str, Any], slo_s: float) -> bool:
    """Past saturation: the p95 wall climbs (by P95_CLIMB or more, and is over the SLO) while throughput stays
    flat (grew by less than THROUGHPUT_FLAT). Higher loads would only queue longer."""
    p_prev, p_cur = prev.get("wall_p95_s"), cur.get("wall_p95_s")
    if p_prev is None or p_cur is None or p_cur <= slo_s:
        return False
    flat = cur["generations_per_min"] <= THROUGHPUT_FLAT * prev["generations_per_min"]
    return p_cur >= P95_CLIMB * p_prev and flat


@dataclass(frozen=True)
class Knee:
    """The highest load whose p95 wall stays within the SLO.

    ``level``: the highest tested load before the first one over the SLO (None: even the lowest is over);
    ``next_level``: that first load over the SLO (None: every tested load was within it, so the true knee
    is at or above ``level``); ``interpolated``: where the p95 crosses the SLO, linear between the two;
    ``ci_low``/``ci_high``: a 95% bootstrap interval of the knee (each level's measured walls resampled, the
    crossing found again; a resample over the SLO at the lowest load counts as 0, one within it at every load
    as the highest load), the uncertainty to quote; ``low``/``high``: the range of the per-window knees
    (``windows``), a second view (windows share the generations that span them, so it understates)."""

    level: float | None
    next_level: float | None
    interpolated: float | None
    low: float | None
    high: float | None
    windows: list[float | None]
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, unit: str) -> str:
        if self.level is None:
            return f"none (already over the SLO at {self.next_level:g} {unit})"
        if self.next_level is None:
            return f"at least {self.level:g} {unit} (every tested load within the SLO)"
        crossing = "" if self.interpolated is None else f"crossing at ~{self.interpolated:.3g}"
        if self.ci_low is not None and self.ci_high is not None:
            crossing += f"{', ' if crossing else ''}95% CI {self.ci_low:.3g}-{self.ci_high:.3g}"
        elif self.low is not None and self.high is not None:
            crossing += f"{', ' if crossing else ''}windows {self.low:.3g}-{self.high:.3g}"
        over = f"{self.next_level:g} is over"
        return (
            f"{self.level:g} {unit} ({crossing}; {over})" if crossing else f"{self.level:g} {unit} ({over})"
        )


def _crossing(loads: Sequence[float], p95s: Sequence[float | None], slo_s: float) -> tuple[Any, Any, Any]:
    """(last load within the SLO, first load over it, interpolated crossing) over loads in rising order."""
    last = None
    for i, (load, p) in enumerate(zip(loads, p95s, strict=True)):
        if p is None or p > slo_s:
            if last is None:
                return None, load, None
            prev_p = p95s[i - 1]
            if p is None or prev_p is None or not math.isfinite(p) or p == prev_p:
                return last, load, None
            return last, load, last + (slo_s - prev_p) / (p - prev_p) * (load - last)
        last = load
    return last, None, None


def find_knee(levels: Sequence[dict[str, Any]], load_key: str, slo_s: float) -> Knee:
    """The knee of one strategy's levels (dicts from :func:`level_figures` with ``load_key`` set)."""
    ordered = sorted(levels, key=lambda lv: lv[load_key])
    loads = [float(lv[load_key]) for lv in ordered]
    level, nxt, interp = _crossing(loads, [lv["wall_p95_s"] for lv in ordered], slo_s)
    n_windows = min((len(lv.get("windows") or []) for lv in ordered), default=0)
    per_window: list[float | None] = []
    for w in range(n_windows):
        p95s = [lv["windows"][w]["wall_p95_s"] for lv in ordered]
        w_level, _, w_interp = _crossing(loads, p95s, slo_s)
        per_window.append(w_interp if w_interp is not None else w_level)
    known = [k for k in per_window if k is not None]
    ci = _bootstrap_knee(loads, [lv.get("walls_s") for lv in ordered], slo_s)
    return Knee(
        level=level,
        next_level=nxt,
        interpolated=interp,
        low=min(known) if known else None,
        high=max(known) if known else None,
        windows=per_window,
        ci_low=ci[0],
        ci_high=ci[1],
    )


def _bootstrap_knee(
    loads: Sequence[float], walls: Sequence[Sequence[float] | None], slo_s: float, n_boot: int = N_BOOT
) -> tuple[float | None, float | None]:
    """95% interval of the knee over resamples of each level's walls (see :class:`Knee`); (None, None) when
    a level has no walls to resample (figures from elsewhere)."""
    if not loads or any(not w for w in walls):
        return None, None
    rng = np.random.default_rng(0)  # fixed: the same figures give the same interval
    arrays = [np.asarray(w, dtype=float) for w in walls]
    p95 = np.stack([np.percentile(rng.choice(a, size=(n_boot, len(a))), 95, axis=1) for a in arrays], axis=1)
    knees = []
    for row in p95:
        last, _, interp = _crossing(loads, list(row), slo_s)
        knees.append(interp if interp is not None else (0.0 if last is None else last))
    lo, hi = np.percentile(knees, [2.5, 97.5])
    return float(lo), float(hi)


def parallel_stops_paying(
    levels: Sequence[dict[str, Any]], load_key: str, *, against: str = "sequential", fan_out: str = "parallel"
) -> float | None:
    """The lowest load at which ``fan_out`` has lost both its edges over ``against``: its goodput is not 5%
    higher and its median wall is not 10% shorter (the margins keep noise from deciding); None when that
    never happened in the loads both strategies ran."""
    by: dict[str, dict[float, dict[str, Any]]] = {}
    for lv in levels:
        by.setdefault(lv["strategy"], {})[float(lv[load_key])] = lv
    a, b = by.get(against, {}), by.get(fan_out, {})
    for load in sorted(set(a) & set(b)):
        pa, pb = a[load]["wall_p50_s"], b[load]["wall_p50_s"]
        no_goodput_edge = b[load]["goodput_per_min"] <= 1.05 * a[load]["goodput_per_min"]
        no_latency_edge = pa is None or pb is None or pb > 0.9 * pa
        if no_goodput_edge and no_latency_edge:
            return load
    return None

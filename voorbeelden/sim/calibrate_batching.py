"""Fit how a server slows concurrent calls down (its batching curve) from measured call records.

A batching server (llama.cpp's ``llama-server -np N``, vLLM, TGI, hosted APIs) decodes concurrent streams in
shared steps: each stream gets slower as more share the server, up to a maximum batch beyond which calls
queue. The simulator models that as processor sharing (:mod:`voorbeelden.sim.batching`); this module finds
the model's two numbers from records:

* every call's *work* is its fitted solo service time (time to first token of its part + its output tokens
  at the solo token rate: the fit of the calls that ran alone, see :mod:`voorbeelden.sim.calibrate`);
* every generation whose calls overlapped is replayed with its observed start times on a server with
  ``max_batch`` slots and the step-model curve ``speed(n) = 1 / (1 + cost * (n - 1))``
  (:meth:`~voorbeelden.sim.profiles.Batching.step_model`), for every ``max_batch`` up to the most calls the
  client had open and a grid of costs (0 = calls do not slow each other);
* the pair whose replayed end times are closest to the observed ones (summed absolute error over all calls)
  wins; among ``max_batch`` values within 2% of the best error the largest is kept: queueing must show in
  the timings to be believed (a smaller batch and a slightly different cost can mimic a larger batch when
  few calls reach it);
* then each level's speed is freed from the one-number shape (:func:`_free_levels`): a real server's curve
  need not be a step model. Measured on llama-server with one decode thread (2026-12-02): three streams
  gave no more throughput than one, six gave 1.2x (six prompts read in one batch); the best step model
  (1.03x everywhere) predicted the parallel wall 26% too long. A level is moved only while that lowers the
  replay error by more than 0.5% of the work; per-stream speed never rises and total throughput never falls
  with more streams, and levels the records barely reach keep the step model's value.

The concurrency levels come from the overlap of a generation's own calls (every strategy that runs calls at
once: parallel, bounded with k = 2, 3, ...), so runs at several concurrency levels pin the curve down best.
Beside the fit, :func:`observed_speeds` gives the per-stream speed each level showed directly (a check of
the curve's shape, not an input to it).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from voorbeelden.sim.batching import replay
from voorbeelden.sim.profiles import Batching

COSTS = np.concatenate([[0.0], np.geomspace(0.01, 4.0, 28)])
# a curve is kept when it explains the timings better than the best no-slowdown server by this share of
# the replayed calls' work; below it the plain capacity fit says as much
MIN_GAIN = 0.05
SAME_ERROR = 0.02


@dataclass(frozen=True)
class BatchingFit:
    """The fitted curve (None: calls did not measurably slow each other) and the evidence."""

    batching: Batching | None
    max_batch: int | None
    cost: float | None
    error_s: float  # summed |replayed - observed| end times of the best model
    error_no_slowdown_s: float  # the same for the best model with cost 0 (a plain slot server)
    work_s: float  # summed work of the replayed calls (the scale of both errors)
    n_generations: int
    n_calls: int
    most_in_flight: int

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["batching"] = None if self.batching is None else self.batching.to_dict()
        return d


@dataclass(frozen=True)
class _Gen:
    starts: np.ndarray
    ends: np.ndarray
    works: np.ndarray
    orders: tuple[np.ndarray, ...]


def _generations(df: pd.DataFrame, ttft: Mapping[str, float], s_per_token: float) -> list[_Gen]:
    gens = []
    for _, grp in df[~df["solo"]].groupby("gen", sort=False):
        if len(grp) < 2:
            continue
        starts = grp["t_start"].to_numpy(float)
        ends = grp["t_end"].to_numpy(float)
        works = np.array(
            [ttft.get(p, 0.0) + s_per_token * t for p, t in zip(grp["part"], grp["tokens_out"], strict=True)]
        )
        # calls sent within a millisecond reach the server in any order: try the order sent and the order
        # they ended (a queueing server finishes them in the order it took them)
        by_start, by_end = np.argsort(starts, kind="stable"), np.argsort(ends, kind="stable")
        orders = (by_start,) if (by_start == by_end).all() else (by_start, by_end)
        gens.append(_Gen(starts, ends, works, orders))
    return gens


def _most_at_once(starts: np.ndarray, ends: np.ndarray) -> int:
    """The most calls open at the same moment (a retry that overlaps different calls at different times
    counts once, unlike the per-call overlap count)."""
    events = sorted(
        [(float(t), 1) for t in starts] + [(float(t), -1) for t in ends], key=lambda e: (e[0], e[1])
    )
    open_now = most = 0
    for _, step in events:
        open_now += step
        most = max(most, open_now)
    return most


def _error(gens: list[_Gen], batching: Batching) -> float:
    return float(
        sum(
            min(np.abs(replay(g.starts, g.works, batching, o) - g.ends).sum() for o in g.orders) for g in gens
        )
    )


def fit_batching(df: pd.DataFrame, ttft: Mapping[str, float], s_per_token: float) -> BatchingFit:
    """The best (max_batch, cost) for the overlapping generations in ``df`` (rows marked ``solo``, ``gen``,
    ``in_flight`` by the calibration), given each part's fitted TTFT and the solo seconds per output token."""
    gens = _generations(df, ttft, s_per_token)
    most = max((_most_at_once(g.starts, g.ends) for g in gens), default=1)
    work = float(sum(g.works.sum() for g in gens))
    n_calls = int(sum(len(g.starts) for g in gens))
    if not gens:
        return BatchingFit(None, None, None, 0.0, 0.0, 0.0, 0, 0, most)
    errors = {
        (b, cost): _error(gens, Batching.step_model(b, cost)) for b in range(1, most + 1) for cost in COSTS
    }
    best = min(errors.values())
    b_best = max(b for (b, _), e in errors.items() if e <= best + SAME_ERROR * work)
    cost_best = min((e, c) for (b, c), e in errors.items() if b == b_best)[1]
    cost_best = _refine(gens, b_best, cost_best)
    step = Batching.step_model(b_best, cost_best, "fitted step model (voorbeelden calibrate)")
    err = _error(gens, step)
    plain = min(e for (_, c), e in errors.items() if c == 0.0)
    keep = b_best > 1 and cost_best > 0 and plain - err > MIN_GAIN * work
    curve = None
    if keep:
        curve, err = _free_levels(gens, step, err, work)
        if b_best < most:  # freed levels may explain with every call served what the step model queued
            wide, wide_err = _free_levels(
                gens,
                Batching.step_model(most, cost_best),
                _error(gens, Batching.step_model(most, cost_best)),
                work,
            )
            if wide_err <= err + SAME_ERROR * work:
                curve, err, b_best = wide, wide_err, most
    return BatchingFit(
        batching=curve,
        max_batch=b_best if keep else None,
        cost=cost_best if keep else None,
        error_s=err,
        error_no_slowdown_s=plain,
        work_s=work,
        n_generations=len(gens),
        n_calls=n_calls,
        most_in_flight=most,
    )


FREE_STEP = 0.005  # a level moves only when that lowers the replay error by this share of the work
FREE_FACTORS = np.geomspace(0.6, 1.6, 21)


def _free_levels(gens: list[_Gen], start: Batching, err: float, work: float) -> tuple[Batching, float]:
    """Coordinate descent on each level's speed (2..max_batch), starting from the step model: every sweep
    tries each level at 0.6-1.6x its speed (kept between its neighbours: per-stream speed never rises and
    total throughput never falls with more streams) and keeps a move that lowers the replay error by more than FREE_STEP of the work;
    sweeps narrow the range until nothing moves. Returns the step model itself when no level moved."""
    speed = list(start.speed)
    moved_any = False
    factors = FREE_FACTORS
    for _ in range(6):
        moved = False
        for i in range(1, len(speed)):
            n = i + 1  # streams at this level
            hi = speed[i - 1]
            if i + 1 < len(speed):
                hi = min(hi, speed[i + 1] * (n + 1) / n)  # throughput at n + 1 no lower than at n
                lo = max(speed[i + 1], speed[i - 1] * (n - 1) / n)
            else:
                lo = speed[i - 1] * (n - 1) / n
            if lo > hi:
                continue
            best_v, best_e = speed[i], err
            for f in factors:
                v = float(min(hi, max(lo, speed[i] * f)))
                if v == speed[i]:
                    continue
                e = _error(gens, Batching((*speed[:i], v, *speed[i + 1 :])))
                if e < best_e - FREE_STEP * work:
                    best_v, best_e = v, e
            if best_v != speed[i]:
                speed[i], err, moved = best_v, best_e, True
        moved_any |= moved
        if not moved:
            factors = np.sqrt(factors)  # narrower: 0.77-1.26x, then 0.88-1.12x, ...
            if factors[-1] < 1.01:
                break
    if not moved_any:
        return start, err
    return Batching(tuple(speed), "fitted per-level curve (voorbeelden calibrate)"), err


def _refine(gens: list[_Gen], b: int, cost: float) -> float:
    """Golden-section search for the cost around the grid's best (the error is smooth in it)."""
    if cost == 0.0:
        return 0.0
    i = int(np.searchsorted(COSTS, cost))
    lo, hi = COSTS[max(1, i - 1)], COSTS[min(len(COSTS) - 1, i + 1)]
    g = (np.sqrt(5) - 1) / 2
    for _ in range(20):
        a, c = hi - g * (hi - lo), lo + g * (hi - lo)
        if _error(gens, Batching.step_model(b, a)) <= _error(gens, Batching.step_model(b, c)):
            hi = c
        else:
            lo = a
    return float((lo + hi) / 2)


def observed_speeds(df: pd.DataFrame, ttft: Mapping[str, float], s_per_token: float) -> pd.DataFrame:
    """Per concurrency level ``n`` (calls of the generation open at once, from the overlap): the speed the
    calls showed, relative to solo, by least squares on ``work_i = sum_n speed_n * time_i(n)`` (a call's
    work is done at the speed of each level for the time it spent at that level). Assumes nothing queued
    (every open call was being served); a level with too little time under it is left out."""
    rows: list[np.ndarray] = []
    works: list[float] = []
    for _, grp in df.groupby("gen", sort=False):
        s = grp["t_start"].to_numpy(float)
        e = grp["t_end"].to_numpy(float)
        edges = np.unique(np.concatenate([s, e]))
        for k, (p, t) in enumerate(zip(grp["part"], grp["tokens_out"], strict=True)):
            at = np.zeros(int(grp["in_flight"].max()) + 1)
            for a, b in itertools.pairwise(edges):
                if a >= s[k] and b <= e[k]:
                    n = int(((s < b) & (e > a)).sum())
                    at[n] += b - a
            rows.append(at)
            works.append(ttft.get(p, 0.0) + s_per_token * t)
    if not rows:
        return pd.DataFrame(columns=["streams", "speed", "seconds"])
    width = max(len(r) for r in rows)
    x = np.array([np.pad(r, (0, width - len(r))) for r in rows])[:, 1:]
    keep = x.sum(axis=0) > 0.02 * x.sum()
    sol, *_ = np.linalg.lstsq(x[:, keep], np.array(works), rcond=None)
    levels = np.arange(1, width)[keep]
    return pd.DataFrame(
        {"streams": levels, "speed": sol, "seconds": x[:, keep].sum(axis=0), "throughput": levels * sol}
    )

"""The server's effective concurrency (slot count) from the timings of overlapping calls.

Part of the calibration (:mod:`voorbeelden.sim.calibrate`): its generations whose calls overlapped are
replayed on a first-come-first-served server with 1, 2, ... slots (each slot count with the scale factor,
0.5x-2x, that suits it best) and the fewest slots whose end times match the observed ones is that
generation's estimate; see :func:`_concurrency`. A server that slows calls down as it serves more at once
is fitted by :mod:`voorbeelden.sim.calibrate_batching` instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Concurrency:
    """The server's effective concurrency: ``capacity`` (None = no limit observed) and the evidence."""

    capacity: int | None
    busy_median: float | None  # mean requests in service at once, median over overlapping generations
    in_flight_median: float | None  # most calls the client had open at once, median over those generations
    n_generations: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fifo_ends(
    starts: Sequence[float], services: Sequence[float], slots: int, order: Sequence[int] | None = None
) -> np.ndarray:
    """When each call would end on a server with ``slots`` slots taking calls in ``order`` (default: by
    start time)."""
    if order is None:
        order = np.argsort(np.asarray(starts, float), kind="stable")
    free = [0.0] * slots
    ends = np.zeros(len(order))
    for i in order:
        k = int(np.argmin(free))
        begin = max(float(starts[i]), free[k])
        free[k] = begin + float(services[i])
        ends[i] = free[k]
    return ends


_SCALES = np.geomspace(0.5, 2.0, 25)


def _replay(grp: pd.DataFrame, service: Mapping[str, float], slope: float) -> tuple[int, np.ndarray]:
    """The fewest slots whose replay explains one generation's end times, and its calls' fitted service
    times."""
    starts = grp["t_start"].to_numpy(float)
    ends = grp["t_end"].to_numpy(float)
    services = np.array(
        [service.get(p, 0.0) + slope * t for p, t in zip(grp["part"], grp["tokens_out"], strict=True)]
    )
    most = int(grp["in_flight"].max())
    # Taken in the order they were sent, or in the order they ended: calls sent within a millisecond
    # reach the server in any order, and a server that takes one call at a time finishes them in the
    # order it took them. Each slot count gets the better of the two.
    # Each slot count also gets the service times scaled by the factor that fits it best (0.5x to 2x):
    # a service-time fit from few calls, or a machine busier than when the solo calls ran, must not
    # pass for a different number of slots.
    orders = (np.argsort(starts, kind="stable"), np.argsort(ends, kind="stable"))
    errors = np.array(
        [
            min(np.abs(fifo_ends(starts, services * a, c, o) - ends).sum() for o in orders for a in _SCALES)
            for c in range(1, most + 1)
        ]
    )
    # The fewest slots that explain the timings (within 5% of the work): more slots than that change
    # nothing a client could measure.
    good = np.flatnonzero(errors <= errors.min() + 0.05 * services.sum())
    return 1 + int(good[0]), services


def _concurrency(df: pd.DataFrame, service: Mapping[str, float], slope: float) -> Concurrency:
    """For each generation whose calls overlapped: replay its calls (their start times, their fitted service
    times) on a first-come-first-served server with 1, 2, ... slots and keep the slot count whose end times
    match the observed ones best. The median of those is the capacity; when the best match is as many slots
    as the client had calls in flight, nothing queued and no limit was observed (None)."""
    best: list[int] = []
    busy: list[float] = []
    flight: list[float] = []
    waited: list[bool] = []
    for _, grp in df[~df["solo"]].groupby("gen", sort=False):
        if len(grp) < 2:
            continue
        slots, services = _replay(grp, service, slope)
        # A call that took well over its service time waited for the server.
        waited += list(grp["latency_s"].to_numpy(float) > 1.25 * services + 0.005)
        best.append(slots)
        flight.append(float(grp["in_flight"].max()))
        span = float(grp["t_end"].to_numpy(float).max() - grp["t_start"].to_numpy(float).min())
        if span > 0:
            busy.append(float(services.sum()) / span)
    if not best:
        return Concurrency(capacity=None, busy_median=None, in_flight_median=None, n_generations=0)
    c = sorted(best)[(len(best) - 1) // 2]  # the lower median: two generations that disagree give the fewer
    f = float(np.median(flight))
    # Hardly any overlapping call waited: the server served everything the client had open at once.
    capacity = None if (c >= f or float(np.mean(waited)) < 0.2) else max(1, c)
    return Concurrency(
        capacity=capacity,
        busy_median=float(np.median(busy)) if busy else None,
        in_flight_median=f,
        n_generations=len(best),
    )

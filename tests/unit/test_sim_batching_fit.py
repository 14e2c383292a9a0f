"""The batching curve's fit: synthetic call records from a server with a known curve (the simulator's own
replay model) come back as that curve; a server that does not slow calls down gets no curve."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest

from voorbeelden.sim.batching import replay_times
from voorbeelden.sim.calibrate import calibrate, profile_to_dict
from voorbeelden.sim.calibrate_batching import observed_speeds
from voorbeelden.sim.profiles import Batching, profile_from_dict
from voorbeelden.types import ALL_PARTS

PARTS = [p.value for p in ALL_PARTS]
TOKENS = dict(zip(PARTS, (110, 190, 120, 45, 45, 120), strict=True))
TTFT, PER_TOKEN = 0.08, 1 / 90


def work(part: str) -> float:
    return TTFT + PER_TOKEN * TOKENS[part]


def rec(part: str, start: float, end: float, gen: str, **kw: Any) -> dict[str, Any]:
    return {
        "part": part,
        "status": "ok",
        "t_start": start,
        "t_end": end,
        "latency_s": end - start,
        "tokens_out": TOKENS[part],
        "run_id": "r",
        "trial": gen,
        **kw,
    }


def records(curve: Batching, trials: int = 3, jitter: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Sequential generations (solo calls, the service fit) and generations at 2, 3 and 6 calls at once
    (bounded with k 2 and 3, parallel), their end times from the batching model, optionally jittered."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for t in range(trials):
        clock = 0.0
        for p in PARTS:
            rows.append(rec(p, clock, clock + work(p), f"seq{t}", strategy="sequential"))
            clock += work(p) + 0.003
        for k in (2, 3, 6):
            sent = np.array([0.001 * i for i in range(6)])
            works = np.array([work(p) for p in PARTS])
            # the client keeps k calls open: a call starts when it gets one of k places
            starts, ends = replay_times(sent, works, Batching(curve.speed[:k]))
            ends = ends * (1 + jitter * rng.standard_normal(6))
            rows += [
                rec(p, float(s), float(e), f"k{k}-{t}", strategy=f"bounded{k}")
                for p, s, e in zip(PARTS, starts, ends, strict=True)
            ]
    return pd.DataFrame(rows)


def test_a_known_step_curve_comes_back():
    truth = Batching.step_model(6, 0.3)
    cal = calibrate(records(truth))
    fit = cal.batching_fit
    assert fit is not None and fit.batching is not None
    assert fit.max_batch == 6
    assert fit.cost == pytest.approx(0.3, rel=0.05)
    assert cal.capacity is None  # the curve's max batch limits the server, not a slot count
    assert cal.profile().batching == fit.batching
    # the profile file carries it and loads back
    again = profile_from_dict(dict(profile_to_dict(cal.profile()), name="x"))
    assert again.batching is not None and again.batching.speed == pytest.approx(fit.batching.speed)


def test_the_curve_survives_noisy_timings():
    truth = Batching.step_model(6, 0.5)
    cal = calibrate(records(truth, trials=5, jitter=0.05, seed=1))
    fit = cal.batching_fit
    assert fit is not None and fit.batching is not None
    assert fit.batching.rate(6) == pytest.approx(truth.rate(6), rel=0.15)


def test_a_curve_that_is_not_a_step_model_is_approximated_at_full_batch():
    truth = Batching((1.0, 0.8, 0.65, 0.55, 0.45, 0.4))
    fit = calibrate(records(truth)).batching_fit
    assert fit is not None and fit.batching is not None
    assert fit.batching.throughput(6) == pytest.approx(truth.throughput(6), rel=0.15)


def test_no_slowdown_means_no_curve():
    flat = Batching((1.0,) * 6)
    cal = calibrate(records(flat))
    assert cal.batching_fit is not None and cal.batching_fit.batching is None
    assert cal.profile().batching is None


def test_observed_speeds_per_level_follow_the_curve():
    truth = Batching.step_model(6, 0.3)
    df = records(truth)
    cal = calibrate(df)
    from voorbeelden.sim.calibrate import usable_records

    usable = usable_records(df)
    ttft = {p: cal.parts[p].ttft.median for p in PARTS}
    speeds = observed_speeds(usable, ttft, cal.seconds_per_token).set_index("streams")["speed"]
    assert speeds[1] == pytest.approx(1.0, abs=0.05)
    assert speeds[6] == pytest.approx(truth.rate(6), rel=0.1)


def test_max_batch_counts_calls_open_at_the_same_moment_not_all_a_call_overlapped():
    """A retry that overlaps different calls at different times (seen on llama-server: a parse retry made a
    six-part generation look like seven calls at once) does not raise the batch the fit may use."""
    from voorbeelden.sim.calibrate_batching import _most_at_once

    assert _most_at_once(np.array([0.0, 0.0, 5.0]), np.array([10.0, 4.0, 10.0])) == 2
    assert _most_at_once(np.array([0.0, 1.0]), np.array([1.0, 2.0])) == 1  # one ends as the next starts


def test_a_curve_whose_throughput_jumps_at_full_batch_is_followed_per_level():
    """Shaped like llama-server with one decode thread (measured 2026-12-02): no throughput gain at 2-3
    streams, 1.2x at 6. No step model fits both ends; the freed levels do, at the levels the records reach
    (3 calls at once for bounded k=3, 6 for parallel)."""
    truth = Batching((1.0, 0.5, 1 / 3, 0.25, 0.2, 0.2))
    fit = calibrate(records(truth, trials=3)).batching_fit
    assert fit is not None and fit.batching is not None
    assert fit.max_batch == 6
    assert fit.batching.source.startswith("fitted per-level curve")
    assert fit.batching.throughput(6) == pytest.approx(1.2, rel=0.05)
    assert fit.batching.throughput(3) == pytest.approx(1.0, rel=0.05)
    speeds = fit.batching.speed
    assert all(a >= b for a, b in itertools.pairwise(speeds))  # never faster with more streams

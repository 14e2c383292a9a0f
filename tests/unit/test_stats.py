"""Statistics of the benchmark harness: pairing, bootstrap CI, bounds and fault predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from voorbeelden.experiments import stats
from voorbeelden.experiments.retries import predicted_delivery
from voorbeelden.sim.profiles import LogNormal, PartProfile, Profile


def _gens(
    pairs: list[tuple[float, float, float, float]], *, warmup: bool = False, profile: str = "p"
) -> list[dict]:
    """(sequential wall, parallel wall, sum latency, max latency) per pair -> generation rows."""
    rows = []
    for i, (seq, par, total, mx) in enumerate(pairs):
        for strategy, wall in (("sequential", seq), ("parallel", par)):
            rows.append(
                {
                    "profile": profile,
                    "strategy": strategy,
                    "pair": f"{'w' if warmup else ''}{i}:b",
                    "begrip": "b",
                    "trial": i,
                    "warmup": warmup,
                    "wall_s": wall,
                    "sum_latency_s": total,
                    "max_latency_s": mx,
                    "n_ok": 6,
                    "n_failed": 0,
                    "n_calls": 6,
                }
            )
    return rows


def test_bootstrap_ci_is_seeded_and_brackets_the_median() -> None:
    x = np.random.default_rng(1).normal(10, 2, size=40)
    a = stats.bootstrap_ci(x, seed=3)
    b = stats.bootstrap_ci(x, seed=3)
    assert a == b
    assert a[0] < np.median(x) < a[1]
    assert stats.bootstrap_ci([2.0]) == (2.0, 2.0)
    assert all(np.isnan(v) for v in stats.bootstrap_ci([]))


def test_paired_speedups_divide_within_a_pair_and_skip_warmup() -> None:
    rows = _gens([(12.0, 2.0, 12.0, 2.0), (10.0, 4.0, 10.0, 5.0)]) + _gens([(100.0, 1.0, 6, 1)], warmup=True)
    pairs = stats.paired_speedups(pd.DataFrame(rows)).set_index("pair")
    assert len(pairs) == 2
    assert pairs.loc["0:b", "speedup"] == pytest.approx(6.0)
    assert pairs.loc["1:b", "speedup"] == pytest.approx(2.5)
    assert pairs.loc["1:b", "trial_bound"] == pytest.approx(2.0)


def test_speedup_summary_reports_median_ci_bounds_and_efficiency() -> None:
    rows = _gens([(6.0, 2.0, 6.0, 1.5)] * 5 + [(6.0, 3.0, 6.0, 1.5)] * 4, profile="x")
    pairs = stats.paired_speedups(pd.DataFrame(rows), by=("profile",))
    summary = stats.speedup_summary(pairs, by=("profile",), expected={"x": 4.2})
    row = summary.iloc[0]
    assert row["n_pairs"] == 9
    assert row["speedup_median"] == pytest.approx(3.0)
    assert row["ci_low"] <= 3.0 <= row["ci_high"]
    assert row["trial_bound_median"] == pytest.approx(4.0)
    assert row["expected_bound"] == pytest.approx(4.2)
    assert row["efficiency"] == pytest.approx(0.75)


def test_wall_summary_and_overhead() -> None:
    g = pd.DataFrame(_gens([(6.1, 1.05, 6.0, 1.0), (6.3, 1.2, 6.0, 1.0)]))
    walls = stats.wall_summary(g).set_index("strategy")
    assert walls.loc["sequential", "median_s"] == pytest.approx(6.2)
    assert walls.loc["parallel", "p95_s"] <= 1.2
    over = stats.overhead(g).set_index("strategy")
    assert over.loc["sequential", "median_ms"] == pytest.approx(200.0)
    assert over.loc["parallel", "median_ms"] == pytest.approx(125.0)


def _constant_profile(seconds: dict[str, float]) -> Profile:
    parts = {p: PartProfile(LogNormal(0.0), LogNormal(s * 100), LogNormal(100.0)) for p, s in seconds.items()}
    return Profile("const", "", "", parts, next(iter(parts.values())))


def test_expected_bound_is_six_only_for_six_equal_calls() -> None:
    equal = _constant_profile({p: 2.0 for p in stats.ALL_PARTS_VALUES})
    assert stats.expected_bound(equal, n=200)["bound"] == pytest.approx(6.0)
    field = _constant_profile(dict(zip(stats.ALL_PARTS_VALUES, [3, 30, 9, 2, 2, 5], strict=True)))
    result = stats.expected_bound(field, n=200)
    assert result["bound"] == pytest.approx(51 / 30)
    assert result["slowest_part"] == "praktijkvoorbeelden"


def test_expected_bound_of_the_simulator_profiles() -> None:
    uniform = stats.expected_bound("uniform-2s", n=1000)
    assert 5.5 < uniform["bound"] < 6.0  # E[max of six] is above the mean even with a tiny spread
    capped = {"praktijkvoorbeelden": 1500}
    field = stats.expected_bound("definitie-app", n=1000, max_tokens=capped)
    assert 1.5 < field["bound"] < 1.9
    assert field["slowest_part"] == "praktijkvoorbeelden"


def test_fault_summary_and_prediction() -> None:
    assert predicted_delivery(0.5, 2) == pytest.approx(0.875)
    assert predicted_delivery(0.0, 2) == 1.0
    rows = [
        {
            "fault_kind": "500",
            "fault_rate": 0.5,
            "warmup": False,
            "n_ok": 5,
            "n_failed": 1,
            "n_calls": 10,
            "wall_s": 1.0,
        },
        {
            "fault_kind": "500",
            "fault_rate": 0.5,
            "warmup": False,
            "n_ok": 6,
            "n_failed": 0,
            "n_calls": 8,
            "wall_s": 2.0,
        },
        {
            "fault_kind": "malformed",
            "fault_rate": 0.5,
            "warmup": False,
            "n_ok": 3,
            "n_failed": 3,
            "n_calls": 6,
            "wall_s": 1.0,
        },
    ]
    out = stats.fault_summary(pd.DataFrame(rows), max_retries=2).set_index("fault_kind")
    assert out.loc["500", "parts_delivered"] == pytest.approx(11 / 12)
    assert out.loc["500", "complete"] == pytest.approx(0.5)
    assert out.loc["500", "retries_per_gen"] == pytest.approx(3.0)
    assert out.loc["500", "predicted"] == pytest.approx(0.875)
    assert np.isnan(out.loc["malformed", "predicted"])

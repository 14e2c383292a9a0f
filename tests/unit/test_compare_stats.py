"""The ratio-with-CI and the verdict behind ``voorbeelden compare`` (voorbeelden.report.compare_stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voorbeelden.report import compare_stats as cs


def _units(values):
    return {f"0:{i}": float(v) for i, v in enumerate(values)}


def test_verdict_needs_the_whole_ci_beyond_the_threshold_in_the_bad_direction():
    assert cs.verdict(1.06, 1.20, 0.05, "up") == cs.REGRESSION
    assert cs.verdict(1.04, 1.20, 0.05, "up") == cs.NO_CHANGE  # the CI reaches into the band
    assert cs.verdict(0.80, 0.94, 0.05, "up") == cs.IMPROVEMENT
    assert cs.verdict(0.80, 0.94, 0.05, "down") == cs.REGRESSION  # a speedup that fell
    assert cs.verdict(1.06, 1.20, 0.05, "down") == cs.IMPROVEMENT
    assert cs.verdict(0.90, 1.10, 0.05, "down") == cs.NO_CHANGE
    assert cs.verdict(math.nan, math.nan, 0.05, "up") == cs.INSUFFICIENT


def test_pairing_removes_the_draws_from_the_ci():
    # Units that differ a lot from one another (the simulator's draws) but by the same +10% in the new run:
    # resampled jointly, the CI is tight around 1.10; resampled independently it is wide.
    rng = np.random.default_rng(1)
    draws = rng.lognormal(0, 0.5, 30)
    base, new = _units(draws), _units(draws * 1.10)
    paired = cs.ratio_ci(base, new, "median")
    unpaired = cs.ratio_ci(base, new, "median", pairable=False)
    assert paired.paired and not unpaired.paired
    assert paired.ratio == pytest.approx(1.10)
    assert 1.09 < paired.ci_low <= paired.ci_high < 1.11
    assert unpaired.ci_high - unpaired.ci_low > 5 * (paired.ci_high - paired.ci_low)


def test_different_keys_are_resampled_independently():
    base = _units([1.0, 1.1, 0.9, 1.05])
    new = {f"1:{i}": v for i, v in enumerate([1.0, 1.1, 0.9, 1.05])}
    est = cs.ratio_ci(base, new, "median")
    assert not est.paired and est.ratio == pytest.approx(1.0)
    assert est.ci_low < 1.0 < est.ci_high


def test_ci_comes_from_the_units_not_the_point_values():
    # Same medians, very different spread: the CI must widen with the spread (the summaries could not say).
    tight = cs.ratio_ci(
        _units([10, 10.1, 9.9, 10, 10.05]), _units([10, 10.1, 9.9, 10, 10.05]), "median", pairable=False
    )
    wide = cs.ratio_ci(_units([5, 15, 10, 2, 18]), _units([5, 15, 10, 2, 18]), "median", pairable=False)
    assert tight.ratio == wide.ratio == pytest.approx(1.0)
    assert (wide.ci_high - wide.ci_low) > 10 * (tight.ci_high - tight.ci_low)


def test_too_few_units_give_no_ci_and_a_constant_share_is_a_ratio_of_one():
    one = cs.ratio_ci(_units([1.0]), _units([2.0]), "median")
    assert one.ratio == pytest.approx(2.0) and math.isnan(one.ci_low)
    assert cs.verdict(one.ci_low, one.ci_high, 0.05, "up") == cs.INSUFFICIENT
    zeros = cs.ratio_ci(_units([0, 0, 0]), _units([0, 0, 0]), "mean")
    assert (zeros.ratio, zeros.ci_low, zeros.ci_high) == (1.0, 1.0, 1.0)


def test_the_bootstrap_is_seeded_so_the_same_folders_give_the_same_table():
    base, new = _units(np.arange(1, 20)), _units(np.arange(1, 20) * 1.02)
    assert cs.ratio_ci(base, new, "p95", seed=3) == cs.ratio_ci(base, new, "p95", seed=3)


def test_statistics_match_numpy():
    x = np.arange(10.0)
    assert cs.statistic(x, "median") == np.median(x)
    assert cs.statistic(x, "p95") == np.percentile(x, 95)
    assert cs.statistic(x, "mean") == np.mean(x)
    with pytest.raises(ValueError, match="unknown statistic"):
        cs.statistic(x, "p99")  # type: ignore[arg-type]

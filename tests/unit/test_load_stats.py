"""The figures of a load level and the knee, on hand-made generations (no server): what counts where."""

from __future__ import annotations

import pytest

from voorbeelden.experiments.load_stats import (
    GenRow,
    find_knee,
    level_figures,
    parallel_stops_paying,
    saturated,
    window_figures,
)


def _row(start: float, wall: float, parts: int = 6, **kw: object) -> GenRow:
    return GenRow(t_start=start, t_end=start + wall, parts_delivered=parts, **kw)  # type: ignore[arg-type]


def test_every_generation_overlapping_the_window_is_measured_and_counts_by_its_share_inside() -> None:
    rows = [
        _row(-5, 8),  # started in the warm-up, ends 3 s into the window: measured, 3/8 of it inside
        _row(1, 4),  # entirely inside
        _row(2, 30),  # still running when the window ends: measured (no survivor bias), 18/30 inside
        _row(3, 5, parts=5),  # inside but incomplete: in throughput, not in goodput
        _row(25, 2),  # after the window: not measured
    ]
    f = window_figures(rows, 0, 20, slo_s=10)
    assert f["generations_measured"] == 4
    assert f["generations_started"] == 3 and f["generations_ended"] == 3
    assert f["wall_max_s"] == pytest.approx(30)
    assert f["generations_per_min"] == pytest.approx((3 / 8 + 1 + 18 / 30 + 1) * 3)
    assert f["goodput_per_min"] == pytest.approx((3 / 8 + 1) * 3)  # complete and within 10 s
    assert f["within_slo"] == 2
    assert f["parts_delivered"] == 23 and f["parts_asked"] == 24


def test_throughput_by_share_is_the_completion_rate_in_steady_state() -> None:
    # one generation every 2 s, each lasting 7 s: 30 per minute, however the window cuts them
    rows = [_row(t, 7) for t in range(-20, 80, 2)]
    f = window_figures(rows, 13, 43, slo_s=10)
    assert f["generations_per_min"] == pytest.approx(30)
    assert f["goodput_per_min"] == pytest.approx(30)


def test_a_cut_generation_is_not_complete_and_keeps_its_elapsed_time() -> None:
    rows = [_row(1, 50, parts=0, censored=True), _row(2, 3)]
    f = window_figures(rows, 0, 60, slo_s=10)
    assert f["generations_cut"] == 1
    assert f["generations_complete"] == 1
    assert f["generations_ended"] == 1  # a cut generation never "ends" as throughput
    assert f["generations_per_min"] == pytest.approx(1.0)  # only the 3 s one
    assert f["wall_max_s"] == pytest.approx(50)


def test_calls_in_flight_are_time_weighted_and_peak_counts_overlap() -> None:
    calls = [(0.0, 10.0, False), (5.0, 10.0, True), (20.0, 30.0, False)]
    f = window_figures([_row(0, 30, calls=calls)], 0, 40, slo_s=60)
    assert f["calls_in_flight_mean"] == pytest.approx((10 + 5 + 10) / 40)
    assert f["calls_in_flight_peak"] == 2
    assert f["rate_limited_429"] == 1
    assert f["calls_per_min"] == pytest.approx(3 / (40 / 60))


def test_back_to_back_calls_do_not_count_as_overlapping() -> None:
    calls = [(0.0, 1.0, False), (1.0, 2.0, False)]
    assert window_figures([_row(0, 2, calls=calls)], 0, 2, slo_s=5)["calls_in_flight_peak"] == 1


def test_level_figures_split_the_measurement_into_windows() -> None:
    rows = [_row(t, 0.5) for t in range(10, 40)]  # one generation a second after a 10 s warm-up
    f = level_figures(rows, warmup_s=10, duration_s=30, windows=3, slo_s=5)
    assert [w["generations_measured"] for w in f["windows"]] == [10, 10, 10]
    assert f["generations_measured"] == 30


def _level(load: float, p95: float | None, gpm: float, windows: list[float | None] | None = None) -> dict:
    return {
        "users": load,
        "wall_p95_s": p95,
        "generations_per_min": gpm,
        "windows": [{"wall_p95_s": w} for w in (windows or [p95])],
    }


def test_knee_is_the_last_load_before_the_first_one_over_the_slo_with_the_crossing_between() -> None:
    levels = [_level(1, 4, 10), _level(2, 6, 20), _level(4, 14, 30), _level(8, 30, 30)]
    knee = find_knee(levels, "users", slo_s=10)
    assert (knee.level, knee.next_level) == (2, 4)
    assert knee.interpolated == pytest.approx(2 + (10 - 6) / (14 - 6) * 2)  # 3.0


def test_a_load_within_the_slo_after_one_over_it_does_not_raise_the_knee() -> None:
    levels = [_level(1, 4, 10), _level(2, 12, 20), _level(4, 9, 30)]
    assert find_knee(levels, "users", slo_s=10).level == 1


def test_knee_when_every_load_or_none_is_within_the_slo() -> None:
    all_in = find_knee([_level(1, 4, 10), _level(2, 6, 20)], "users", slo_s=10)
    assert (all_in.level, all_in.next_level, all_in.interpolated) == (2, None, None)
    assert "every tested load" in all_in.describe("users")
    none_in = find_knee([_level(1, 11, 10), _level(2, 16, 20)], "users", slo_s=10)
    assert (none_in.level, none_in.next_level) == (None, 1)
    assert none_in.describe("users").startswith("none")


def test_knee_description_without_a_crossing_names_the_loads() -> None:
    # the level over the SLO had no generation start in its window (p95 None): no crossing to interpolate
    knee = find_knee([_level(1, 4, 10, [4]), _level(2, None, 0, [None])], "users", slo_s=10)
    assert (knee.level, knee.next_level, knee.interpolated) == (1, 2, None)
    assert knee.describe("users") == "1 users (windows 1-1; 2 is over)"


def test_knee_uncertainty_is_the_range_of_the_per_window_crossings() -> None:
    levels = [_level(1, 4, 10, [3, 5]), _level(2, 14, 20, [12, 18])]
    knee = find_knee(levels, "users", slo_s=10)
    assert knee.windows == pytest.approx([1 + 7 / 9, 1 + 5 / 13])
    assert (knee.low, knee.high) == pytest.approx((1 + 5 / 13, 1 + 7 / 9))


def test_saturation_needs_p95_climbing_over_the_slo_at_flat_throughput() -> None:
    prev = _level(4, 8, 30)
    assert saturated(prev, _level(8, 16, 31), slo_s=10)
    assert not saturated(prev, _level(8, 16, 40), slo_s=10)  # throughput still grows: not saturated
    assert not saturated(prev, _level(8, 9.5, 30), slo_s=10)  # within the SLO: the knee is not found yet
    assert not saturated(_level(4, None, 0), _level(8, 16, 0), slo_s=10)


def test_parallel_stops_paying_where_it_has_neither_goodput_nor_latency_edge() -> None:
    def lv(strategy: str, users: int, p50: float, good: float) -> dict:
        return {"strategy": strategy, "users": users, "wall_p50_s": p50, "goodput_per_min": good}

    levels = [
        lv("sequential", 1, 12, 5),
        lv("parallel", 1, 2, 30),
        lv("sequential", 8, 13, 36),
        lv("parallel", 8, 12.5, 36),  # same goodput, wall within 10%: no edge left
    ]
    assert parallel_stops_paying(levels, "users") == 8
    assert parallel_stops_paying(levels[:2], "users") is None


def test_knee_interval_resamples_each_levels_walls() -> None:
    steady = [{**_level(1, 4, 10), "walls_s": [4.0] * 10}, {**_level(2, 14, 20), "walls_s": [14.0] * 10}]
    knee = find_knee(steady, "users", slo_s=10)
    assert (knee.ci_low, knee.ci_high) == pytest.approx((1.6, 1.6))  # nothing varies: no spread
    assert "95% CI 1.6-1.6" in knee.describe("users")
    noisy = [
        {**_level(1, 9, 10), "walls_s": [3.0, 4.0, 5.0, 9.0, 12.0]},
        {**_level(2, 14, 20), "walls_s": [8.0, 12.0, 14.0]},
    ]
    wide = find_knee(noisy, "users", slo_s=10)
    assert wide.ci_low is not None and wide.ci_high is not None
    assert wide.ci_low == 0.0  # some resamples are over the SLO already at 1 user
    assert wide.ci_low < wide.ci_high <= 2.0

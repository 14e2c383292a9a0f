"""The load sweep against a real simulator process (in-process client): closed and open loop, the drain cut,
the saturation stop, and the settings' own checks. The simulator runs at a small time_scale, so a "2 s"
call takes tens of milliseconds; assertions are about counts and structure, never about timing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from voorbeelden.experiments.load_sweep import LoadSettings, arun_sweep
from voorbeelden.sim import SimConfig, SimHandle, running_simulator
from voorbeelden.syncrun import run_sync

SCALE = 0.05


@pytest.fixture(scope="module")
def capped_sim() -> Iterator[SimHandle]:
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=SCALE, capacity=4)) as handle:
        yield handle


def _sweep(sim: SimHandle, **settings: object):  # type: ignore[no-untyped-def]
    s = LoadSettings(**{"duration_s": 12.0, "warmup_s": 2.0, "windows": 2, **settings})  # type: ignore[arg-type]
    return run_sync(arun_sweep(sim.base_url, "no-key-needed", s, clock_scale=SCALE))


def test_closed_loop_levels_have_every_figure_and_the_calls_each_strategy_puts_in_flight(
    capped_sim: SimHandle,
) -> None:
    result = _sweep(capped_sim, strategies=("sequential", "parallel"), users=(1,), slo_s=60)
    by = {lv["strategy"]: lv for lv in result.levels}
    assert set(by) == {"sequential", "parallel"}
    assert by["sequential"]["calls_in_flight_peak"] == 1  # one user, one call at a time
    assert by["parallel"]["calls_in_flight_peak"] == 6  # one user, six calls at once
    for lv in result.levels:
        assert lv["users"] == 1
        assert lv["generations_measured"] >= 1
        assert lv["parts_delivered"] == lv["parts_asked"] == 6 * lv["generations_measured"]
        assert lv["wall_p50_s"] <= lv["wall_p95_s"] <= lv["wall_p99_s"]
        assert len(lv["windows"]) == 2
    assert result.generations["incomplete"] == 0
    assert set(result.knees) == {"sequential", "parallel"}


def test_a_generation_still_running_when_the_drain_ends_is_cut_and_counted_as_incomplete(
    capped_sim: SimHandle,
) -> None:
    # one user, sequential: a generation takes ~12 model seconds; the level measures 4 s and drains 1 s
    result = _sweep(
        capped_sim,
        strategies=("sequential",),
        users=(1,),
        slo_s=0.5,
        duration_s=4.0,
        warmup_s=0.0,
        drain_s=1.0,
    )
    (lv,) = result.levels
    assert lv["generations_cut"] == 1
    assert lv["generations_complete"] == 0
    assert lv["wall_max_s"] >= 4.0  # its elapsed time, a lower bound
    assert result.generations == {"measured": 1, "complete": 0, "incomplete": 1, "cut": 1}


def test_open_loop_levels_are_keyed_by_rate(capped_sim: SimHandle) -> None:
    result = _sweep(capped_sim, strategies=("parallel",), rates=(20.0, 40.0), slo_s=60, seed=3)
    assert [lv["rate"] for lv in result.levels] == [20.0, 40.0]
    assert result.to_dict()["knee"]["parallel"]["unit"] == "generations/min"
    assert result.to_dict()["mode"] == "open"


def test_a_sweep_stops_at_the_first_level_judged_past_saturation(
    capped_sim: SimHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # when a level is past saturation is load_stats.saturated's job (tested on fixed figures there); here: the
    # sweep asks it after every level but the first, stops that strategy there and says why, with the figures
    import voorbeelden.experiments.load_sweep as load_sweep

    asked: list[tuple[float, float]] = []

    def judged(prev: dict, cur: dict, slo_s: float) -> bool:
        asked.append((prev["users"], cur["users"]))
        return cur["users"] == 2

    monkeypatch.setattr(load_sweep, "saturated", judged)
    result = _sweep(capped_sim, strategies=("parallel", "bounded"), users=(1, 2, 3), slo_s=60, duration_s=4.0)
    assert [(lv["strategy"], lv["users"]) for lv in result.levels] == [
        ("parallel", 1), ("parallel", 2), ("bounded", 1), ("bounded", 2),
    ]  # fmt: skip
    assert asked == [(1, 2), (1, 2)]
    assert result.stopped["parallel"].startswith("past saturation at 2 users: p95 wall")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of users"),
        ({"users": (1,), "rates": (2.0,)}, "exactly one of users"),
        ({"users": (0, 2)}, "users must all be > 0"),
        ({"users": (2, 2)}, "repeated"),
        ({"users": (1,), "slo_s": 0}, "slo_s must be > 0"),
        ({"users": (1,), "strategies": ()}, "strategies is empty"),
    ],
)
def test_settings_refuse_what_cannot_be_measured(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadSettings(**fields)

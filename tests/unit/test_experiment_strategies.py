"""Notebook 05's reductions: the Pareto front and a conclusion computed from the data."""

from __future__ import annotations

import pandas as pd
import pytest

from voorbeelden.experiments import strategies as sb


def test_pareto_front_keeps_only_undominated_points() -> None:
    cost = [1.0, 2.0, 1.0, 3.0]
    wall = [10.0, 5.0, 12.0, 5.0]
    # (1,10) and (2,5) are on the front; (1,12) is dominated by (1,10); (3,5) by (2,5)
    assert sb.pareto_front(cost, wall) == [True, True, False, False]


def _table(rows: list[tuple[str, str, float, float, float, float]]) -> pd.DataFrame:
    t = pd.DataFrame(
        rows, columns=["profile", "strategy", "wall_p50_s", "wall_p95_s", "cost_usd_per_gen", "completeness"]
    )
    t["first_visible_p50_s"] = t["wall_p50_s"] / 2
    t["pareto"] = sb.pareto_front(t["cost_usd_per_gen"], t["wall_p50_s"])
    return t


def test_conclusion_names_the_winner_from_the_numbers_not_a_fixed_text() -> None:
    a = _table([("p", "sequential", 10, 11, 1.0, 1.0), ("p", "parallel", 2, 3, 1.0, 1.0)])
    b = _table([("p", "sequential", 2, 3, 1.0, 1.0), ("p", "parallel", 10, 11, 1.0, 1.0)])
    assert "fastest median wall time is parallel (2.0 s, 5.0x sequential)" in sb.conclude(a)[0]
    assert "fastest median wall time is sequential" in sb.conclude(b)[0]


def test_incomplete_strategies_cannot_win() -> None:
    t = _table([("p", "sequential", 10, 11, 1.0, 1.0), ("p", "hedged", 1, 1, 0.5, 0.5)])
    line = sb.conclude(t)[0]
    assert "fastest median wall time is sequential" in line and "cheapest is sequential" in line


def test_bad_parameters_are_named() -> None:
    P = dict(
        profiles=["nope"],
        strategies=["parallel", "teleport"],
        trials=0,
        warmup=0,
        n_begrippen=1,
        k=3,
        time_scale=0.01,
        prices={"gpt-4.1": {"in": 2.0, "out": 8.0}},
    )
    with pytest.raises(ValueError) as err:
        sb.validate_params(P)
    msg = str(err.value)
    assert "nope" in msg and "teleport" in msg and "trials" in msg

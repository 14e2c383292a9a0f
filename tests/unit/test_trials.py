"""Paired trials against the embedded simulator: pairing keys, alternating order, warm-up flags, JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voorbeelden.begrippen import load_begrippen
from voorbeelden.experiments.trials import load_results, run_trials
from voorbeelden.sim import SimConfig, running_simulator
from voorbeelden.syncrun import run_sync


@pytest.fixture(scope="module")
def sim():
    with running_simulator(SimConfig(profile="definitie-app", time_scale=0.005, seed=1)) as handle:
        yield handle


def test_paired_trials_share_keys_alternate_order_and_flag_warmup(sim, tmp_path: Path) -> None:
    out = tmp_path / "trials.jsonl"
    res = run_trials(
        load_begrippen(2),
        base_url=sim.base_url,
        api_key="sk-sim",
        trials=2,
        warmup=1,
        out=out,
        scenario="t",
        tags={"profile": "definitie-app"},
    )
    g = res.generations
    assert len(g) == 2 * (1 + 2 * 2)
    assert g["warmup"].sum() == 2 and (g.loc[g["warmup"], "trial"] < 0).all()
    for _, pair in g.groupby("pair"):
        assert sorted(pair["strategy"]) == ["parallel", "sequential"]
        assert pair["sim_key"].nunique() == 1  # both strategies get the same simulator draws
        # Same draws: the slowest part's latency agrees closely between the strategies.
        assert pair["max_latency_s"].max() / pair["max_latency_s"].min() < 1.5
    first = g[g["order"] == 0].drop_duplicates("pair")["strategy"]
    assert set(first) == {"sequential", "parallel"}  # the order alternates
    assert (
        g.loc[g["strategy"] == "sequential", "wall_s"].median()
        > g.loc[g["strategy"] == "parallel", "wall_s"].median()
    )
    assert (res.records["profile"] == "definitie-app").all()
    assert len(res.records) == g["n_calls"].sum()

    lines = out.read_text().splitlines()
    assert len(lines) == len(g)
    assert len(json.loads(lines[0])["records"]) == 6
    again = load_results(out)
    assert len(again.generations) == len(g) and len(again.records) == len(res.records)
    assert len(again.measured().generations) == len(g) - 2


def test_load_results_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"strategy": "parallel", "warmup": false, "records": [{"part": "synoniemen"}]}\n{"strat')
    res = load_results([path, tmp_path / "missing.jsonl"])
    assert len(res.generations) == 1 and len(res.records) == 1


def test_run_sync_works_inside_a_running_loop() -> None:
    import asyncio

    async def inner() -> int:
        await asyncio.sleep(0)
        return 7

    async def outer() -> int:
        return run_sync(inner())

    assert asyncio.run(outer()) == 7
    assert run_sync(inner()) == 7

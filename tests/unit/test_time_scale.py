"""Real time is never rescaled (issue 11, item 2): notebook 05's table divides by ``time_scale`` only for the
embedded simulator; against any other endpoint its seconds are the measured seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from voorbeelden.experiments import strategies as strategies_bench
from voorbeelden.experiments.trials import load_results
from voorbeelden.sim import SimConfig, running_simulator


def _params(backend: str, out: Path) -> dict:
    return {
        "backend": backend,
        "profiles": ["uniform-2s"],
        "strategies": ["sequential", "parallel"],
        "time_scale": 0.01,
        "seed": 0,
        "trials": 1,
        "warmup": 0,
        "n_begrippen": 1,
        "k": 3,
        "hedge_percentile": 90,
        "prices": {"gpt-4.1": {"in": 2.0, "out": 8.0}},
        "out_dir": str(out),
    }


def _measured_median(out: Path, strategy: str) -> float:
    gens = load_results(out / "05_strategies.jsonl").generations
    return float(gens[gens["strategy"] == strategy]["wall_s"].median())


def test_model_seconds_factor_is_one_for_a_real_endpoint() -> None:
    from voorbeelden.backend import model_seconds_factor

    assert model_seconds_factor(None) == 1.0
    assert model_seconds_factor(0.01) == pytest.approx(100.0)


def test_a_real_endpoint_is_reported_in_measured_seconds(tmp_path: Path) -> None:
    # The simulator reached by URL is, to the benchmark, just some OpenAI-compatible endpoint.
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as sim:
        exp = strategies_bench.strategies_experiment(_params(sim.base_url, tmp_path))
    assert exp.backend["kind"] == "real"
    table = exp.table.set_index("strategy")
    for strategy in ("sequential", "parallel"):
        measured = _measured_median(tmp_path, strategy)
        assert table.loc[strategy, "wall_p50_s"] == pytest.approx(measured, rel=1e-9)  # not x100
    assert table.loc["sequential", "wall_p50_s"] < 1.0  # ~0.12 s of real time, not 12 "model" seconds
    assert exp.ok


@pytest.mark.slow
def test_the_embedded_simulator_is_reported_in_model_seconds(tmp_path: Path) -> None:
    exp = strategies_bench.strategies_experiment(_params("sim", tmp_path))
    assert exp.backend["kind"] == "simulated"
    measured = _measured_median(tmp_path, "parallel")
    assert exp.table.set_index("strategy").loc["parallel", "wall_p50_s"] == pytest.approx(measured / 0.01)

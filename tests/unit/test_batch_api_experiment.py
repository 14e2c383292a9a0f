"""Notebook 04's Batch API section: both ways measured for every N, priced from their own tokens (the batch at
exactly half the list price), bounded, and plotted."""

from __future__ import annotations

from pathlib import Path

from voorbeelden.experiments.batch_api import plot_batch_api, run_batch_api_comparison
from voorbeelden.prices import price_of


def test_online_and_batch_api_are_measured_priced_and_plotted(tmp_path: Path) -> None:
    points = run_batch_api_comparison([2, 3], profile="uniform-2s", time_scale=0.002, rpm=600.0, delay_s=30.0)
    assert [(p.way, p.n_terms) for p in points] == [
        ("online", 2),
        ("online", 3),
        ("batch-api", 2),
        ("batch-api", 3),
    ]
    assert all(p.ok == p.n_terms and p.failed == 0 and p.tokens_out > 0 for p in points)
    list_price = price_of("gpt-4.1")
    assert list_price is not None
    for p in points:
        full = list_price.cost(p.tokens_in, p.tokens_out)
        expected = full / 2 if p.way == "batch-api" else full
        assert p.cost_usd is not None and abs(p.cost_usd - expected) < 1e-3
    online = [p for p in points if p.way == "online"]
    assert online[1].bound_model_s > online[0].bound_model_s  # the rate limit's bound grows with N
    batch = [p for p in points if p.way == "batch-api"]
    assert all(p.wall_model_s >= 30.0 for p in batch)  # at least the simulated time in progress
    assert run_batch_api_comparison([], profile="uniform-2s", time_scale=0.002, rpm=600.0, delay_s=30.0) == []
    plot_batch_api(points, tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 1000

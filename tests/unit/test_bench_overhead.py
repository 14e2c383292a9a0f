"""A smoke run of the overhead benchmark: tiny, in-process, checking shape and sanity, not performance."""

from __future__ import annotations

from voorbeelden.bench.overhead import render, run_benchmark


def test_benchmark_smoke() -> None:
    res = run_benchmark(
        generations=3, time_scale=0.02, pairs=2, speedup_time_scale=0.01, warmup=1, process=False
    )
    assert res.overhead.n == 3 and res.overhead.median >= 0.98
    by_profile = {s.profile: s for s in res.speedups}
    assert set(by_profile) == {"uniform-2s", "definitie-app"}
    # The field's bound: one 30 s part among ~21 s of others caps the speedup near 1.7x.
    # Margins are wide: at 20 ms calls one scheduler hiccup moves a ratio; this checks shape, not speed.
    assert 1.3 < by_profile["definitie-app"].bound.median < 2.5
    assert by_profile["uniform-2s"].bound.median > 3.0
    assert "overhead" in render(res)
    assert res.to_dict()["speedups"][0]["speedup"]["n"] == 2

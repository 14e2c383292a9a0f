"""The calibration round trip on a real batching server (marker ``real_llm``): llama.cpp's ``llama-server``
with 6 slots and SmolLM2-135M, measured at several concurrency levels (sequential = 1, bounded k=3, parallel
= 6 calls at once), a simulator profile fitted from those records (it must find that concurrent calls slow
each other and fit a batching curve), the same trials on the simulator serving it, and the prediction
compared with the measurement (the sequential p50 wall within 15%; the parallel errors are stated).

It runs notebook 06's own code path (``voorbeelden.experiments.calibration``), so what it checks is what the
report shows. A few minutes on 2 cores; skipped with the reason when the local extra or the llama-server
binary is missing (``make install-local``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from voorbeelden.local import missing_extra


def _why_not() -> str | None:
    why = missing_extra()
    if why is not None:
        return why
    from voorbeelden.local import LocalLLMUnavailable
    from voorbeelden.local.engines import find_llama_server

    try:
        find_llama_server()
    except LocalLLMUnavailable as e:
        return str(e)
    return None


WHY_NOT = _why_not()
pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
    pytest.mark.timeout(900),
]
GOAL = 0.15


def _params(out_dir: Path, server: str) -> dict:
    from voorbeelden.experiments.params import validate_params

    return validate_params(
        "06_calibration",
        backend="local",
        local_servers=[server],
        profile="uniform-2s",  # not used on a real backend
        sim_capacity=None,
        strategies=["sequential", "parallel", "bounded"],
        time_scale=1.0,
        predict_time_scale=0.25,
        seed=0,
        trials=2,
        warmup=1,
        n_begrippen=2,
        k=3,
        temperature=0.0,
        sampling_seed=1,
        max_tokens=96,
        call_timeout_s=180.0,
        goal=GOAL,
        out_dir=str(out_dir),
    )


def test_the_simulator_predicts_the_batching_server(tmp_path: Path) -> None:
    """The round trip runs end to end on the real server and its sequential prediction meets the goal.

    Whether batching raises the server's total throughput is a property of the machine, not of this code: on
    the 2-core CI machine with one decode thread it barely does (measured 2026-12-02 on a quiet machine,
    prompt cache off: 1.02x at 6 streams, parallel speedup 1.07x; docs/MEASUREMENTS.md), so the curve is
    checked for being a fitted slowdown, and the parallel prediction's error is shown in the conclusion (the
    report's table), not asserted here: on a loaded machine the timings it rests on are not the server's."""
    from voorbeelden.experiments.calibration import calibration_experiment

    exp = calibration_experiment(_params(tmp_path, "llama-server:6"))
    fit = exp.calibration.batching_fit
    assert fit is not None and fit.batching is not None, exp.calibration.notes
    # concurrent calls were seen to share the server: each stream slower with more streams, up to the slots
    assert 2 <= fit.most_in_flight <= 6 and fit.batching.rate(2) < 0.9, fit.to_dict()
    assert fit.error_s < fit.error_no_slowdown_s, fit.to_dict()  # the curve explains the timings better
    rows = exp.table.set_index("strategy")
    report = "\n".join(exp.conclusion)
    assert abs(rows.loc["sequential", "wall_error"]) <= GOAL, report
    for strategy in ("parallel", "bounded"):  # a prediction and its error for every strategy, stated in words
        assert rows.loc[strategy, "predicted_speedup"] > 0 and abs(rows.loc[strategy, "error"]) < 1.0, report
        assert f"{strategy}: measured speedup" in report, report
    assert (tmp_path / "06_calibration_profile_llama-server-6.json").is_file()

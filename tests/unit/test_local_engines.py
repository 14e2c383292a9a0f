"""Notebook 08's figures from hand-made rows: the batching curve's summary, the server's account per strategy,
and the verdict sentences, which must follow the numbers (batched vs one at a time, failures named)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from voorbeelden.experiments.engines import curve_summary, server_summary, verdict


def test_curve_summary_takes_medians_spread_and_gain_over_one_stream() -> None:
    rows = [
        {"engine": "llama-server", "slots": 6, "streams": n, "rep": r, "stream_tokens_per_s": s,
         "total_tokens_per_s": t, "srv_busy_slots_per_decode": b, "srv_max_deferred": 0.0}
        for n, r, s, t, b in [
            (1, 0, 40.0, 38.0, 1.0), (1, 1, 42.0, 40.0, 1.0),
            (6, 0, 20.0, 110.0, 5.8), (6, 1, 22.0, 120.0, 5.9),
        ]
    ]  # fmt: skip
    out = curve_summary(pd.DataFrame(rows)).set_index("streams")
    assert out.loc[6, "stream_tokens_per_s"] == pytest.approx(21.0)
    assert (out.loc[6, "stream_tokens_per_s_lo"], out.loc[6, "stream_tokens_per_s_hi"]) == (20.0, 22.0)
    assert out.loc[6, "throughput_gain"] == pytest.approx(115.0 / 39.0)
    assert out.loc[6, "busy_slots_per_decode"] == pytest.approx(5.85)
    assert out.loc[1, "reps"] == 2


def _gens(engine: str, busy: float | None, deferred: float) -> list[dict]:
    return [
        {"engine": engine, "strategy": s, "warmup": False, "wall_s": w, "srv_busy_slots_per_decode": busy,
         "srv_stream_tokens_per_s": 30.0, "srv_tokens_predicted": 500.0, "srv_decode_s": 16.0,
         "srv_max_processing": p, "srv_max_deferred": deferred}
        for s, w, p in (("sequential", 20.0, 1.0), ("parallel", 8.0, 6.0))
    ]  # fmt: skip


def test_verdict_says_batched_from_the_servers_counters_and_names_a_missing_pair() -> None:
    server = server_summary(pd.DataFrame(_gens("llama-server", 5.2, 0.0)))
    summary = pd.DataFrame(
        [
            {"engine": "llama-server", "slots": 6, "n_pairs": 4, "speedup_median": 2.5, "ci_low": 2.1,
             "ci_high": 2.9, "pairs_complete": "4 of 4", "trial_bound_median": 4.2},
            {"engine": "llama-cpp-python", "slots": 1, "n_pairs": 0, "speedup_median": math.nan},
        ]
    )  # fmt: skip
    lines = verdict(summary, server)
    assert lines[0].startswith(
        "llama-server (6 slot(s)): parallel 2.50x faster than sequential (95% CI 2.10-2.90"
    )
    assert "The server batched them: 5.20 busy slots per decode step, up to 6 requests processing" in lines[0]
    assert lines[1] == "llama-cpp-python: no complete pair, so no speedup."


def test_one_busy_slot_per_step_reads_as_one_at_a_time() -> None:
    server = server_summary(pd.DataFrame(_gens("llama-server", 1.0, 5.0)))
    summary = pd.DataFrame(
        [{"engine": "llama-server", "slots": 1, "n_pairs": 2, "speedup_median": 1.0, "ci_low": 0.98,
          "ci_high": 1.02, "pairs_complete": "2 of 2", "trial_bound_median": 4.0}]
    )  # fmt: skip
    (line,) = verdict(summary, server)
    assert "served them one at a time" in line and "5 deferred" in line


def test_server_summary_is_empty_without_server_counters() -> None:
    gens = pd.DataFrame([{"engine": "sim", "strategy": "parallel", "warmup": False, "wall_s": 1.0}])
    assert server_summary(gens).empty

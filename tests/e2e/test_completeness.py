"""Completeness beside every figure (issue 11, item 1): speedups and percentiles only over complete
generations, the count beside each figure, and a report whose headline has no complete pair fails and says
why: against a real server that answers 401 to everything, and with a key but no reachable endpoint."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _fake_keys import fake_key
from _truth_server import answer_401, free_port, serve
from conftest import run_report

from voorbeelden.experiments import stats
from voorbeelden.experiments import strategies as strategies_bench

ROOT = Path(__file__).resolve().parents[2]
CI_PARAMS = ROOT / "notebooks" / "params" / "ci.yaml"
KEY = fake_key("completeness")


def _gen(strategy: str, pair: str, wall: float, n_failed: int, **extra: object) -> dict:
    return {
        "profile": "p",
        "strategy": strategy,
        "pair": pair,
        "begrip": "b",
        "trial": 0,
        "warmup": False,
        "wall_s": wall,
        "sum_latency_s": 6.0,
        "max_latency_s": 1.0,
        "n_ok": 6 - n_failed,
        "n_failed": n_failed,
        "n_calls": 6,
        "tokens_in": 100,
        "tokens_out": 200,
        "first_visible_s": None,
        "time_scale": None,
        **extra,
    }


def test_speedup_is_over_complete_pairs_only_and_says_how_many() -> None:
    rows = [
        _gen("sequential", "0:b", 6.0, 0),
        _gen("parallel", "0:b", 2.0, 0),  # complete pair: 3x
        _gen("sequential", "1:b", 6.0, 0),
        _gen("parallel", "1:b", 0.1, 6),  # the parallel side failed fast: 60x, not a speedup
    ]
    summary = stats.speedup_summary(stats.paired_speedups(pd.DataFrame(rows)))
    row = summary.iloc[0]
    assert row["speedup_median"] == pytest.approx(3.0)
    assert (row["n_pairs"], row["n_pairs_total"], row["pairs_complete"]) == (1, 2, "1 of 2")
    walls = stats.wall_summary(pd.DataFrame(rows)).set_index("strategy")
    assert (
        walls.loc["parallel", "median_s"] == pytest.approx(2.0)
        and walls.loc["parallel", "complete"] == "1 of 2"
    )


def test_no_complete_pair_means_no_speedup_and_a_reason() -> None:
    rows = [_gen("sequential", "0:b", 0.2, 6), _gen("parallel", "0:b", 0.1, 6)]
    summary = stats.speedup_summary(stats.paired_speedups(pd.DataFrame(rows)), by=("profile",))
    assert math.isnan(summary.iloc[0]["speedup_median"]) and summary.iloc[0]["n_pairs"] == 0
    problems = stats.headline_problems(summary)
    assert problems and "no complete" in problems[0] and "0 of 1" in problems[0]


def test_strategy_table_figures_are_over_complete_generations_with_the_count() -> None:
    rows = [
        _gen("sequential", "0:b", 6.0, 0),
        _gen("sequential", "1:b", 0.1, 6),
        _gen("parallel", "0:b", 0.1, 6),
        _gen("parallel", "1:b", 0.1, 6),
    ]
    recs = pd.DataFrame({"profile": [], "strategy": [], "hedge": []})
    table = strategies_bench.summarise(pd.DataFrame(rows), recs, price_in=2.0, price_out=8.0).set_index(
        "strategy"
    )
    assert table.loc["sequential", "wall_p50_s"] == pytest.approx(6.0)  # the failed fast one is not in it
    assert table.loc["sequential", "complete"] == "1 of 2"
    assert math.isnan(table.loc["parallel", "wall_p50_s"]) and table.loc["parallel", "complete"] == "0 of 2"
    assert not table.loc["parallel", "pareto"]
    problems = strategies_bench.comparison_problems(table.reset_index(), 2)
    assert problems and "1 of 2 strategies" in problems[0]


def _report(out: Path, params: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_report(out, params, env=env, timeout=400)


def _first_screen(report: Path) -> str:
    index = (report / "index.html").read_text(encoding="utf-8")
    return index[: index.index("<h2>")]


@pytest.mark.slow
def test_a_report_against_an_all_401_server_fails_and_its_first_page_says_why(tmp_path: Path) -> None:
    with serve(answer_401) as srv:
        done = _report(tmp_path, CI_PARAMS, OPENAI_BASE_URL=srv.base_url, OPENAI_API_KEY=KEY)
        assert srv.total > 0  # the notebooks really called it
    assert done.returncode == 1, done.stdout + done.stderr
    report = (tmp_path / "latest").resolve()
    first = _first_screen(report)
    assert "NOT OK" in first and "no complete" in first and "401" in first, first
    assert "speedup 1." not in done.stdout and "no speedup: 0 of" in done.stdout
    assert "NOT OK" in done.stdout
    s = json.loads((report / "summary.json").read_text())
    assert s["ok"] is False and "no complete" in s["reason"] and "401" in s["reason"]
    status = {n["name"]: n["status"] for n in s["notebooks"]}
    assert status["01_sequential_vs_parallel.ipynb"] == "failed"
    assert status["05_strategies.ipynb"] == "failed"
    for sp in s["speedup"].values():
        assert sp["n_pairs"] == 0 and sp["median"] is None


@pytest.mark.slow
def test_notebook_05_with_a_key_but_no_reachable_endpoint_is_failed(tmp_path: Path) -> None:
    ci = yaml.safe_load(CI_PARAMS.read_text())
    params = tmp_path / "only05.yaml"
    only = {
        "05_strategies.ipynb": {
            **ci["notebooks"]["05_strategies.ipynb"],
            "strategies": ["sequential", "parallel"],
        }
    }
    params.write_text(yaml.safe_dump({**ci, "notebooks": only}))
    port = free_port()
    done = _report(
        tmp_path / "out", params, OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY=KEY
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = (tmp_path / "out" / "latest").resolve()
    s = json.loads((report / "summary.json").read_text())
    (nb,) = s["notebooks"]
    assert nb["status"] == "failed" and "IncompleteHeadline" in nb["error"]
    assert f"cannot reach 127.0.0.1:{port}" in s["reason"]
    assert "0 of" in _first_screen(report) and KEY not in (report / "index.html").read_text()

"""The rate-limit benchmark: the cookbook baseline behaves as published (its 429 check never matches the API's
body), every contender runs against a fresh simulator and is judged by the simulator's own counters, the
parameters are validated up front, and the memory run samples RSS as terms finish."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from voorbeelden.experiments import ratelimit as rl
from voorbeelden.experiments.contenders import _cookbook_requests
from voorbeelden.experiments.cookbook import _is_rate_limit, process_requests
from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_rate_limit_check_never_matches_the_apis_429_body() -> None:
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    assert not _is_rate_limit("code-429", 429, body)  # as published: error.code == "429"
    assert _is_rate_limit("code-429", 429, {"error": {"code": "429"}})
    assert _is_rate_limit("status", 429, body)


@pytest.mark.parametrize("detect", ["code-429", "status"])
def test_the_cookbook_pauses_only_when_it_recognises_a_rate_limit(detect: str) -> None:
    ts = 0.01  # the 15 s pause becomes 0.15 s; the minute 0.6 s
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=ts, rpm=6)) as sim:

        async def run() -> tuple[object, float]:
            t0 = time.monotonic()
            status = await process_requests(
                _cookbook_requests(2),
                request_url=sim.base_url + "/chat/completions",
                api_key="k",
                max_requests_per_minute=60,  # told 10x the limit: its first burst meets 429s
                max_tokens_per_minute=1e12,
                time_scale=ts,
                detect=detect,
            )
            return status, time.monotonic() - t0

        status, wall = asyncio.run(run())
        sent_429 = sim.counters()["sent_429"]
    assert sent_429 > 0
    assert status.num_tasks_started == 12  # type: ignore[attr-defined]
    if detect == "code-429":
        assert status.num_rate_limit_errors == 0  # type: ignore[attr-defined]
        assert status.num_api_errors >= sent_429  # type: ignore[attr-defined]
    else:
        assert status.num_rate_limit_errors == sent_429  # type: ignore[attr-defined]
        assert wall >= 0.15  # it sat out at least one (scaled) 15 s pause


def test_every_contender_runs_against_its_own_simulator_and_is_judged_by_it(tmp_path: Path) -> None:
    p = rl.setting(
        "t",
        n_terms=2,
        time_scale=0.02,
        rpm=12,
        told_rpm=[12],
        modes=["bucket"],
        contenders=["batch", "batch-untold", "naive", "cookbook", "cookbook-status"],
        isolate=False,
        out_dir=str(tmp_path),
    )
    results = rl.run_experiment(p)
    assert [r.contender for r in results] == [c.label for c in p.contender_list()]
    for r in results:
        assert r.ok + r.failed == p.calls
        assert r.requests_total == r.accepted + r.sent_429  # nothing else went wrong at the server
        assert r.accepted >= r.ok  # every part delivered was accepted by the server
        assert 0 < r.share <= 1.05 and r.peak_rss_mb is None  # in-process: no RSS of its own
    batch = {r.kind: r for r in results}
    assert batch["batch"].failed == 0 and batch["batch-untold"].failed == 0
    table = rl.format_table(results)
    assert "share" in table and "cookbook told 12" in table
    goals = rl.check_goals(results, p)
    ahead = [g for g in goals if g.what.startswith("parts ok minus")]
    assert {g.what for g in goals if g not in ahead} == {"share of limit", "failed parts"}
    # the batch told 12 against each baseline of the run: naive, cookbook told 12, cookbook-status told 12
    assert sorted(g.what.split("'s (")[0].removeprefix("parts ok minus ") for g in ahead) == sorted(
        r.contender for r in results if r.kind in rl.BASELINE_KINDS
    )
    assert (tmp_path / "ratelimit_t.json").exists()
    rl.plot_accepted(results, p, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 10_000


def test_an_isolated_contender_reports_its_own_peak_rss() -> None:
    p = rl.setting(
        n_terms=1, time_scale=0.02, rpm=60, told_rpm=[60], modes=["quantized+charge"], contenders=["batch"]
    )
    (r,) = rl.run_experiment(p)
    assert r.failed == 0 and r.accepted == 6
    assert r.peak_rss_mb is not None and 30 < r.peak_rss_mb < 1000


def test_the_memory_run_samples_rss_at_each_checkpoint() -> None:
    from voorbeelden.experiments.memory import measure_memory

    m = measure_memory(40, [10, 40], time_scale=0.001)
    assert [s[0] for s in m.samples] == [10, 40] and m.ok == 40 and m.failed == 0
    assert m.growth_mb is not None and m.peak_rss_mb is not None and m.peak_rss_mb >= m.samples[-1][1]
    assert 100 < m.line_bytes < 10_000  # compact lines: parts and a summary, no per-call records


def test_bad_parameters_are_refused_before_any_work(tmp_path: Path) -> None:
    good = dict(
        n_terms=2, profile="uniform-2s", time_scale=0.02, rpm=12.0, told_rpm=[12.0], modes=["bucket"],
        contenders=["batch"], quantum_s=1.0, seed=0, isolate=False, memory_terms=0, out_dir=str(tmp_path),
    )  # fmt: skip
    assert rl.validate_params(**good).setting == "notebook"
    with pytest.raises(ValueError) as info:
        rl.validate_params(**{**good, "modes": ["sliding"], "told_rpm": [0], "n_terms": 0, "nonsense": 1})
    text = str(info.value)
    assert "unknown mode 'sliding'" in text and "told_rpm.0" in text and "n_terms" in text
    assert "nonsense: unknown parameter" in text
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "bench", "ratelimit", "--settings", "z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown setting 'z'" in done.stderr and "Traceback" not in done.stderr


def test_the_settings_are_the_issues() -> None:
    a, b = rl.SETTINGS["a"], rl.SETTINGS["b"]
    assert (a.n_terms, a.rpm, a.time_scale, a.calls) == (100, 300, 1.0, 600)
    assert a.ideal_wall_s("bucket") == pytest.approx(62.0, abs=0.1)  # 300 at once, 300 more at 5/s, one call
    assert (b.rpm, b.time_scale, b.told_rpm) == (30, 0.05, [600, 30])
    assert b.allowance("quantized") == 1 and a.allowance("quantized") == 5


def test_a_child_process_reports_its_own_peak_rss_not_its_parents() -> None:
    # Linux keeps ru_maxrss across exec: a worker started by a large orchestrator would report at least the
    # orchestrator's size (every contender of a benchmark run showed the same 123.6 MB). VmHWM is the child's.
    ballast = bytearray(120 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page, so it is resident
    child = subprocess.run(
        [sys.executable, "-c", "from voorbeelden.batch.runner import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert float(child.stdout) < 100, f"the child reports {child.stdout.strip()} MiB; the parent holds 120+"
    del ballast


def _result(kind: str, told: float | None, ok: int, wall: float, mode: str = "bucket") -> rl.ContenderResult:
    return rl.ContenderResult(
        setting="b", mode=mode, contender=f"{kind} {told}", kind=kind, told_rpm=told, wall_s=wall,
        ideal_s=60.0, ok=ok, failed=600 - ok, sent_429=0, requests_total=600, accepted=ok, share=1.0,
        peak_rss_mb=None, attempts=600,
    )  # fmt: skip


def test_ahead_of_the_baselines_means_more_parts_or_as_many_as_fast_and_only_like_for_like() -> None:
    batch = _result("batch", 30, 600, 60.0)
    results = [
        batch,
        _result("naive", None, 67, 4.4),  # fewer parts, however fast: behind
        _result("cookbook", 30, 600, 60.0),  # a tie: met, shown as 0 parts ahead
        _result("cookbook", 600, 600, 30.0),  # told something else: not compared
        _result("cookbook", 30, 600, 40.0, mode="quantized"),  # another mode: not compared
    ]
    goals = rl._ahead_of_baselines(results)
    assert [(g.met, g.value) for g in goals] == [(True, 533), (True, 0)]
    slower = rl._ahead_of_baselines([_result("batch", 30, 600, 70.0), _result("cookbook", 30, 600, 60.0)])
    fewer = rl._ahead_of_baselines([_result("batch", 30, 590, 10.0), _result("cookbook", 30, 600, 60.0)])
    assert [g.met for g in slower + fewer] == [False, False]


def test_the_batchs_share_goal_is_90_percent_with_short_window_headers_and_95_elsewhere() -> None:
    from voorbeelden.experiments.ratelimit import ContenderResult, check_goals, setting

    def told(mode: str, share: float) -> ContenderResult:
        return ContenderResult(
            setting="b", mode=mode, contender="batch told 30", kind="batch", told_rpm=30.0, wall_s=60.0,
            ideal_s=60.0, ok=600, failed=0, sent_429=0, requests_total=600, accepted=600, share=share,
            peak_rss_mb=None, attempts=600,
        )  # fmt: skip

    p = setting("b", time_scale=0.05, rpm=30.0, told_rpm=[30.0])
    goals = check_goals([told("short-window", 0.92), told("quantized", 0.92)], p)
    shares = {g.mode: (g.bound, g.met) for g in goals if g.what == "share of limit"}
    assert shares == {"short-window": (0.90, True), "quantized": (0.95, False)}

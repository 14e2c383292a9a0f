"""``voorbeelden compare`` on small synthetic report folders (summary.json + results.jsonl, the files a report
writes), built from simulated per-call latencies: fast, and deterministic through their seeds.

The synthetic runs mimic what makes real reports noisy or different: every run draws the same latencies for
the same trial (the simulator's keyed draws, seed 0) and adds its own client overhead per call and per
generation jitter (the machine); a B run makes one part 20% slower, or adds 50 ms to every call.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from voorbeelden.cli import main
from voorbeelden.commands.compare import threshold
from voorbeelden.report import compare_stats as cs
from voorbeelden.report.compare import MISSING, NotComparable, compare_reports, differences
from voorbeelden.report.compare_figures import EXTRACTORS, FigureData, NotAReport, load_report

TIME_SCALE = 0.02
PARTS = (
    "voorbeeldzinnen",
    "praktijkvoorbeelden",
    "tegenvoorbeelden",
    "synoniemen",
    "antoniemen",
    "toelichting",
)
# model seconds per part (the field's definitie-app figures; uniform-2s: six equal calls)
PROFILES = {
    "uniform-2s": dict.fromkeys(PARTS, 2.0),
    "definitie-app": dict(zip(PARTS, (3.0, 30.0, 9.0, 2.0, 2.0, 5.0), strict=True)),
}
PARAMS = {
    "01_sequential_vs_parallel.ipynb": {"time_scale": TIME_SCALE, "seed": 0, "trials": 3, "n_begrippen": 4}
}


def _pairs(trials: int = 3, begrippen: int = 4) -> list[str]:
    return [f"{t}:term{b}" for t in range(trials) for b in range(begrippen)]


def _generation(
    profile, strategy, pair, lat, overhead, jitter, n_failed=0, notebook="01_sequential_vs_parallel"
):
    """One results.jsonl row; times are real seconds (model seconds x time_scale), as a report writes them."""
    calls = lat + overhead  # model seconds per call, client overhead included
    if strategy == "sequential":
        wall, first = calls.sum(), calls[0]
    else:
        wall, first = calls.max(), calls.min()
    return {
        "notebook": notebook,
        "scenario": "test",
        "profile": profile,
        "strategy": strategy,
        "pair": pair,
        "trial": int(pair.split(":")[0]),
        "begrip": pair.split(":")[1],
        "warmup": False,
        "time_scale": TIME_SCALE,
        "wall_s": float(wall * jitter * TIME_SCALE),
        "first_visible_s": float(first * jitter * TIME_SCALE),
        "n_failed": n_failed,
        "n_ok": 6 - n_failed,
        "records": [{"part": p} for p in PARTS],
    }


def make_report(
    folder: Path,
    run: int,
    *,
    slow_part: float = 1.0,
    call_delay_s: float = 0.0,
    params: dict | None = None,
    failed: int = 0,
    strategies_05: bool = False,
) -> Path:
    """A report folder for run ``run``: the same keyed draws as every other run, its own machine noise."""
    folder.mkdir(parents=True)
    draws = np.random.default_rng(0)  # the simulator's keyed draws: the same in every run
    machine = np.random.default_rng(1000 + run)  # this run's client overhead and jitter
    rows = []
    for profile, medians in PROFILES.items():
        for pair in _pairs():
            lat = np.array([medians[p] for p in PARTS]) * draws.lognormal(0, 0.1, len(PARTS))
            lat[PARTS.index("praktijkvoorbeelden")] *= slow_part
            for strategy in ("sequential", "parallel"):
                overhead = machine.lognormal(np.log(0.4), 0.3, len(PARTS)) + call_delay_s / TIME_SCALE
                jitter = machine.lognormal(0, 0.02)
                rows.append(_generation(profile, strategy, pair, lat, overhead, jitter))
            if strategies_05:
                overhead = machine.lognormal(np.log(0.4), 0.3, len(PARTS))
                rows.append(
                    _generation(profile, "parallel", pair, lat, overhead, 1.0, notebook="05_strategies")
                )
    for row in rows[:failed]:
        row["n_failed"], row["n_ok"] = 1, 5
    with (folder / "results.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    summary = {
        "ok": True,
        "reasons": [],
        "backend": {
            "kind": "simulated",
            "profile": list(PROFILES),
            "time_scale": TIME_SCALE,
            "seed": 0,
            "host": f"127.0.0.1:{4000 + run}",
            "chosen_by": "test",
        },
        "params": params or PARAMS,
        "environment": {"git": {"commit": "abc", "dirty": False}},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _regressions(result) -> list[str]:
    return [c.name for c in result.regressions]


# --- noise and signal ----------------------------------------------------------------------------------------


def test_aa_same_commit_reports_are_no_change_in_at_least_19_of_20(tmp_path):
    base = make_report(tmp_path / "a0", 0)
    alarms = [
        _regressions(compare_reports(base, make_report(tmp_path / f"a{i}", i), n_boot=1000))
        for i in range(1, 21)
    ]
    assert sum(bool(a) for a in alarms) <= 1, alarms


@pytest.mark.parametrize("run", range(1, 6))
def test_ab_one_part_20_percent_slower_is_flagged_every_time(tmp_path, run):
    base = make_report(tmp_path / "a0", 0)
    result = compare_reports(base, make_report(tmp_path / "b", run, slow_part=1.2), n_boot=1000)
    assert result.exit_code == 1
    # the slowest part bounds the parallel wall: it is the figure that must move
    assert "wall p50 01 definitie-app/parallel" in _regressions(result)


@pytest.mark.parametrize("run", range(1, 6))
def test_ab_a_client_50_ms_slower_per_call_is_flagged_every_time(tmp_path, run):
    base = make_report(tmp_path / "a0", 0)
    result = compare_reports(base, make_report(tmp_path / "b", run, call_delay_s=0.05), n_boot=1000)
    assert result.exit_code == 1
    assert "wall p50 01 uniform-2s/sequential" in _regressions(result)


def test_an_improvement_is_not_a_regression(tmp_path):
    base = make_report(tmp_path / "a0", 0, slow_part=1.2)
    result = compare_reports(base, make_report(tmp_path / "b", 1), n_boot=1000)
    assert result.exit_code == 0
    verdicts = {c.name: c.verdict for c in result.changes}
    assert verdicts["wall p50 01 definitie-app/parallel"] == cs.IMPROVEMENT
    by = {c.name: c for c in result.changes}
    assert by["speedup definitie-app"].estimate.ratio > 1.04  # the parallel wall gained more than sequential


def test_lost_completeness_is_a_regression(tmp_path):
    base = make_report(tmp_path / "a0", 0)
    result = compare_reports(base, make_report(tmp_path / "b", 1, failed=40), n_boot=1000)
    assert "completeness 01" in _regressions(result)


# --- what is compared --------------------------------------------------------------------------------------


def test_figures_come_from_the_records_with_completeness(tmp_path):
    result = compare_reports(make_report(tmp_path / "a", 0), make_report(tmp_path / "b", 1), n_boot=200)
    by = {c.name: c for c in result.changes}
    assert {"speedup uniform-2s", "speedup definitie-app", "completeness 01"} <= set(by)
    assert {"wall p50 01 definitie-app/sequential", "wall p95 01 definitie-app/parallel"} <= set(by)
    speedup = by["speedup definitie-app"].estimate
    assert speedup.n_base == speedup.n_new == 12 and speedup.paired
    assert 1.3 < speedup.base < 2.2  # ~51 s of calls against a ~30 s slowest call


def test_a_figure_the_new_report_lost_counts_as_a_regression(tmp_path):
    base = make_report(tmp_path / "a", 0, strategies_05=True)
    result = compare_reports(base, make_report(tmp_path / "b", 1), n_boot=200)
    missing = [c.name for c in result.changes if c.verdict == MISSING]
    assert "wall p50 05 uniform-2s/parallel" in missing and result.exit_code == 1


def test_a_new_extractor_is_one_entry(tmp_path):
    def n_generations(report):
        rows = report.generations.get("01_sequential_vs_parallel", [])
        return [FigureData("generations", "mean", "down", "share", {"all": 1.0, "n": len(rows)}, len(rows))]

    result = compare_reports(
        make_report(tmp_path / "a", 0),
        make_report(tmp_path / "b", 1),
        extractors={**EXTRACTORS, "n": n_generations},
        n_boot=200,
    )
    assert result.changes[-1].name == "generations"


# --- comparable or not -------------------------------------------------------------------------------------


def test_different_parameters_are_not_comparable_and_say_what_differs(tmp_path):
    other = {"01_sequential_vs_parallel.ipynb": {**PARAMS["01_sequential_vs_parallel.ipynb"], "trials": 5}}
    base, new = make_report(tmp_path / "a", 0), make_report(tmp_path / "b", 1, params=other)
    with pytest.raises(NotComparable) as err:
        compare_reports(base, new)
    assert err.value.differences == ["01_sequential_vs_parallel.ipynb trials: 3 in base, 5 in new"]
    forced = compare_reports(base, new, force=True, n_boot=200)
    assert forced.differences == err.value.differences and forced.changes


def test_backend_profile_time_scale_seed_and_model_differences_are_named():
    base = {
        "backend": {
            "kind": "simulated",
            "profile": ["uniform-2s"],
            "time_scale": 0.02,
            "seed": 0,
            "host": "127.0.0.1:1",
        },
        "params": {},
    }
    assert differences(base, {**base, "backend": {**base["backend"], "host": "127.0.0.1:2"}}) == []
    new = {
        "backend": {"kind": "simulated", "profile": ["heavy-tail"], "time_scale": 0.05, "seed": 1},
        "params": {},
        "generation": {"seed": 7},
    }
    diffs = "\n".join(differences(base, new))
    for word in ("profile", "time_scale", "seed", "generation"):
        assert word in diffs
    real = {"backend": {"kind": "real", "host": "api.example.com", "model": "gpt-4.1"}, "params": {}}
    assert "backend model" in "\n".join(
        differences(real, {**real, "backend": {**real["backend"], "model": "x"}})
    )


# --- bad input and the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such folder"),
        (lambda p: p.write_text("x"), "not a folder"),
        (lambda p: p.mkdir(), "no summary.json"),
        (lambda p: (p.mkdir(), (p / "summary.json").write_text("{not json")), "not valid JSON"),
        (lambda p: (p.mkdir(), (p / "summary.json").write_text("[]")), "not a report summary"),
    ],
)
def test_bad_input_is_exit_2_with_a_message_not_a_traceback(tmp_path, capsys, setup, message):
    good = make_report(tmp_path / "good", 0)
    bad = tmp_path / "bad"
    setup(bad)
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_torn_results_line_and_an_incomplete_report_are_refused(tmp_path):
    torn = make_report(tmp_path / "torn", 0)
    with (torn / "results.jsonl").open("a") as f:
        f.write('{"notebook": "01_seq')
    with pytest.raises(NotAReport, match="line 49: not valid JSON"):
        load_report(torn)
    incomplete = make_report(tmp_path / "incomplete", 1)
    (incomplete / "INCOMPLETE").write_text("interrupted")
    with pytest.raises(NotAReport, match="incomplete"):
        load_report(incomplete)


def test_cli_exit_codes_table_and_json_shape(tmp_path, capsys):
    a, b = make_report(tmp_path / "a", 0), make_report(tmp_path / "b", 1)
    slow = make_report(tmp_path / "slow", 2, call_delay_s=0.05)
    assert main(["compare", str(a), str(b), "--n-boot", "500"]) == 0
    out = capsys.readouterr().out
    assert "speedup definitie-app" in out and "no regression (exit 0)" in out
    assert main(["compare", str(a), str(slow), "--json", "--n-boot", "500"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 1 and data["comparable"] is True
    first = data["figures"][0]
    assert {"name", "base", "new", "ratio", "ci_low", "ci_high", "verdict"} <= set(first)
    assert any(f["verdict"] == "regression" for f in data["figures"])
    other = make_report(tmp_path / "other", 3, params={"x.ipynb": {}})
    assert main(["compare", str(a), str(other)]) == 2
    assert "not comparable" in capsys.readouterr().err
    assert main(["compare", str(a), str(other), "--force", "--n-boot", "200"]) == 0
    assert "NOT COMPARABLE, compared anyway" in capsys.readouterr().out


def test_threshold_accepts_percent_or_fraction_and_names_a_bad_one(tmp_path, capsys):
    assert threshold("5%") == pytest.approx(0.05) and threshold("0.1") == pytest.approx(0.1)
    for bad in ("5", "0%", "abc", "nan%"):
        with pytest.raises(argparse.ArgumentTypeError, match="percentage"):
            threshold(bad)
    a = make_report(tmp_path / "a", 0)
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(a), str(a), "--threshold=-3%"])
    assert exit_.value.code == 2
    assert "argument --threshold: must be a percentage" in capsys.readouterr().err


def test_html_page_has_the_deltas_and_both_runs_charts(tmp_path, capsys):
    a, b = make_report(tmp_path / "a", 0), make_report(tmp_path / "b", 1, slow_part=1.2)
    png = bytes.fromhex("89504e470d0a1a0a")  # enough of a PNG to be embedded
    (a / "01_speedup_vs_bound.png").write_bytes(png)
    (b / "01_speedup_vs_bound.png").write_bytes(png)
    (b / "05_pareto.png").write_bytes(png)
    page = tmp_path / "compare.html"
    assert main(["compare", str(a), str(b), "--html", str(page), "--n-boot", "300"]) == 1
    html = page.read_text()
    assert "regression(s)" in html and "wall p50 01 definitie-app/parallel" in html
    assert html.count("data:image/png;base64,iVBORw0KGgo") == 3 + 1  # three charts and the delta chart
    assert "not in base" in html  # 05_pareto.png exists only in the new run
    assert main(["compare", str(a), str(b), "--html", str(tmp_path / "no" / "dir.html")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_goodput_and_429_share_come_from_their_side_files_unpaired(tmp_path):
    def side_files(folder: Path, goodput: list[float], sent_429: int) -> Path:
        levels = [{"strategy": "parallel", "users": 4, "windows": [{"goodput_per_min": g} for g in goodput]}]
        (folder / "07_load.json").write_text(json.dumps({"levels": levels}))
        results = [{"mode": "bucket", "contender": "naive", "requests_total": 40, "sent_429": sent_429}]
        (folder / "ratelimit_notebook.json").write_text(json.dumps({"results": results}))
        return folder

    base = side_files(make_report(tmp_path / "a", 0), [30.0, 31.0, 29.5, 30.5], 2)
    same = side_files(make_report(tmp_path / "b", 1), [30.5, 29.0, 30.0, 31.0], 2)
    worse = side_files(make_report(tmp_path / "c", 2), [20.0, 21.0, 19.0, 20.5], 30)
    quiet = {c.name: c for c in compare_reports(base, same, n_boot=1000).changes}
    loud = {c.name: c for c in compare_reports(base, worse, n_boot=1000).changes}
    goodput, share = "goodput/min 07 parallel @ users 4", "429 share 04 bucket/naive"
    assert quiet[goodput].verdict == quiet[share].verdict == cs.NO_CHANGE
    assert not quiet[goodput].estimate.paired and not quiet[share].estimate.paired
    assert loud[goodput].verdict == loud[share].verdict == cs.REGRESSION


def test_the_command_list_and_its_help_render(capsys):
    # argparse expands % in a command's one-line help: an unescaped "95%" broke `voorbeelden --help`
    for argv in (["--help"], ["compare", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "compare two report folders" in out and "--threshold PCT" in out

"""The report's summary and first page from hand-written side files (no notebook runs): the verdict in words,
failures first, the headline charts before the tables, folded long lists, escaping, and the section registry
through which a notebook's side file becomes summary fields and a first-page section."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from voorbeelden.report.page import render_index
from voorbeelden.report.runner import NotebookRun
from voorbeelden.report.sections import SECTIONS, Section
from voorbeelden.report.summary import build_summary

ENV = {"python": "3.x", "platform": "test", "cpus": 2, "packages": {"openai": "1"}, "git": None}
SIM = {"kind": "simulated", "host": None, "profile": ["uniform-2s"], "time_scale": 0.01, "seed": 0}


def _speedup_row(profile: str, median: float | None, n_pairs: int, total: int) -> dict[str, Any]:
    return {
        "profile": profile,
        "n_pairs": n_pairs,
        "n_pairs_total": total,
        "speedup_median": median,
        "ci_low": None if median is None else median - 0.1,
        "ci_high": None if median is None else median + 0.1,
        "trial_bound_median": 5.3,
        "expected_bound": 5.82,
        "efficiency": None if median is None else median / 5.82,
        "wall_base_median_s": 12.0,
        "wall_other_median_s": 3.0,
    }


def _strategy_row(profile: str, strategy: str, p50: float, cost: float, n_complete: int = 2) -> dict:
    return {
        "profile": profile,
        "strategy": strategy,
        "n": 2,
        "n_complete": n_complete,
        "complete": f"{n_complete} of 2",
        "wall_p50_s": p50 if n_complete else float("nan"),
        "wall_p95_s": p50 * 1.2 if n_complete else float("nan"),
        "first_visible_p50_s": None,
        "cost_usd_per_gen": cost if n_complete else float("nan"),
        "pareto": strategy == "parallel",
    }


def _report_dir(tmp_path: Path, *, s01_ok: bool = True, load: bool = False) -> Path:
    d = tmp_path / "20260101-000000"
    d.mkdir()
    s01 = {
        "ok": s01_ok,
        "reason": None if s01_ok else "no complete pair: every call got HTTP 401",
        "backend": SIM,
        "params": {"profiles": ["uniform-2s"]},
        "speedup": [_speedup_row("uniform-2s", 4.0 if s01_ok else None, 3 if s01_ok else 0, 3)],
        "overhead": [{"profile": "uniform-2s", "strategy": "parallel", "median_ms": 1.5}],
    }
    s05 = {
        "ok": True,
        "table": [
            _strategy_row("uniform-2s", "sequential", 12.0, 0.008),
            _strategy_row("uniform-2s", "parallel", 3.0, 0.009),
            *(_strategy_row("uniform-2s", f"extra{i}", 5.0 + i, 0.01) for i in range(8)),
            _strategy_row("uniform-2s", "<script>alert(1)</script>", 1.0, 0.001, n_complete=0),
        ],
        "conclusion": ["uniform-2s: fastest median wall time is parallel"],
    }
    s02 = {"ok": True, "backend": SIM, "faults": [], "skipped": None}
    for name, data in (
        ("01_sequential_vs_parallel", s01),
        ("05_strategies", s05),
        ("02_failure_injection", s02),
    ):
        (d / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
    (d / "03_environment.json").write_text(json.dumps(ENV), encoding="utf-8")
    if load:
        (d / "07_load.json").write_text(json.dumps(_load_side_file()), encoding="utf-8")
    for png in ("01_speedup_vs_bound.png", "05_pareto.png", "01_gantt_uniform-2s.png", "07_goodput.png"):
        (d / png).write_bytes(b"\x89PNG\r\n\x1a\n")
    return d


def _load_side_file() -> dict[str, Any]:
    level = {"generations_measured": 10, "generations_complete": 9, "within_slo": 8, "wall_p50_s": 4.0,
             "wall_p95_s": 9.0, "wall_p99_s": 9.5, "first_visible_p50_s": 1.0, "generations_per_min": 30.0,
             "goodput_per_min": 24.0, "calls_per_min": 180.0, "rate_limited_429": 0,
             "calls_in_flight_peak": 12}  # fmt: skip
    knee = {"unit": "users", "level": 4.0, "next_level": 8.0, "interpolated": 6.5, "low": 5.9, "high": 7.1,
            "windows": [5.9, 7.1]}  # fmt: skip
    sweep = {
        "mode": "closed",
        "settings": {"slo_s": 15.0, "mode": "closed"},
        "levels": [{**level, "strategy": s, "users": u} for s in ("sequential", "parallel") for u in (1, 4)],
        "knee": {"parallel": knee, "sequential": {**knee, "level": 1.0, "next_level": 4.0}},
        "parallel_stops_paying_at": 8.0,
        "generations": {"measured": 40, "complete": 36, "incomplete": 4, "cut": 0},
    }
    predicted = {**sweep, "knee": {"parallel": {**knee, "level": 2.0, "next_level": 4.0}}}
    return {
        **sweep,
        "label": "uniform-2s",
        "ok": True,
        "reason": None,
        "runs": [{**sweep, "label": "uniform-2s"}, {**predicted, "label": "batching-6", "prediction": True}],
        "prediction": [
            {
                "strategy": "parallel",
                "measured": 6.5,
                "predicted": 2.6,
                "error": -0.6,
                "measured_low": 5.9,
                "measured_high": 7.1,
            }
        ],
        "conclusion": ["parallel serves most users within the SLO"],
    }


def _runs(*failed: str) -> list[NotebookRun]:
    names = ["01_sequential_vs_parallel.ipynb", "02_failure_injection.ipynb", "05_strategies.ipynb"]
    return [
        NotebookRun(
            n, status="failed" if n in failed else "ok", error="Boom: <b>x</b>" if n in failed else None
        )
        for n in names
    ]


def _summary(d: Path, runs: list[NotebookRun], **kwargs: Any) -> dict[str, Any]:
    return build_summary(d, runs, {"common": {}}, Path("ci.yaml"), 12.0, git={"commit": "abc"}, **kwargs)


def _first_screen(index: str) -> str:
    """Everything before the first heading, as the end-to-end tests cut it."""
    return index[: index.index("<h2>")]


def test_an_ok_report_reads_as_a_three_line_verdict_then_charts_then_tables(tmp_path: Path) -> None:
    d = _report_dir(tmp_path)
    summary = _summary(d, _runs())
    assert summary["ok"] is True and len(summary["verdict"]) == 3
    status, speedup, strategies = summary["verdict"]
    assert status.startswith("All 3 notebooks ran")
    assert "4.00× faster on uniform-2s (95% CI 3.90–4.10; expected bound 5.82×; 3 of 3 pairs" in speedup
    assert "fastest parallel (p50 3.00 model s, p95 3.60; 2 of 2 complete)" in strategies
    assert "cheapest sequential ($8.00 per 1,000)" in strategies
    index = render_index(summary, d)
    first = _first_screen(index)
    assert (
        "SIMULATED" in first
        and "time_scale 0.01" in first
        and all(line in first for line in summary["verdict"])
    )
    positions = [index.index(marker) for marker in (
        "id='verdict'", "src='01_speedup_vs_bound.png'", "src='05_pareto.png'", "id='speedup'",
        "id='strategies'", "id='notebooks'", "src='01_gantt_uniform-2s.png'", "id='environment'",
    )]  # fmt: skip
    assert positions == sorted(positions)
    # the 11-row strategy table is folded; the 1-row speedup table is not
    strategies_html = index[index.index("id='strategies'") : index.index("id='notebooks'")]
    assert "<details>" in strategies_html and "11 strategy rows" in strategies_html
    assert "<details" not in index[index.index("id='speedup'") : index.index("id='strategies'")]
    assert "07_goodput.png" in index and "id='load'" not in index  # no 07 side file: no section, plot listed


def test_failures_come_first_and_are_never_reported_as_success(tmp_path: Path) -> None:
    d = _report_dir(tmp_path, s01_ok=False)
    summary = _summary(d, _runs("05_strategies.ipynb"))
    assert summary["ok"] is False
    assert summary["reasons"][0] == "05_strategies.ipynb failed: Boom: <b>x</b>"
    assert "01_sequential_vs_parallel: no complete pair: every call got HTTP 401" in summary["reasons"]
    status, speedup, _ = summary["verdict"]
    assert status.startswith("This report is NOT OK: 1 of 3 notebooks FAILED (exit code 1)")
    assert (
        speedup
        == "Parallel vs sequential: no speedup on uniform-2s: 0 of 3 sequential/parallel pairs complete."
    )
    first = _first_screen(render_index(summary, d))
    assert "class='banner verdict bad'" in first and "All 3 notebooks ran" not in first
    assert first.index("NOT OK") < first.index("Boom") < first.index("HTTP 401") < first.index("0 of 3")
    assert "Boom: &lt;b&gt;x&lt;/b&gt;" in first  # autoescaped


def test_a_headline_without_complete_generations_fails_the_report_even_when_every_notebook_ran(
    tmp_path: Path,
) -> None:
    d = _report_dir(tmp_path, s01_ok=False)
    summary = _summary(d, _runs())
    assert summary["ok"] is False
    assert summary["verdict"][0].startswith("This report is NOT OK (exit code 1): a headline figure")


def test_values_are_escaped_and_missing_figures_are_dashes_not_nan(tmp_path: Path) -> None:
    d = _report_dir(tmp_path)
    index = render_index(_summary(d, _runs()), d)
    assert "<script>alert(1)</script>" not in index and "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert not re.search(r">\s*nan\s*<", index, flags=re.IGNORECASE)
    row = index[index.index("&lt;script&gt;") :].split("</tr>")[0]
    assert "0 of 2" in row and "–" in row


def test_the_load_side_file_becomes_summary_fields_a_headline_chart_and_a_section(
    tmp_path: Path,
) -> None:
    d = _report_dir(tmp_path, load=True)
    summary = _summary(d, _runs())
    load = summary["load"]
    assert [k["strategy"] for k in load["knees"]] == ["parallel", "sequential"]
    assert load["slo_s"] == 15.0 and load["levels"][1]["load"] == 4 and load["load_key"] == "users"
    assert len(summary["verdict"]) == 3  # the verdict stays three lines; the knee is in its section
    index = render_index(summary, d)
    charts = index[index.index("id='charts'") : index.index("id='speedup'")]
    assert "src='07_goodput.png'" in charts
    section = index[index.index("id='load'") : index.index("id='notebooks'")]
    assert "9 of 10" in section and "24.0" in section and "5.9–7.1" in section
    assert "batching-6 (predicted)" in section and "-60%" in section
    assert "parallel serves most users within the SLO" in section


def test_a_failed_load_headline_fails_the_report(tmp_path: Path) -> None:
    d = _report_dir(tmp_path, load=True)
    data = json.loads((d / "07_load.json").read_text())
    (d / "07_load.json").write_text(json.dumps({**data, "ok": False, "reason": "every level over the SLO"}))
    summary = _summary(d, _runs())
    assert summary["ok"] is False and "07_under_load: every level over the SLO" in summary["reasons"]


def test_a_new_notebook_joins_through_one_registry_entry(tmp_path: Path) -> None:
    """The hook: a section's side file becomes summary fields, a headline chart, a verdict line, a page section
    and a say in the verdict, with nothing else changed."""
    d = _report_dir(tmp_path)
    (d / "09_new.json").write_text(json.dumps({"ok": False, "reason": "too few", "levels": []}))
    (d / "09_chart.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    def summarise(data: dict | None, summary: dict) -> dict:
        if data is None:
            return {"load": None}
        shape = {"unit": "users", "load_key": "users", "slo_s": None, "label": None, "prediction": []}
        shape |= {"knees": [], "all_knees": [], "levels": []}
        return {"load": {**shape, **data, "parallel_stops_paying_at": None, "conclusion": ["nine says hi"]}}

    extra = Section(
        "09_new",
        summarise,
        "Notebook nine",
        template="section_load.html.j2",
        shows=("load",),
        charts=("09_*.png",),
        headline=True,
        verdict=lambda s: "Nine: a line in words.",
    )
    sections = (*SECTIONS[:2], extra)
    summary = _summary(d, _runs(), sections=sections)
    assert summary["load"]["reason"] == "too few" and summary["reasons"] == ["09_new: too few"]
    assert summary["verdict"][-1] == "Nine: a line in words."
    index = render_index(summary, d, sections)
    assert "Notebook nine" in index and "nine says hi" in index
    assert index.index("src='09_chart.png'") < index.index("id='speedup'")


@pytest.mark.parametrize("goal_met", [True, False])
def test_the_calibration_section_states_the_error_and_the_verdict(tmp_path: Path, goal_met: bool) -> None:
    d = _report_dir(tmp_path)
    row = {"strategy": "parallel", "n_pairs": 2, "measured_speedup": 0.9, "predicted_speedup": 1.2,
           "error": 0.333, "within_goal": goal_met, "ci_low": 0.8, "ci_high": 1.0}  # fmt: skip
    side = {"capacity": 1, "goal": 0.15, "table": [row], "conclusion": ["a line"], "fit_notes": ["a note"]}
    (d / "06_calibration.json").write_text(json.dumps(side))
    index = render_index(_summary(d, _runs()), d)
    section = index[index.index("id='calibration'") : index.index("id='notebooks'")]
    assert "+33%" in section and "a line" in section and "fit: a note" in section and "within 15%" in section
    assert (">yes<" if goal_met else ">NO<") in section


def test_every_section_template_ships_as_package_data() -> None:
    """pyproject ships ``report/templates/*`` (one level, no subfolders): a template a section names must be a
    file right there, or a non-editable install renders no first page."""
    import tomllib

    import voorbeelden.report

    root = Path(voorbeelden.report.__file__).parent
    globs = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    assert "report/templates/*" in globs["voorbeelden"]
    templates = root / "templates"
    assert not [p for p in templates.iterdir() if p.is_dir()], "subfolders are not package data"
    for name in ["index.html.j2", "report.css", *(s.template for s in SECTIONS if s.template)]:
        assert (templates / name).is_file(), name


def test_the_engines_side_file_becomes_a_section_a_headline_chart_and_a_say_in_the_verdict(
    tmp_path: Path,
) -> None:
    d = _report_dir(tmp_path)
    side = {
        "ok": False,
        "reason": "llama-cpp-python: no complete pair",
        "simulated": False,
        "n_generations": 8,
        "n_complete_generations": 5,
        "speedup": [
            {
                "engine": "llama-server",
                "slots": 6,
                "n_pairs": 2,
                "n_pairs_total": 2,
                "pairs_complete": "2 of 2",
                "speedup_median": 2.1,
                "ci_low": 1.75,
                "ci_high": 2.64,
                "trial_bound_median": 5.0,
            },
            {
                "engine": "llama-cpp-python",
                "slots": 1,
                "n_pairs": 0,
                "n_pairs_total": 2,
                "pairs_complete": "0 of 2",
                "speedup_median": None,
                "ci_low": None,
                "ci_high": None,
                "trial_bound_median": None,
            },
        ],
        "server": [{"engine": "llama-server", "strategy": "parallel", "busy_slots_per_decode": 5.2}],
        "curve": [
            {"engine": "llama-server", "streams": n, "total_tokens_per_s": 50.0 * n} for n in (1, 2, 4)
        ],
        "verdict": ["llama-server (6 slot(s)): parallel 2.10x faster than sequential"],
    }
    (d / "08_local_engines.json").write_text(json.dumps(side))
    (d / "08_batching_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    summary = _summary(d, _runs())
    assert (
        summary["ok"] is False
        and "08_local_engines: llama-cpp-python: no complete pair" in summary["reasons"]
    )
    assert summary["engines"]["speedup"][0]["speedup_median"] == 2.1 and len(summary["verdict"]) == 3
    index = render_index(summary, d)
    assert index.index("src='08_batching_curve.png'") < index.index("id='speedup'")
    section = index[index.index("id='engines'") : index.index("id='notebooks'")]
    assert "2.10×" in section and "1.75–2.64" in section and "0 of 2" in section and "5 of 8" in section
    assert "parallel 2.10x faster" in section and "busy_slots_per_decode" in section and "5.20" in section
    assert "200.0" in section  # the curve's 4-stream row

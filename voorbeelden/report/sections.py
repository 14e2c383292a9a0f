"""The one place where a notebook's JSON side file becomes summary fields and a first-page section.

Each notebook writes ``<out_dir>/<notebook>.json`` (papermill's record/glue is gone, see the design notes).
A :class:`Section` says what the report makes of that file: the fields it adds to ``summary.json``, the
template that shows them on the first page, the PNGs that answer the notebook's question (shown as headline
charts above every table), whether its ``ok``/``reason`` decide the report's verdict, and the line it adds to
the three-line verdict. A new notebook gets onto the first page by adding one entry to :data:`SECTIONS` and
one template; nothing else in the report package needs to know about it.

Sections are applied in order, each seeing the summary assembled so far (notebook 06's notes explain
notebook 01's speedups, so 06 comes after 01).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from voorbeelden.report import verdict as words

Summariser = Callable[[Mapping[str, Any] | None, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Section:
    """What the report makes of one notebook's side file."""

    notebook: str
    """The notebook's stem (``01_sequential_vs_parallel``)."""
    summarise: Summariser
    """(side file or None when it is missing, summary so far) -> the fields this section adds to the summary.
    Called even without a side file, so the summary always has the section's keys (empty when not run)."""
    title: str
    template: str | None = None
    """First-page section (in ``report/templates/``), rendered with ``summary`` when :meth:`present`."""
    shows: tuple[str, ...] = ()
    """Summary fields of which one must be non-empty for the section to be shown."""
    side_file_name: str | None = None
    """The side file in the report folder; default ``<notebook>.json``."""
    charts: tuple[str, ...] = ()
    """PNG file names (glob patterns) the notebook saves that answer its question: the headline charts."""
    headline: bool = False
    """Its ``ok``/``reason`` decide the report's verdict (a headline that rests on incomplete data fails it)."""
    verdict: Callable[[Mapping[str, Any]], str | None] | None = None
    """Its line in the verdict, in words, from the finished summary (None: no line)."""

    @property
    def side_file(self) -> str:
        return self.side_file_name or f"{self.notebook}.json"

    def present(self, summary: Mapping[str, Any]) -> bool:
        """Whether the first page shows this section (a template, and something to show in it)."""
        return bool(self.template) and any(summary.get(key) for key in self.shows)


# --- the suite's notebooks ----------------------------------------------------------------------------------

_FAULT_KEYS = (
    "fault_kind",
    "fault_rate",
    "n",
    "n_complete",
    "parts_delivered",
    "complete",
    "predicted",
    "retries_per_gen",
    "wall_median_s",
    "wall_p95_s",
)
_STRATEGY_KEYS = (
    "profile",
    "strategy",
    "n",
    "n_complete",
    "wall_p50_s",
    "wall_p95_s",
    "first_visible_p50_s",
    "cost_usd_per_gen",
    "pareto",
)


def pick(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The summary's copy of a notebook's table: these columns only (None where one is missing)."""
    return [{k: row.get(k) for k in keys} for row in rows]


def _speedup(data: Mapping[str, Any] | None, _summary: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook 01's paired speedup per profile (in the summary's names) and the client overhead."""
    speedup = {
        row["profile"]: {
            "n_pairs": row["n_pairs"],
            "n_pairs_total": row.get("n_pairs_total", row["n_pairs"]),
            "median": row["speedup_median"],
            "ci_low": row["ci_low"],
            "ci_high": row["ci_high"],
            "trial_bound": row["trial_bound_median"],
            "expected_bound": row["expected_bound"],
            "efficiency": row["efficiency"],
            "wall_sequential_median_s": row["wall_base_median_s"],
            "wall_parallel_median_s": row["wall_other_median_s"],
        }
        for row in (data or {}).get("speedup", [])
    }
    overhead: dict[str, dict[str, float]] = {}
    for row in (data or {}).get("overhead", []):
        overhead.setdefault(row["profile"], {})[row["strategy"]] = row["median_ms"]
    return {"speedup": speedup, "overhead_median_ms": overhead}


def _faults(data: Mapping[str, Any] | None, _summary: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "faults": pick((data or {}).get("faults", []), _FAULT_KEYS),
        "faults_skipped": (data or {}).get("skipped"),
    }


def _strategies(data: Mapping[str, Any] | None, _summary: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "strategies": pick((data or {}).get("table", []), _STRATEGY_KEYS),
        "strategies_conclusion": list((data or {}).get("conclusion") or []),
    }


def _calibration(data: Mapping[str, Any] | None, summary: Mapping[str, Any]) -> dict[str, Any]:
    from voorbeelden.experiments.calibration import report_fields

    return report_fields(data, summary)


_LEVEL_KEYS = (
    "strategy",
    "load",
    "generations_measured",
    "generations_complete",
    "within_slo",
    "wall_p50_s",
    "wall_p95_s",
    "wall_p99_s",
    "first_visible_p50_s",
    "generations_per_min",
    "goodput_per_min",
    "calls_per_min",
    "rate_limited_429",
    "calls_in_flight_peak",
)


def _load(data: Mapping[str, Any] | None, _summary: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook 07 (under load, ``07_load.json``): the knee per strategy of every run, the levels of the first.

    The side file is the first run's :meth:`voorbeelden.experiments.load_sweep.SweepResult.to_dict` at the top
    level (plus ``label``, ``ok``, ``reason``, ``conclusion``, ``prediction``) and every run under ``runs``.
    Each level carries its load under ``users`` (closed loop) or ``rate`` (open loop), copied as ``load``."""
    if data is None:
        return {"load": None}
    settings = data.get("settings") or {}
    key = "rate" if "open" in (data.get("mode"), settings.get("mode")) else "users"
    runs = data.get("runs") or [data]

    def knees(run: Mapping[str, Any]) -> list[dict[str, Any]]:
        label = run.get("label") or data.get("label") or ""
        tag = " (predicted)" if run.get("prediction") else ""
        return [{"label": f"{label}{tag}", "strategy": s, **k} for s, k in (run.get("knee") or {}).items()]

    first = knees(data)
    return {
        "load": {
            "ok": bool(data.get("ok", True)),
            "reason": data.get("reason"),
            "label": data.get("label"),
            "load_key": key,
            "unit": (first[0].get("unit") if first else None) or key,
            "slo_s": settings.get("slo_s"),
            "knees": first,
            "all_knees": [k for run in runs for k in knees(run)],
            "levels": pick([{**lv, "load": lv.get(key)} for lv in data.get("levels") or []], _LEVEL_KEYS),
            "parallel_stops_paying_at": data.get("parallel_stops_paying_at"),
            "generations": data.get("generations") or {},
            "prediction": list(data.get("prediction") or []),
            "conclusion": list(data.get("conclusion") or []),
        }
    }


_ENGINE_SPEEDUP_KEYS = (
    "engine",
    "slots",
    "n_pairs",
    "n_pairs_total",
    "pairs_complete",
    "speedup_median",
    "ci_low",
    "ci_high",
    "trial_bound_median",
)


def _engines(data: Mapping[str, Any] | None, _summary: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook 08 (``08_local_engines.json``): per engine the paired speedup, the server's own counters and the
    batching curve (:func:`voorbeelden.experiments.engines.engines_experiment` writes it)."""
    if data is None:
        return {"engines": None}
    return {
        "engines": {
            "ok": bool(data.get("ok", True)),
            "reason": data.get("reason"),
            "simulated": bool(data.get("simulated")),
            "speedup": pick(data.get("speedup") or [], _ENGINE_SPEEDUP_KEYS),
            "server": list(data.get("server") or []),
            "curve": list(data.get("curve") or []),
            "verdict": list(data.get("verdict") or []),
            "n_generations": data.get("n_generations"),
            "n_complete_generations": data.get("n_complete_generations"),
        }
    }


SECTIONS: tuple[Section, ...] = (
    Section(
        "01_sequential_vs_parallel",
        _speedup,
        "Parallel speedup (sequential wall / parallel wall)",
        template="section_speedup.html.j2",
        shows=("speedup", "speedup_notes"),
        charts=("01_speedup_vs_bound.png",),
        headline=True,
        verdict=words.speedup_line,
    ),
    Section(
        "05_strategies",
        _strategies,
        "Strategies: latency, tail, cost",
        template="section_strategies.html.j2",
        shows=("strategies",),
        charts=("05_pareto.png",),
        headline=True,
        verdict=words.strategies_line,
    ),
    Section(
        "06_calibration",
        _calibration,
        "Calibrated simulator vs measured (notebook 06)",
        template="section_calibration.html.j2",
        shows=("calibration",),
    ),
    Section(
        "02_failure_injection",
        _faults,
        "Fault injection",
        template="section_faults.html.j2",
        shows=("faults", "faults_skipped"),
        headline=True,
    ),
    Section(
        "07_under_load",
        _load,
        "Under load",
        template="section_load.html.j2",
        shows=("load",),
        side_file_name="07_load.json",
        charts=("07_goodput.png",),
        headline=True,  # no verdict line: the verdict stays three lines; the knee is in the section and chart
    ),
    Section(
        "08_local_engines",
        _engines,
        "One model, two servers: queueing vs batching",
        template="section_engines.html.j2",
        shows=("engines",),
        charts=("08_batching_curve.png",),
        headline=True,
    ),
)

"""The report's first page (``index.html``): what the template needs, and the rendering.

Read at a glance, top to bottom: what ran against what (the backend banner), the verdict in three lines
(failures first, with every reason), the headline charts (the PNGs the sections name: speedup vs bound, the
strategies' Pareto front, ...), then the tables of each section, then the notebooks, the other plots, the
environment and the parameters, long lists folded in ``<details>``. All markup is in
``report/templates/index.html.j2`` and the section templates; this module only chooses what goes in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from voorbeelden.report.sections import SECTIONS, Section
from voorbeelden.report.templating import render

FOLD_ROWS = 8
"""A table or list longer than this is folded (``<details>``) so the next section stays in sight."""


def _backend_note(kind: str | None) -> str:
    if kind == "simulated":
        return (
            "All latencies come from the embedded simulator, scaled by time_scale: figures describe the "
            "simulated profile, not a live model."
        )
    if kind == "local":
        return "Measured against a real model served on this machine (no API key involved)."
    return (
        "Measured against a live endpoint (host shown; the API key is read from the environment and never "
        "stored)."
    )


def headline_charts(report_dir: Path, sections: Sequence[Section]) -> list[dict[str, str]]:
    """The PNGs that answer the sections' questions, in section order, with the section's title."""
    charts: list[dict[str, str]] = []
    for section in sections:
        for pattern in section.charts:
            for png in sorted(report_dir.glob(pattern)):
                if png.name not in {c["png"] for c in charts}:
                    charts.append({"png": png.name, "title": section.title})
    return charts


def page_context(
    summary: Mapping[str, Any], report_dir: Path, sections: Sequence[Section] = SECTIONS
) -> dict[str, Any]:
    """Everything ``index.html.j2`` shows, chosen from the summary and the report folder."""
    backend = summary.get("backend") or {}
    charts = headline_charts(report_dir, sections)
    shown = {c["png"] for c in charts}
    return {
        "summary": summary,
        "backend_kind": "sim" if backend.get("kind") == "simulated" else "real",
        "backend_note": _backend_note(backend.get("kind")),
        "unit": "model s" if backend.get("kind") == "simulated" else "s",
        "failed": [n for n in summary["notebooks"] if n["status"] != "ok"],
        "charts": charts,
        "other_plots": sorted(p.name for p in report_dir.glob("*.png") if p.name not in shown),
        "sections": [s for s in sections if s.present(summary)],
        "fold_rows": FOLD_ROWS,
        "params_json": {
            name: json.dumps(p, indent=1, ensure_ascii=False) for name, p in summary["params"].items()
        },
    }


def render_index(summary: Mapping[str, Any], report_dir: Path, sections: Sequence[Section] = SECTIONS) -> str:
    """The report's first page as HTML (autoescaped: no term, error or parameter can inject markup)."""
    return render("index.html.j2", **page_context(summary, report_dir, sections))

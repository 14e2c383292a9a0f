"""What ``voorbeelden compare`` reads from a report folder: the per-unit values behind each headline figure.

It reads only the files a report writes (``summary.json``, ``results.jsonl`` with one line per generation and
its call records, the notebooks' JSON side files), never the runner's internals, so a report written by an
older or newer runner compares the same way.

Figures come from a table of extractors (:data:`EXTRACTORS`): each takes a :class:`ReportData` and returns the
:class:`FigureData` it finds, an empty list when the report has no such figure. A new notebook adds one entry.
Every figure carries its units keyed so that the same trial of two runs has the same key (``pair`` of the
trial plan, with profile and strategy in the figure's name), which lets :mod:`compare_stats` pair them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voorbeelden.backend import model_seconds_factor
from voorbeelden.report.compare_stats import Bad, Stat

INCOMPLETE_MARK = "INCOMPLETE"  # the runner's mark of a report that ended before index.html


class NotAReport(ValueError):
    """The folder is missing, not a report, incomplete, or holds a file that cannot be read."""


@dataclass(frozen=True)
class FigureData:
    """One figure of one report: its per-unit values (unit key -> value) and how it is judged.

    ``bad`` is the direction that makes it worse (wall up, speedup down); ``stat`` reduces the units to the
    figure; ``n_total`` is how many units ran (incomplete ones included), for the completeness shown."""

    name: str
    stat: Stat
    bad: Bad
    unit: str
    values: Mapping[str, float]
    n_total: int
    group: str = ""  # the notebook it comes from (shown, and used to put charts side by side)
    pairable: bool = True  # False when equal keys in two runs are not the same trial (counted requests)


@dataclass
class ReportData:
    """A report folder, read: its summary and its generations (warm-up excluded) per notebook."""

    folder: Path
    summary: dict[str, Any]
    generations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def side_file(self, name: str) -> dict[str, Any] | None:
        """A notebook's JSON side file (``05_strategies.json``), None when absent."""
        path = self.folder / name
        return _read_json(path) if path.is_file() else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotAReport(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAReport(f"{path}: not valid JSON ({exc})") from None


def load_report(folder: str | Path) -> ReportData:
    """Read a report folder; :class:`NotAReport` says what is wrong with one that cannot be compared."""
    folder = Path(folder)
    if not folder.exists():
        raise NotAReport(f"{folder}: no such folder")
    if not folder.is_dir():
        raise NotAReport(f"{folder}: not a folder (give the report folder, e.g. reports/20261202-152825)")
    if (folder / INCOMPLETE_MARK).exists():
        raise NotAReport(
            f"{folder}: the report is incomplete (its run was interrupted or crashed; see INCOMPLETE)"
        )
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise NotAReport(f"{folder}: not a report folder (no summary.json; written by 'voorbeelden report')")
    summary = _read_json(summary_path)
    if not isinstance(summary, dict) or "params" not in summary or "backend" not in summary:
        raise NotAReport(f"{summary_path}: not a report summary (no 'params' / 'backend')")
    data = ReportData(folder, summary)
    results = folder / "results.jsonl"
    if not results.is_file():
        raise NotAReport(
            f"{folder}: no results.jsonl (the per-generation records every figure is computed from)"
        )
    try:
        lines = results.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAReport(f"{results}: cannot read it ({exc})") from None
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise NotAReport(f"{results}, line {no}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise NotAReport(f"{results}, line {no}: expected one generation (an object)")
        if row.get("warmup"):
            continue
        row.pop("records", None)  # call records are not needed for the figures; keep memory small
        data.generations.setdefault(str(row.get("notebook", "")), []).append(row)
    return data


# --- helpers -----------------------------------------------------------------------------------------------


def _complete(row: Mapping[str, Any]) -> bool:
    """All six parts delivered (the reports' definition; a row without ``n_failed`` is not complete)."""
    n_failed = row.get("n_failed")
    return isinstance(n_failed, int | float) and n_failed == 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _model_s(row: Mapping[str, Any], column: str) -> float | None:
    """A time of a generation row in model seconds (simulator) or seconds (a real endpoint)."""
    value = _number(row.get(column))
    return None if value is None else value * model_seconds_factor(_number(row.get("time_scale")))


def _key(row: Mapping[str, Any]) -> str:
    """The unit key: the trial plan's pair (``trial:begrip``), the same in every run with the same plan."""
    return str(row.get("pair") or f"{row.get('trial')}:{row.get('begrip')}")


def _groups(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Rows by (profile, strategy), in the order they first appear."""
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        out[(str(row.get("profile", "")), str(row.get("strategy", "")))].append(row)
    return out


def _per_generation(
    rows: list[Mapping[str, Any]], column: str, name: str, stat: Stat, group: str
) -> FigureData | None:
    """``stat`` of ``column`` (a time, in model seconds) over the complete generations of ``rows``."""
    values = {}
    for row in rows:
        value = _model_s(row, column)
        if _complete(row) and value is not None:
            values[_key(row)] = value
    if not values:
        return None
    return FigureData(name, stat, "up", "s", values, len(rows), group)


# --- extractors --------------------------------------------------------------------------------------------

NB01 = "01_sequential_vs_parallel"
NB05 = "05_strategies"


def speedup(report: ReportData) -> list[FigureData]:
    """Notebook 01: the median paired speedup (sequential wall / parallel wall) per profile, over complete
    pairs; the unit is the pair, so the CI is the paired trials' own."""
    out = []
    by = _groups(report.generations.get(NB01, []))
    for profile in dict.fromkeys(p for p, _ in by):
        seq = {_key(r): r for r in by.get((profile, "sequential"), [])}
        par = {_key(r): r for r in by.get((profile, "parallel"), [])}
        values = {}
        for key in seq.keys() & par.keys():
            a, b = _number(seq[key].get("wall_s")), _number(par[key].get("wall_s"))
            if _complete(seq[key]) and _complete(par[key]) and a is not None and b:
                values[key] = a / b
        if values:
            total = len(seq.keys() | par.keys())
            out.append(FigureData(f"speedup {profile}", "median", "down", "x", values, total, NB01))
    return out


def walls(report: ReportData) -> list[FigureData]:
    """Wall p50 and p95 per profile and strategy, over complete generations, from notebooks 01 and 05."""
    out = []
    for nb in (NB01, NB05):
        for (profile, strategy), rows in _groups(report.generations.get(nb, [])).items():
            for stat, label in (("median", "p50"), ("p95", "p95")):
                fig = _per_generation(rows, "wall_s", f"wall {label} {nb[:2]} {profile}/{strategy}", stat, nb)
                if fig is not None:
                    out.append(fig)
    return out


def first_part(report: ReportData) -> list[FigureData]:
    """Time to the first visible part (median) per profile and strategy, from notebooks 01 and 05."""
    out = []
    for nb in (NB01, NB05):
        for (profile, strategy), rows in _groups(report.generations.get(nb, [])).items():
            name = f"first part p50 {nb[:2]} {profile}/{strategy}"
            fig = _per_generation(rows, "first_visible_s", name, "median", nb)
            if fig is not None:
                out.append(fig)
    return out


def completeness(report: ReportData) -> list[FigureData]:
    """Share of generations that delivered all six parts, per notebook that measures speed (01, 05; not 02,
    whose subject is what injected faults do to completeness)."""
    out = []
    for nb in (NB01, NB05):
        rows = report.generations.get(nb, [])
        if rows:
            values = {f"{r.get('profile')}|{r.get('strategy')}|{_key(r)}": float(_complete(r)) for r in rows}
            out.append(FigureData(f"completeness {nb[:2]}", "mean", "down", "share", values, len(rows), nb))
    return out


def rate_limited_share(report: ReportData) -> list[FigureData]:
    """Notebook 04: the share of requests answered 429 per contender; the unit is the request (a run's
    ``sent_429`` of ``requests_total``), the only per-trial record that notebook keeps."""
    side = report.side_file("ratelimit_notebook.json")
    out = []
    for row in (side or {}).get("results", []) if isinstance(side, dict) else []:
        total, hit = row.get("requests_total"), row.get("sent_429")
        if not isinstance(total, int) or not isinstance(hit, int) or total <= 0 or not 0 <= hit <= total:
            continue
        values = {f"request {i}": float(i < hit) for i in range(total)}
        name = f"429 share 04 {row.get('mode')}/{row.get('contender')}"
        out.append(
            FigureData(name, "mean", "up", "share", values, total, "04_scale_and_rate_limits", pairable=False)
        )
    return out


def goodput(report: ReportData) -> list[FigureData]:
    """Notebook 07 (``07_load.json``): goodput per minute (complete generations within the SLO) per strategy
    and load level; the units are the level's consecutive measurement windows, each with its own goodput.
    Windows of two runs are not the same trials (arrivals differ), so they are never paired."""
    side = report.side_file("07_load.json")
    out = []
    for lv in (side or {}).get("levels", []) if isinstance(side, dict) else []:
        load_key = next((k for k in ("users", "rate") if k in lv), None)
        windows = [w.get("goodput_per_min") for w in lv.get("windows") or [] if isinstance(w, dict)]
        values = {f"window {i}": float(v) for i, v in enumerate(windows) if _number(v) is not None}
        if load_key is None or not values:
            continue
        name = f"goodput/min 07 {lv.get('strategy')} @ {load_key} {lv[load_key]:g}"
        out.append(
            FigureData(name, "mean", "down", "/min", values, len(windows), "07_under_load", pairable=False)
        )
    return out


Extractor = Callable[[ReportData], list[FigureData]]

# name -> extractor; a notebook that adds a headline adds one entry here.
EXTRACTORS: dict[str, Extractor] = {
    "speedup": speedup,
    "wall": walls,
    "first_part": first_part,
    "completeness": completeness,
    "rate_limited_share": rate_limited_share,
    "goodput": goodput,
}


def figures(report: ReportData, extractors: Mapping[str, Extractor] = EXTRACTORS) -> dict[str, FigureData]:
    """Every figure of a report, by name, in the extractors' order."""
    out: dict[str, FigureData] = {}
    for extract in extractors.values():
        for fig in extract(report):
            out[fig.name] = fig
    return out

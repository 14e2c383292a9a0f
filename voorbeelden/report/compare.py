"""Compare two report folders: for every headline figure both hold, the change as a ratio with a 95% bootstrap
CI from the per-trial records, and a verdict a CI job can gate on.

Why not the summaries' point values: on a shared machine one figure moves 5-10% between two runs of the same
commit, so "speedup went from 5.62x to 5.48x" says nothing by itself. The CI resamples the units behind the
figure in both runs (paired by trial when the two runs hold the same trials, see :mod:`compare_stats`), and a
figure is a ``regression`` only when its whole CI lies beyond the threshold in the bad direction.

Two reports are comparable only when they measured the same thing: the same backend (kind, profile,
time_scale, seed, model) and the same parameters per notebook. Otherwise :func:`compare_reports` raises
:class:`NotComparable` naming every difference, unless ``force`` is given (the differences are then kept in
:attr:`Comparison.differences` and shown above the table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voorbeelden.report import compare_stats as cs
from voorbeelden.report.compare_figures import (
    EXTRACTORS,
    Extractor,
    FigureData,
    ReportData,
    figures,
    load_report,
)

MISSING = "missing in new"  # a figure the base has and the new report lost: counted as a regression


class NotComparable(ValueError):
    """The two reports measured different things; ``differences`` says which."""

    def __init__(self, differences: list[str]) -> None:
        super().__init__("the reports are not comparable:\n  - " + "\n  - ".join(differences))
        self.differences = differences


@dataclass(frozen=True)
class FigureChange:
    """One figure in both reports: point values, ratio new/base with its CI, and the verdict."""

    name: str
    unit: str
    stat: str
    bad: str
    group: str
    estimate: cs.RatioEstimate | None
    verdict: str
    n_total_base: int = 0
    n_total_new: int = 0

    def as_json(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "name": self.name,
            "base": _finite(e.base) if e else None,
            "new": _finite(e.new) if e else None,
            "ratio": _finite(e.ratio) if e else None,
            "ci_low": _finite(e.ci_low) if e else None,
            "ci_high": _finite(e.ci_high) if e else None,
            "verdict": self.verdict,
            "unit": self.unit,
            "statistic": self.stat,
            "worse_when": self.bad,
            "notebook": self.group,
            "n_base": e.n_base if e else 0,
            "n_new": e.n_new if e else 0,
            "n_total_base": self.n_total_base,
            "n_total_new": self.n_total_new,
            "paired": e.paired if e else False,
        }


@dataclass
class Comparison:
    base: ReportData
    new: ReportData
    threshold: float
    n_boot: int
    level: float
    changes: list[FigureChange]
    only_in_new: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # non-empty only when compared with force

    @property
    def regressions(self) -> list[FigureChange]:
        return [c for c in self.changes if c.verdict in (cs.REGRESSION, MISSING)]

    @property
    def exit_code(self) -> int:
        """0 no regression, 1 at least one (a figure lost by the new report counts as one)."""
        return 1 if self.regressions else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "base": str(self.base.folder),
            "new": str(self.new.folder),
            "threshold": self.threshold,
            "level": self.level,
            "n_boot": self.n_boot,
            "comparable": not self.differences,
            "differences": self.differences,
            "figures": [c.as_json() for c in self.changes],
            "only_in_new": self.only_in_new,
            "counts": self.counts(),
            "new_report_ok": bool(self.new.summary.get("ok", True)),
            "new_report_reasons": list(self.new.summary.get("reasons") or []),
            "exit_code": self.exit_code,
        }


def _finite(value: float) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


# --- comparable or not -------------------------------------------------------------------------------------

_IGNORED_BACKEND_KEYS = {"chosen_by"}  # how the backend was chosen does not change what was measured


def _backend(summary: Mapping[str, Any]) -> dict[str, Any]:
    backend = dict(summary.get("backend") or {})
    if backend.get("kind") == "simulated":
        backend.pop("host", None)  # the embedded simulator's port is picked per run
    return {k: v for k, v in backend.items() if k not in _IGNORED_BACKEND_KEYS}


def differences(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Every difference that makes two report summaries measure different things (empty: comparable)."""
    out = []
    b_backend, n_backend = _backend(base), _backend(new)
    for key in sorted(set(b_backend) | set(n_backend), key=str):
        if b_backend.get(key) != n_backend.get(key):
            out.append(f"backend {key}: {b_backend.get(key)!r} in base, {n_backend.get(key)!r} in new")
    for key in (
        "generation",
        "model",
    ):  # run-wide request overrides (seed policy), when a summary records them
        if base.get(key) != new.get(key):
            out.append(f"{key}: {base.get(key)!r} in base, {new.get(key)!r} in new")
    b_params, n_params = dict(base.get("params") or {}), dict(new.get("params") or {})
    for nb in sorted(set(b_params) - set(n_params)):
        out.append(f"notebook {nb}: run in base only")
    for nb in sorted(set(n_params) - set(b_params)):
        out.append(f"notebook {nb}: run in new only")
    for nb in sorted(set(b_params) & set(n_params)):
        # "backend" is the choice (auto, sim, ...): what it resolved to is compared above, so "auto" that chose
        # the simulator and "sim" measured the same thing
        bp = {k: v for k, v in (b_params[nb] or {}).items() if k != "backend"}
        np_ = {k: v for k, v in (n_params[nb] or {}).items() if k != "backend"}
        for key in sorted(set(bp) | set(np_)):
            if bp.get(key, "<unset>") != np_.get(key, "<unset>"):
                out.append(
                    f"{nb} {key}: {bp.get(key, '<unset>')!r} in base, {np_.get(key, '<unset>')!r} in new"
                )
    return out


# --- the comparison ----------------------------------------------------------------------------------------


def compare_figures(
    base: Mapping[str, FigureData],
    new: Mapping[str, FigureData],
    *,
    threshold: float,
    n_boot: int = cs.DEFAULT_N_BOOT,
    level: float = cs.DEFAULT_LEVEL,
    seed: int = 0,
) -> tuple[list[FigureChange], list[str]]:
    """Judge every figure of ``base`` against ``new`` (in base's order); and the names only ``new`` has."""
    changes = []
    for name, b in base.items():
        n = new.get(name)
        if n is None:
            changes.append(FigureChange(name, b.unit, b.stat, b.bad, b.group, None, MISSING, b.n_total, 0))
            continue
        est = cs.ratio_ci(
            b.values, n.values, b.stat, n_boot=n_boot, level=level, seed=seed, pairable=b.pairable
        )
        verdict = cs.verdict(est.ci_low, est.ci_high, threshold, b.bad)
        changes.append(FigureChange(name, b.unit, b.stat, b.bad, b.group, est, verdict, b.n_total, n.n_total))
    return changes, [name for name in new if name not in base]


def compare_reports(
    base: str | Path,
    new: str | Path,
    *,
    threshold: float = 0.05,
    force: bool = False,
    n_boot: int = cs.DEFAULT_N_BOOT,
    level: float = cs.DEFAULT_LEVEL,
    seed: int = 0,
    extractors: Mapping[str, Extractor] = EXTRACTORS,
) -> Comparison:
    """Read both folders and compare them. Raises :class:`compare_figures.NotAReport` for a folder that is
    not a complete report and :class:`NotComparable` (unless ``force``) for reports that measured different
    things; ``seed`` fixes the bootstrap, so the same two folders always give the same table."""
    b, n = load_report(base), load_report(new)
    diffs = differences(b.summary, n.summary)
    if diffs and not force:
        raise NotComparable(diffs)
    changes, only_new = compare_figures(
        figures(b, extractors),
        figures(n, extractors),
        threshold=threshold,
        n_boot=n_boot,
        level=level,
        seed=seed,
    )
    return Comparison(b, n, threshold, n_boot, level, changes, only_new, diffs)


# --- the table on stdout -----------------------------------------------------------------------------------


def _value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "–"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "/min":
        return f"{value:.1f}/min"
    return f"{value:.2f}{'x' if unit == 'x' else ' s'}"


def format_table(result: Comparison) -> str:
    """The comparison as text: differences (when forced), one line per figure, the count per verdict."""
    lines = [
        f"compare {result.base.folder} -> {result.new.folder}",
        f"threshold {result.threshold:.0%}; ratio = new / base with a {result.level:.0%} bootstrap CI "
        f"({result.n_boot} resamples of the per-trial records; 'paired' = the same trials in both runs)",
    ]
    if result.differences:
        lines.append("NOT COMPARABLE, compared anyway (--force); the reports differ in:")
        lines += [f"  - {d}" for d in result.differences]
    if not result.new.summary.get("ok", True):
        lines.append(
            "the NEW report is NOT OK: " + "; ".join(result.new.summary.get("reasons") or ["(no reason)"])
        )
    width = max([len(c.name) for c in result.changes] + [6])
    lines.append(
        f"{'figure':<{width}}  {'base':>10}  {'new':>10}  {'ratio':>6}  {'95% CI':>15}  {'n used of n run: base / new':>28}  verdict"
    )
    for c in result.changes:
        e = c.estimate
        if e is None:
            lines.append(f"{c.name:<{width}}  {'':>10}  {'':>10}  {'':>6}  {'':>15}  {'':>28}  {c.verdict}")
            continue
        ci = f"{e.ci_low:.3f}-{e.ci_high:.3f}" if not math.isnan(e.ci_low) else "–"
        n = f"{e.n_base} of {c.n_total_base} / {e.n_new} of {c.n_total_new}{' paired' if e.paired else ''}"
        ratio = f"{e.ratio:.3f}" if math.isfinite(e.ratio) else "–"
        lines.append(
            f"{c.name:<{width}}  {_value(e.base, c.unit):>10}  {_value(e.new, c.unit):>10}  {ratio:>6}  "
            f"{ci:>15}  {n:>28}  {c.verdict}"
        )
    if result.only_in_new:
        lines.append("only in new (not judged): " + ", ".join(result.only_in_new))
    counts = result.counts()
    lines.append(
        f"{len(result.changes)} figures: "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in (cs.REGRESSION, MISSING, cs.IMPROVEMENT, cs.NO_CHANGE))
        + (f", {counts[cs.INSUFFICIENT]} {cs.INSUFFICIENT}" if counts.get(cs.INSUFFICIENT) else "")
    )
    lines.append(
        f"REGRESSION (exit 1): {', '.join(c.name for c in result.regressions)}"
        if result.regressions
        else "no regression (exit 0)"
    )
    return "\n".join(lines)

"""``voorbeelden compare --html FILE``: one self-contained page with the deltas and both runs' charts.

Images are embedded (base64 data URIs), so the page stays whole when a CI job keeps it as a single artifact
without the two report folders. The delta chart draws every judged figure's ratio with its CI against the
threshold band, so a regression is seen at a glance and so is how far the noise reached.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

from voorbeelden.redact import redact
from voorbeelden.report import compare_stats as cs
from voorbeelden.report.compare import MISSING, Comparison, _value
from voorbeelden.report.templating import render


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(path: Path) -> str | None:
    try:
        return _data_uri(path.read_bytes()) if path.is_file() else None
    except OSError:
        return None


def charts(result: Comparison) -> list[dict[str, Any]]:
    """Every PNG of either report, by name: the base's and the new one's (None where a report has none)."""
    names = sorted({p.name for r in (result.base, result.new) for p in r.folder.glob("*.png")})
    return [
        {"name": n, "base": _png(result.base.folder / n), "new": _png(result.new.folder / n)} for n in names
    ]


def forest(result: Comparison) -> str | None:
    """The ratio and CI of every figure that has one, with the ``1 ± threshold`` band, as a PNG data URI."""
    from voorbeelden.experiments.plots import _figure, _style

    rows = [
        c
        for c in result.changes
        if c.estimate is not None and math.isfinite(c.estimate.ci_low) and math.isfinite(c.estimate.ratio)
    ]
    if not rows:
        return None
    fig = _figure(9.0, 0.6 + 0.24 * len(rows))
    ax = fig.subplots()
    t = result.threshold
    ax.axvspan(1 - t, 1 + t, color="#e6eef5", label=f"within ±{t:.0%}")
    ax.axvline(1.0, color="#778", lw=0.8)
    colour = {cs.REGRESSION: "#d62828", cs.IMPROVEMENT: "#2a7d2a"}
    for y, c in enumerate(reversed(rows)):
        e = c.estimate
        assert e is not None
        col = colour.get(c.verdict, "#1d2b36")
        ax.plot([e.ci_low, e.ci_high], [y, y], color=col, lw=2)
        ax.plot([e.ratio], [y], "o", color=col, ms=4)
    ax.set_yticks(range(len(rows)), [c.name for c in reversed(rows)])
    ax.set_xlabel("new / base (95% CI); red: regression, green: improvement")
    ax.legend(loc="lower right", fontsize=7)
    _style(ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return _data_uri(buf.getvalue())


def _row(c: Any) -> dict[str, str]:
    e = c.estimate
    css = (
        "missing"
        if c.verdict == MISSING
        else c.verdict
        if c.verdict in (cs.REGRESSION, cs.IMPROVEMENT)
        else ""
    )
    if e is None:
        return {
            "css": css,
            "name": c.name,
            "base": "",
            "new": "",
            "ratio": "",
            "ci": "",
            "n": "",
            "verdict": c.verdict,
        }
    return {
        "css": css,
        "name": c.name,
        "base": _value(e.base, c.unit),
        "new": _value(e.new, c.unit),
        "ratio": f"{e.ratio:.3f}" if math.isfinite(e.ratio) else "–",
        "ci": f"{e.ci_low:.3f}–{e.ci_high:.3f}" if not math.isnan(e.ci_low) else "–",
        "n": f"{e.n_base} of {c.n_total_base} / {e.n_new} of {c.n_total_new}{' paired' if e.paired else ''}",
        "verdict": c.verdict,
    }


def _side(report: Any) -> dict[str, str]:
    git = (report.summary.get("environment") or {}).get("git") or {}
    commit = str(git.get("commit") or "unknown")[:10] + (" (uncommitted changes)" if git.get("dirty") else "")
    return {"name": report.folder.name, "folder": str(report.folder), "commit": commit}


def render_page(result: Comparison) -> str:
    counts = result.counts()
    return render(
        "compare.html.j2",
        base=_side(result.base),
        new=_side(result.new),
        threshold=f"{result.threshold:.0%}",
        level=f"{result.level:.0%}",
        n_boot=result.n_boot,
        differences=result.differences,
        new_reasons=[]
        if result.new.summary.get("ok", True)
        else list(result.new.summary.get("reasons") or []),
        regressions=[c.name for c in result.regressions],
        counts=", ".join(f"{n} {v}" for v, n in counts.items()),
        forest=forest(result),
        rows=[_row(c) for c in result.changes],
        only_in_new=result.only_in_new,
        charts=charts(result),
    )


def write_page(result: Comparison, path: str | Path) -> Path:
    """Write the page (redacted, like every report file) to ``path``."""
    path = Path(path)
    path.write_text(redact(render_page(result)), encoding="utf-8")
    return path

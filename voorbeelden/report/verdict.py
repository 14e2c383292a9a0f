"""The report's verdict in words: what a reader should take away, computed from the summary's figures.

The first line is whether the report is OK (failures first: a failed notebook or a headline without complete
generations is said before any figure). The next lines come from the sections (see
:mod:`voorbeelden.report.sections`): each figure with its completeness (n of N), its spread (95% CI or p95)
and its bound, so no number is read without knowing what it stands on. Plain text: ``summary.json`` keeps it
and the first page shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _x(value: Any) -> str:
    return f"{value:.2f}×" if finite(value) else "n/a"


def n_of(n: Any, total: Any) -> str:
    if n is None:
        return "–"
    return f"{int(n)} of {int(total)}" if total is not None else str(int(n))


def status_line(notebooks: Sequence[Mapping[str, Any]], reasons: Sequence[str]) -> str:
    """OK, or NOT OK with how many notebooks failed; the reasons themselves are listed beside it."""
    failed = [n for n in notebooks if n.get("status") != "ok"]
    if failed:
        return (
            f"This report is NOT OK: {len(failed)} of {len(notebooks)} notebooks FAILED (exit code 1); "
            "why is listed below, failures first."
        )
    if reasons:
        return (
            "This report is NOT OK (exit code 1): a headline figure does not rest on complete generations; "
            "why is listed below."
        )
    ran = "The notebook ran" if len(notebooks) == 1 else f"All {len(notebooks)} notebooks ran"
    return f"{ran}, and every headline figure rests on complete generations (all six parts delivered)."


def speedup_line(summary: Mapping[str, Any]) -> str | None:
    """Notebook 01: how much faster parallel was than sequential, per profile, beside what the latencies allow."""
    speedup = summary.get("speedup") or {}
    if not speedup:
        return None
    parts = []
    for profile, s in speedup.items():
        pairs = n_of(s.get("n_pairs"), s.get("n_pairs_total"))
        if not s.get("n_pairs") or not finite(s.get("median")):
            parts.append(f"no speedup on {profile}: {pairs} sequential/parallel pairs complete")
            continue
        faster = "faster" if s["median"] >= 1 else "i.e. slower"
        if finite(s.get("expected_bound")):
            bound = f"expected bound {_x(s['expected_bound'])}"
        else:
            bound = f"per-trial bound {_x(s.get('trial_bound'))}"
        parts.append(
            f"{_x(s['median'])} {faster} on {profile} (95% CI {s['ci_low']:.2f}–{s['ci_high']:.2f}; "
            f"{bound}; {pairs} pairs complete)"
        )
    return "Parallel vs sequential: " + "; ".join(parts) + "."


def strategies_line(summary: Mapping[str, Any]) -> str | None:
    """Notebook 05: per profile the fastest (median wall) and the cheapest strategy among complete ones."""
    rows = summary.get("strategies") or []
    if not rows:
        return None
    unit = "model s" if (summary.get("backend") or {}).get("kind") == "simulated" else "s"
    parts = []
    for profile in dict.fromkeys(r["profile"] for r in rows):
        mine = [r for r in rows if r["profile"] == profile]
        usable = [r for r in mine if r.get("n_complete") and finite(r.get("wall_p50_s"))]
        if not usable:
            done = sum(int(r.get("n_complete") or 0) for r in mine)
            parts.append(
                f"{profile}: no figure: {done} of {sum(int(r.get('n') or 0) for r in mine)} complete"
            )
            continue
        fast = min(usable, key=lambda r: r["wall_p50_s"])
        text = (
            f"{profile}: fastest {fast['strategy']} (p50 {fast['wall_p50_s']:.2f} {unit}, p95 "
            f"{fast['wall_p95_s']:.2f}; {n_of(fast['n_complete'], fast.get('n'))} complete)"
        )
        priced = [r for r in usable if finite(r.get("cost_usd_per_gen"))]
        if priced:
            cheap = min(priced, key=lambda r: r["cost_usd_per_gen"])
            text += f", cheapest {cheap['strategy']} (${cheap['cost_usd_per_gen'] * 1000:.2f} per 1,000)"
        parts.append(text)
    return "Strategies: " + "; ".join(parts) + "."

"""Report figures, drawn with matplotlib's object API (no pyplot state, so any backend works, Agg included).

Every function returns a :class:`~matplotlib.figure.Figure`; callers save it explicitly (:func:`save`).
Sizes and fonts are chosen to stay readable when a PNG is shown at report or slide size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from voorbeelden.types import ALL_PARTS

STATUS_COLOURS: dict[str, str] = {
    "ok": "#2a9d8f",
    "error": "#d62828",
    "timeout": "#f77f00",
    "rate_limited": "#7b2cbf",
    "parse_error": "#8d5524",
    "cancelled": "#9e9e9e",
}
SERIES_COLOURS = ("#264653", "#e76f51", "#2a9d8f", "#e9c46a", "#8338ec", "#f4a261", "#3a86ff", "#6d6875")
PART_ORDER = [p.value for p in ALL_PARTS]

_RC = {
    "font.size": 12,
    "axes.titlesize": 14,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10,
    "figure.titlesize": 15,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _figure(width: float, height: float) -> Figure:
    import matplotlib as mpl

    with mpl.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _style(ax: Any) -> None:
    ax.title.set_fontsize(_RC["axes.titlesize"])
    ax.xaxis.label.set_fontsize(_RC["axes.labelsize"])
    ax.yaxis.label.set_fontsize(_RC["axes.labelsize"])
    ax.tick_params(labelsize=_RC["xtick.labelsize"])
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def save(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Write ``fig`` as PNG (parents created) and return the path.

    The file name keeps only letters, digits, ``.``, ``_`` and ``-``: a name built from a backend label such as
    ``local (127.0.0.1:8080)`` would otherwise carry spaces and a colon into links and other file systems."""
    path = Path(path)
    path = path.with_name(re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._-]", "_", path.name)).replace("_.", "."))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


# --- Gantt -----------------------------------------------------------------------------------------------


def gantt(
    records: pd.DataFrame,
    *,
    walls: Mapping[str, float] | None = None,
    title: str = "Call timeline per strategy",
    time_scale: float | None = None,
) -> Figure:
    """One panel per strategy, one row per part, one bar per attempt from ``t_start`` to ``t_end``
    (seconds since the generation started), coloured by status; retries are labelled ``#2``, ``#3``...,
    hedged backups hatched. ``walls`` draws each generation's wall time as a vertical line."""
    strategies = sorted(dict.fromkeys(records["strategy"]), key=lambda s: (s != "sequential", s))
    fig = _figure(11, 1.2 + 2.5 * max(1, len(strategies)))
    axes = fig.subplots(len(strategies), 1, sharex=True, squeeze=False)[:, 0]
    seen: set[str] = set()
    xmax = float(records["t_end"].max()) if len(records) else 1.0
    for ax, strategy in zip(axes, strategies, strict=True):
        df = records[records["strategy"] == strategy]
        parts = [p for p in PART_ORDER if p in set(df["part"])] + sorted(set(df["part"]) - set(PART_ORDER))
        ypos = {p: i for i, p in enumerate(parts)}
        for rec in df.itertuples(index=False):
            seen.add(str(rec.status))
            _attempt_bar(ax, rec, ypos[rec.part], xmax)
        ax.set_yticks(range(len(parts)), parts)
        ax.invert_yaxis()
        ax.set_xlim(0, xmax * 1.02)
        wall = (walls or {}).get(strategy)
        if wall is not None:
            ax.axvline(wall, color="black", linestyle="--", linewidth=1.2)
            ax.text(wall, -0.7, f" wall {wall:.2f} s", va="bottom", ha="left", fontsize=10)
        ax.set_title(f"{strategy}", loc="left", fontweight="bold")
        ax.grid(axis="x", alpha=0.3)
        _style(ax)
    unit = "s since the generation started" + (f", time_scale={time_scale:g}" if time_scale else "")
    axes[-1].set_xlabel(f"time ({unit})")
    handles = [
        Patch(facecolor=STATUS_COLOURS.get(s, "#555555"), edgecolor="black", label=s) for s in sorted(seen)
    ]
    if handles:
        fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), title="attempt status")
    fig.suptitle(title, x=0.01, ha="left")
    return fig


def _attempt_bar(ax: Any, rec: Any, y: int, xmax: float) -> None:
    """One attempt as a bar coloured by status (hedged backups hatched), labelled ``#n`` when a retry."""
    hedge = bool(getattr(rec, "hedge", False))
    ax.barh(
        y,
        max(rec.t_end - rec.t_start, xmax * 0.002),
        left=rec.t_start,
        height=0.62,
        color=STATUS_COLOURS.get(str(rec.status), "#555555"),
        edgecolor="black",
        linewidth=0.6,
        hatch="//" if hedge else None,
        alpha=0.9,
    )
    if int(rec.attempt) > 1 or hedge:
        label = f"#{int(rec.attempt)}" if not hedge else "hedge"
        ax.text(
            rec.t_start + (rec.t_end - rec.t_start) / 2,
            y,
            label,
            ha="center",
            va="center",
            fontsize=9,
            color="white",
            fontweight="bold",
        )


def pick_pair(gens: pd.DataFrame, *, by: Mapping[str, Any] | None = None) -> str:
    """The pair whose speedup is the median of its group: a typical, not a flattering, example."""
    from voorbeelden.experiments.stats import paired_speedups

    g = gens
    for k, v in (by or {}).items():
        g = g[g[k] == v]
    pairs = paired_speedups(g).sort_values("speedup").reset_index(drop=True)
    if not len(pairs):
        raise ValueError("no complete pair (sequential + parallel) to draw")
    return str(pairs.loc[len(pairs) // 2, "pair"])


# --- latency distribution ----------------------------------------------------------------------------------


def latency_by_part(
    records: pd.DataFrame,
    *,
    by: str | None = "profile",
    time_scale: float | None = None,
    title: str = "Call latency per part",
) -> Figure:
    """Box plot plus jittered points of each part's latency (final attempts of all strategies), one panel
    per ``by`` value. With ``time_scale`` a right axis shows the unscaled (model-time) seconds."""
    df = records[~records["warmup"].astype(bool)] if "warmup" in records else records
    df = df[~df.get("hedge", pd.Series(False, index=df.index)).astype(bool)]
    groups = list(dict.fromkeys(df[by])) if by and by in df else [None]
    fig = _figure(11, 1.5 + 3.6 * len(groups))
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    rng = np.random.default_rng(0)
    for ax, group in zip(axes, groups, strict=True):
        sub = df if group is None else df[df[by] == group]
        parts = sorted(set(sub["part"]), key=lambda p: sub.loc[sub["part"] == p, "latency_s"].median())
        data = [sub.loc[sub["part"] == p, "latency_s"].to_numpy() for p in parts]
        ax.boxplot(
            data,
            orientation="horizontal",
            widths=0.55,
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "#e9f5f3", "edgecolor": "#264653"},
            medianprops={"color": "#e76f51", "linewidth": 2},
        )
        for i, values in enumerate(data, start=1):
            jitter = rng.uniform(-0.18, 0.18, size=len(values))
            ax.scatter(values, i + jitter, s=12, alpha=0.55, color="#264653", linewidths=0)
        ax.set_yticks(range(1, len(parts) + 1), parts)
        ax.set_xlabel("measured latency per attempt (s, wall clock)")
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
        if group is not None:
            ax.set_title(f"{by} = {group}", loc="left", fontweight="bold")
        ts = time_scale
        if ts is None and "time_scale" in sub and sub["time_scale"].notna().any():
            ts = float(sub["time_scale"].dropna().iloc[0])
        if ts:
            sec = ax.secondary_xaxis("top", functions=(lambda x, s=ts: x / s, lambda x, s=ts: x * s))
            sec.set_xlabel(f"model time (s) = measured / time_scale {ts:g}")
            sec.tick_params(labelsize=_RC["xtick.labelsize"])
        _style(ax)
    fig.suptitle(title, x=0.01, ha="left")
    return fig


# --- speedup vs bound --------------------------------------------------------------------------------------


def _bar_labels(ax: Any, pos: np.ndarray, vals: np.ndarray, colour: str) -> None:
    """Each finite bar's value: inside its top (clear of error bars and reference lines), above a short one."""
    for xi, v in zip(pos, vals, strict=True):
        if not np.isfinite(v):
            continue
        if v > 0.6:
            ax.text(
                xi, v - 0.08, f"{v:.2f}×", ha="center", va="top", fontsize=11, fontweight="bold", color=colour
            )
        else:
            ax.text(xi, v + 0.08, f"{v:.2f}×", ha="center", va="bottom", fontsize=11, fontweight="bold")


def speedup_vs_bound(
    summary: pd.DataFrame,
    *,
    label: str = "profile",
    n_calls: int = 6,
    title: str = "Parallel speedup: measured vs what the latencies allow",
) -> Figure:
    """Per group (profile): the measured median paired speedup with its 95% CI, the median per-trial
    bound (sum/max of that trial's latencies), the expected bound E[sum]/E[max], and the naive n-fold line."""
    fig = _figure(10, 5.8)
    ax = fig.subplots()
    labels = [str(v) for v in summary[label]]
    if "pairs_complete" in summary:  # every figure with the count it stands on
        labels = [
            f"{name}\n({done} pairs complete)"
            for name, done in zip(labels, summary["pairs_complete"], strict=True)
        ]
    x = np.arange(len(labels))
    w = 0.26
    series = [
        ("measured median speedup (95% CI)", summary["speedup_median"], SERIES_COLOURS[0]),
        ("per-trial bound: Σ latency / max latency", summary["trial_bound_median"], SERIES_COLOURS[2]),
        ("expected bound: E[Σ] / E[max] (Monte Carlo)", summary["expected_bound"], SERIES_COLOURS[3]),
    ]
    for k, (name, values, colour) in enumerate(series):
        vals = np.asarray(values, dtype=float)
        pos = x + (k - 1) * w
        kwargs: dict[str, Any] = {}
        if k == 0:
            err = np.vstack(
                [vals - summary["ci_low"].to_numpy(float), summary["ci_high"].to_numpy(float) - vals]
            )
            kwargs = {
                "yerr": np.clip(err, 0, None),
                "capsize": 7,
                "error_kw": {"linewidth": 2.2, "ecolor": "#e76f51", "capthick": 2.2},
            }
        ax.bar(
            pos, np.nan_to_num(vals), w, label=name, color=colour, edgecolor="black", linewidth=0.6, **kwargs
        )
        _bar_labels(ax, pos, vals, "white" if k != 2 else "black")
    ax.axhline(n_calls, color="#d62828", linestyle="--", linewidth=1.5)
    naive = f"naive {n_calls}×: needs {n_calls} equal calls and perfect overlap"
    ax.text(-0.55, n_calls + 0.1, naive, color="#d62828", va="bottom", ha="left", fontsize=11)
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.set_xticks(x, labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylim(0, max(n_calls + 2.2, float(np.nanmax(summary["ci_high"].to_numpy(float))) + 2.2))
    ax.set_ylabel("speedup (sequential wall / parallel wall, ×)")
    ax.set_xlabel(f"latency {label}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", frameon=True)
    ax.set_title(title, loc="left")
    _style(ax)
    return fig


# --- faults ------------------------------------------------------------------------------------------------


def completeness_vs_fault_rate(
    faults: pd.DataFrame,
    *,
    max_retries: int,
    title: str = "Fault injection: parts delivered and wall time",
) -> Figure:
    """Left: fraction of parts delivered vs fault rate, one line per fault kind, with the prediction
    1 - p^(retries+1) for retryable kinds. Right: wall time median (solid) and p95 (dotted) vs fault rate."""
    from voorbeelden.experiments.retries import predicted_delivery

    fig = _figure(13, 5.6)
    ax1, ax2 = fig.subplots(1, 2)
    kinds = list(dict.fromkeys(faults["fault_kind"]))
    rates = np.linspace(0, max(0.05, float(faults["fault_rate"].max())), 100)
    for i, kind in enumerate(kinds):
        df = faults[faults["fault_kind"] == kind].sort_values("fault_rate")
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        ax1.plot(
            df["fault_rate"], 100 * df["parts_delivered"], marker="o", color=colour, linewidth=2, label=kind
        )
        ax2.plot(df["fault_rate"], df["wall_median_s"], marker="o", color=colour, linewidth=2, label=kind)
        ax2.plot(df["fault_rate"], df["wall_p95_s"], marker=".", color=colour, linewidth=1.3, linestyle=":")
    ax1.plot(
        rates,
        [100 * predicted_delivery(r, max_retries) for r in rates],
        color="black",
        linestyle="--",
        linewidth=1.6,
        label=f"prediction 1 − p^{max_retries + 1} (retryable)",
    )
    ax1.plot(rates, 100 * (1 - rates), color="grey", linestyle=":", linewidth=1.4, label="no retry: 1 − p")
    ax1.set_xlabel("fault rate p (probability per attempt)")
    ax1.set_ylabel("parts delivered (%)")
    ax1.set_ylim(min(50.0, float(100 * faults["parts_delivered"].min()) - 5), 101)
    ax1.set_title(f"Parts delivered (max_retries={max_retries})", loc="left")
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower left", title="fault kind")
    ax2.set_xlabel("fault rate p (probability per attempt)")
    ax2.set_ylabel("wall time per generation (s)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Wall time: median (solid), p95 (dotted)", loc="left")
    ax2.grid(alpha=0.3)
    extra = [
        Line2D([], [], color="black", linewidth=2, label="median"),
        Line2D([], [], color="black", linewidth=1.3, linestyle=":", label="p95"),
    ]
    ax2.legend(
        handles=[*ax2.get_legend_handles_labels()[0][: len(kinds)], *extra],
        loc="upper left",
        title="fault kind",
    )
    for ax in (ax1, ax2):
        _style(ax)
    fig.suptitle(title, x=0.01, ha="left")
    return fig


__all__: Sequence[str] = (
    "completeness_vs_fault_rate",
    "gantt",
    "latency_by_part",
    "pick_pair",
    "save",
    "speedup_vs_bound",
)


def show(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Save ``fig`` as PNG and display that file in a notebook (the report shows exactly the saved image)."""
    saved = save(fig, path, dpi=dpi)
    try:
        from IPython.display import Image, display
    except ImportError:  # plain Python: saving is all there is to do
        return saved
    display(Image(filename=str(saved)))
    return saved

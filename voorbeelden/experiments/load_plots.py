"""Notebook 07's figures, drawn from its level table (one row per label, strategy and load level).

Latency against throughput, not against load: a curve that bends upward at flat throughput is saturation,
whatever the load that caused it. Goodput against offered load shows the knee as where the curves part
from the load line (open loop) or flatten (closed loop).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from voorbeelden.experiments.plots import _figure, _style

_COLOURS = {"sequential": "#4c72b0", "parallel": "#dd8452", "bounded": "#55a868"}


def _axes(fig: Figure, n: int) -> list[Any]:
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax in axes:
        _style(ax)
    return list(axes)


def _colour(strategy: str) -> str | None:
    return _COLOURS.get(strategy)


def plot_latency_throughput(table: pd.DataFrame, slo_s: float, load_key: str) -> Figure:
    """Per label: p95 (solid) and p50 (dashed) generation wall against generations/min, one curve per
    strategy, each point labelled with its load; the SLO as a horizontal line."""
    labels = list(dict.fromkeys(table["label"]))
    fig = _figure(4.6 * len(labels), 3.6)
    for ax, label in zip(_axes(fig, len(labels)), labels, strict=True):
        part = table[table["label"] == label]
        for strategy, rows in part.groupby("strategy", sort=False):
            rows = rows.sort_values(load_key)
            c = _colour(str(strategy))
            _ = ax.plot(
                rows["generations_per_min"], rows["wall_p95_s"], "o-", color=c, label=f"{strategy} p95"
            )
            _ = ax.plot(rows["generations_per_min"], rows["wall_p50_s"], ".--", color=c, alpha=0.6)
            for x, y, n in zip(rows["generations_per_min"], rows["wall_p95_s"], rows[load_key], strict=True):
                if pd.notna(y):
                    _ = ax.annotate(f"{n:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        _ = ax.axhline(slo_s, color="#c44e52", linestyle=":", label=f"SLO {slo_s:g} s")
        ax.set_title(label)
        ax.set_xlabel("generations/min (measured)")
        ax.set_ylabel("generation wall (s): p95 solid, p50 dashed")
        _ = ax.legend(fontsize=7)
    return fig


def plot_goodput(table: pd.DataFrame, knees: pd.DataFrame, load_key: str, unit: str) -> Figure:
    """Per label: goodput/min (complete generations within the SLO) and throughput against the offered load,
    one colour per strategy; the knee (interpolated SLO crossing) as a dotted vertical line."""
    labels = list(dict.fromkeys(table["label"]))
    fig = _figure(4.6 * len(labels), 3.6)
    for ax, label in zip(_axes(fig, len(labels)), labels, strict=True):
        part = table[table["label"] == label]
        for strategy, rows in part.groupby("strategy", sort=False):
            rows = rows.sort_values(load_key)
            c = _colour(str(strategy))
            _ = ax.plot(rows[load_key], rows["goodput_per_min"], "o-", color=c, label=f"{strategy} goodput")
            _ = ax.plot(rows[load_key], rows["generations_per_min"], ".--", color=c, alpha=0.5)
            k = knees[(knees["label"] == label) & (knees["strategy"] == strategy)]
            if len(k) and pd.notna(k["interpolated"].iloc[0]):
                _ = ax.axvline(float(k["interpolated"].iloc[0]), color=c, linestyle=":", alpha=0.8)
        if load_key == "rate":
            top = float(part[load_key].max())
            _ = ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="offered")
        ax.set_title(label)
        ax.set_xlabel(f"offered load ({unit})")
        ax.set_ylabel("per min: goodput solid, all dashed")
        _ = ax.legend(fontsize=7)
    return fig

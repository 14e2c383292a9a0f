"""Report figures from synthetic call records: each returns a Figure with labelled axes that saves to a PNG."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from voorbeelden.experiments import plots, stats
from voorbeelden.types import ALL_PARTS, CallRecord


def _records() -> pd.DataFrame:
    rows = []
    latencies = [0.06, 0.6, 0.18, 0.04, 0.04, 0.1]
    for strategy in ("sequential", "parallel"):
        t = 0.0
        for part, lat in zip(ALL_PARTS, latencies, strict=True):
            start = t if strategy == "sequential" else 0.002
            if part.value == "synoniemen":  # one failed attempt and its retry
                rows.append(
                    CallRecord(part.value, 1, start, start + 0.01, "error", strategy=strategy).to_dict()
                )
                start += 0.02
                rows.append(CallRecord(part.value, 2, start, start + lat, "ok", strategy=strategy).to_dict())
            else:
                rows.append(CallRecord(part.value, 1, start, start + lat, "ok", strategy=strategy).to_dict())
            rec = rows[-1]
            rec["latency_s"] = lat
            t = rec["t_end"]
    df = pd.DataFrame(rows)
    df["profile"] = "definitie-app"
    df["time_scale"] = 0.02
    df["warmup"] = False
    return df


def _labelled(fig: Figure) -> None:
    """Every panel that draws data says what its axes are: an x label somewhere in the figure (stacked panels
    share one), and on each panel a y label or named categories as its y ticks (parts, strategies)."""
    drawn = [ax for ax in fig.axes if ax.get_visible() and (ax.lines or ax.patches or ax.collections)]
    assert drawn, "nothing drawn"
    assert any(ax.get_xlabel() for ax in drawn), "no x label"
    for ax in drawn:
        named = [t.get_text() for t in ax.get_yticklabels() if re.search(r"[A-Za-z]", t.get_text())]
        assert ax.get_ylabel() or named, (
            f"panel {ax.get_title() or ax.get_title(loc='left')!r} has no y label"
        )


def _png(fig: Figure, path: Path) -> np.ndarray:
    saved = plots.save(fig, path)
    image = matplotlib.image.imread(saved)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image.std() > 0.01  # not blank
    return image


def test_gantt_draws_every_attempt_from_t_start_t_end(tmp_path: Path) -> None:
    recs = _records()
    fig = plots.gantt(recs, walls={"sequential": 1.05, "parallel": 0.62}, time_scale=0.02)
    assert isinstance(fig, Figure)
    bars = [p for ax in fig.axes for p in ax.patches]
    assert len(bars) == len(recs)
    seq_ax = fig.axes[0]
    assert "sequential" in seq_ax.get_title(loc="left")
    assert "time (s" in fig.axes[-1].get_xlabel()
    _labelled(fig)
    _png(fig, tmp_path / "gantt.png")


def test_latency_by_part_has_one_panel_per_profile(tmp_path: Path) -> None:
    recs = pd.concat([_records(), _records().assign(profile="uniform-2s")], ignore_index=True)
    fig = plots.latency_by_part(recs)
    main_axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert len(main_axes) == 2
    assert all("latency" in ax.get_xlabel() for ax in main_axes)
    _labelled(fig)
    _png(fig, tmp_path / "lat.png")


def test_speedup_vs_bound_shows_measured_ci_bounds_and_naive_line(tmp_path: Path) -> None:
    summary = pd.DataFrame(
        [
            {
                "profile": "uniform-2s",
                "speedup_median": 5.2,
                "ci_low": 5.0,
                "ci_high": 5.4,
                "trial_bound_median": 5.7,
                "expected_bound": 5.8,
            },
            {
                "profile": "definitie-app",
                "speedup_median": 1.7,
                "ci_low": 1.65,
                "ci_high": 1.75,
                "trial_bound_median": 1.72,
                "expected_bound": 1.69,
            },
        ]
    )
    fig = plots.speedup_vs_bound(summary)
    ax = fig.axes[0]
    assert "speedup" in ax.get_ylabel()
    assert any(line.get_ydata()[0] == 6 for line in ax.get_lines())
    assert len(ax.patches) == 6
    _labelled(fig)
    _png(fig, tmp_path / "speedup.png")


def test_completeness_vs_fault_rate_draws_the_prediction(tmp_path: Path) -> None:
    rows = []
    for kind in ("500", "malformed"):
        for rate in (0.0, 0.2, 0.5):
            rows.append(
                {
                    "fault_kind": kind,
                    "fault_rate": rate,
                    "warmup": False,
                    "n_ok": 6 - int(rate * 4),
                    "n_failed": int(rate * 4),
                    "n_calls": 6 + int(rate * 8),
                    "wall_s": 0.05 + rate,
                }
            )
    summary = stats.fault_summary(pd.DataFrame(rows), max_retries=2)
    fig = plots.completeness_vs_fault_rate(summary, max_retries=2)
    left, right = fig.axes[:2]
    labels = [line.get_label() for line in left.get_lines()]
    assert any("prediction" in label for label in labels)
    assert "parts delivered" in left.get_ylabel() and "wall time" in right.get_ylabel()
    _labelled(fig)
    _png(fig, tmp_path / "faults.png")


def test_pick_pair_takes_the_median_pair() -> None:
    rows = []
    for i, par in enumerate([1.0, 2.0, 3.0]):
        for strategy, wall in (("sequential", 6.0), ("parallel", par)):
            rows.append(
                {
                    "strategy": strategy,
                    "pair": f"{i}:b",
                    "begrip": "b",
                    "trial": i,
                    "warmup": False,
                    "wall_s": wall,
                    "sum_latency_s": 6.0,
                    "max_latency_s": 1.0,
                }
            )
    assert plots.pick_pair(pd.DataFrame(rows)) == "1:b"
    with pytest.raises(ValueError):
        plots.pick_pair(pd.DataFrame(rows[:1]))


def test_a_plot_named_after_a_backend_label_gets_a_plain_file_name(tmp_path: Path) -> None:
    fig = plots.gantt(_records(), title="t")
    saved = plots.save(fig, tmp_path / "01_gantt_local (127.0.0.1:8080).png")
    assert saved.name == "01_gantt_local_127.0.0.1_8080.png" and saved.is_file()
    assert plots.save(fig, tmp_path / "05_axes.png").name == "05_axes.png"


def _strategy_table() -> pd.DataFrame:
    rows = []
    for profile in ("uniform-2s", "definitie-app"):
        for i, strategy in enumerate(("sequential", "parallel", "combined")):
            rows.append(
                {
                    "profile": profile,
                    "strategy": strategy,
                    "n_complete": 2,
                    "complete": "2 of 2",
                    "wall_p50_s": 12.0 / (i + 1),
                    "wall_p95_s": 14.0 / (i + 1),
                    "first_visible_p50_s": 2.0 if strategy != "combined" else None,
                    "cost_usd_per_gen": 0.01 - 0.002 * i,
                    "pareto": strategy == "combined",
                }
            )
    return pd.DataFrame(rows)


def test_the_strategies_headline_charts_have_one_labelled_panel_per_profile(tmp_path: Path) -> None:
    """05_pareto.png is a headline chart of the report's first page; 05_axes.png sits beside it."""
    from voorbeelden.experiments.strategies import plot_axes, plot_pareto

    table = _strategy_table()
    for draw in (plot_pareto, plot_axes):
        fig = draw(table)
        assert [ax.get_title() for ax in fig.axes] == ["uniform-2s", "definitie-app"]
        _labelled(fig)
        _png(fig, tmp_path / f"{draw.__name__}.png")
    front = plot_pareto(table).axes[0].get_lines()[0]
    assert list(front.get_xdata()) == pytest.approx([6.0])  # the one Pareto point, in USD per 1,000

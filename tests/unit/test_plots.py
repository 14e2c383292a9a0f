"""Report figures from synthetic call records: each returns a Figure with labelled axes that saves to a PNG."""

from __future__ import annotations

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
    for ax in fig.axes:
        if ax.get_visible() and ax.get_xlabel() == "" and ax.get_ylabel() == "":
            continue  # a shared-x panel without its own labels
        assert ax.get_xlabel() or ax.get_ylabel()


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
    _png(fig, tmp_path / "gantt.png")


def test_latency_by_part_has_one_panel_per_profile(tmp_path: Path) -> None:
    recs = pd.concat([_records(), _records().assign(profile="uniform-2s")], ignore_index=True)
    fig = plots.latency_by_part(recs)
    main_axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert len(main_axes) == 2
    assert all("latency" in ax.get_xlabel() for ax in main_axes)
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

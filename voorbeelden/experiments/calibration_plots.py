"""Notebook 06's charts: measured vs predicted speedup per strategy, and the batching curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_calibration(table: pd.DataFrame) -> Figure:
    """Measured (with its 95% CI) and predicted speedup per strategy; the dashed line is 1 (sequential)."""
    from voorbeelden.experiments.plots import _figure, _style

    fig = _figure(7.5, 4.2)
    ax = fig.subplots()
    x = np.arange(len(table))
    meas = table["measured_speedup"].astype(float)
    err = np.vstack([meas - table["ci_low"].astype(float), table["ci_high"].astype(float) - meas]).clip(min=0)
    _ = ax.bar(x - 0.2, meas, width=0.4, color="#264653", label="measured (95% CI)", yerr=err, capsize=4)
    _ = ax.bar(
        x + 0.2, table["predicted_speedup"].astype(float), width=0.4, color="#e9c46a", label="predicted"
    )
    _ = ax.axhline(1.0, color="#555", linestyle="--", linewidth=1)
    ax.set_xticks(x, table["strategy"])
    ax.set_ylabel("speedup over sequential (x)")
    ax.set_title("Calibrated simulator: predicted vs measured speedup")
    ax.legend(loc="upper right", fontsize=9)
    _style(ax)
    return fig


def plot_curve(speeds: pd.DataFrame, label: str = "") -> Figure:
    """Per-stream speed (relative to a stream alone) and total throughput against concurrent streams, as
    the measured calls showed them (see :func:`voorbeelden.sim.calibrate_batching.observed_speeds`), with
    the fitted curve's when there is one."""
    from voorbeelden.experiments.plots import _figure, _style

    fig = _figure(7.5, 4.2)
    ax = fig.subplots()
    n = speeds["streams"].astype(float)
    _ = ax.plot(n, speeds["speed"], "o-", color="#264653", label="per-stream speed (measured)")
    _ = ax.plot(n, speeds["throughput"], "s-", color="#e76f51", label="total throughput (measured)")
    if "fitted_speed" in speeds:
        _ = ax.plot(n, speeds["fitted_speed"], "--", color="#264653", label="per-stream speed (fitted curve)")
        _ = ax.plot(n, n * speeds["fitted_speed"], "--", color="#e76f51", label="total throughput (fitted)")
    _ = ax.axhline(1.0, color="#555", linestyle=":", linewidth=1)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("relative to one stream alone (x)")
    ax.set_title(f"Batching curve{f' ({label})' if label else ''}")
    ax.legend(loc="best", fontsize=8)
    _style(ax)
    return fig

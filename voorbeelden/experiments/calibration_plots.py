"""Notebook 06's views: measured vs predicted speedup per strategy (chart and HTML table), and the batching
curve."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def _h(value: Any) -> str:
    import html

    return html.escape("" if value is None else str(value))


def _f(value: Any, fmt: str = "{:.2f}") -> str:
    return "–" if value is None or value != value else fmt.format(value)


def calibration_html(cal: Mapping[str, Any]) -> str:
    """The report's calibration section: measured vs predicted speedup and the error per strategy."""
    goal = cal.get("goal") or 0.15
    out = [
        "<h2>Calibrated simulator vs measured (notebook 06)</h2>",
        f"<p>Profile fitted from the measured call records; server concurrency fitted: "
        f"<b>{_h(cal.get('capacity') if cal.get('capacity') is not None else 'no limit observed')}</b>. "
        f"Goal: predicted speedup within {goal:.0%} of measured.</p>",
        "<table><tr><th class='l'>strategy</th><th>pairs</th><th>complete</th><th>wall median (s)</th>"
        "<th>s per output token</th><th>measured speedup</th><th>95% CI</th><th>predicted speedup</th>"
        "<th>error</th><th class='l'>within goal</th></tr>",
    ]
    for row in cal.get("table") or []:
        seq = row["strategy"] == "sequential"
        err = row.get("wall_error") if seq else row.get("error")
        what = " (p50 wall)" if seq else f"; p50 wall {_f(row.get('wall_error'), '{:+.0%}')}"
        out.append(
            f"<tr><td class='l'>{_h(row['strategy'])}</td><td>{row.get('n_pairs')}</td>"
            f"<td>{_f(row.get('complete'), '{:.0%}')}</td><td>{_f(row.get('wall_median_s'))}</td>"
            f"<td>{_f(row.get('s_per_token'), '{:.4f}')}</td><td><b>{_f(row.get('measured_speedup'))}×</b></td>"
            f"<td>{_f(row.get('ci_low'))}–{_f(row.get('ci_high'))}</td>"
            f"<td>{_f(row.get('predicted_speedup'))}×</td><td>{_f(err, '{:+.0%}')}{what}</td>"
            f"<td class='l {'ok' if row.get('within_goal') else 'failed'}'>"
            f"{'yes' if row.get('within_goal') else 'NO'}</td></tr>"
        )
    out.append("</table><ul>")
    out += [f"<li>{_h(line)}</li>" for line in cal.get("conclusion") or []]
    out += [f"<li>fit: {_h(line)}</li>" for line in cal.get("fit_notes") or []]
    out.append("</ul>")
    return "\n".join(out)

"""The client's own time per call, measured against the calibrated simulator and taken out of the fit.

A measured call's latency is the server's time plus the client's (building the request, HTTP, parsing the
answer): the calibration fits both into each part's time to first token. The prediction then runs the same
client against the simulator, which adds the client's time a second time, and at a prediction time scale
``s`` below 1 that unscaled time counts ``1/s`` times when the predicted walls are turned back into the
measured run's seconds. So before predicting, a short sequential probe against the simulator serving the
fitted profile measures the client's time per call (its latency minus the service the profile says), and
``overhead / s`` is taken off every part's fitted time to first token (never below a tenth of it).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from voorbeelden.sim.calibrate import Calibration, PartFit

MIN_TTFT_SHARE = 0.1


def client_overhead_s(records: pd.DataFrame, calibration: Calibration, time_scale: float) -> float:
    """Median real seconds a call took beyond the service the fitted profile gave it (scaled), over the ok
    calls of ``records`` (a probe run against the simulator serving ``calibration``); 0 when none."""
    if records is None or records.empty:
        return 0.0
    ok = records[(records["status"] == "ok") & (pd.to_numeric(records["tokens_out"], errors="coerce") > 0)]
    if "warmup" in ok:
        ok = ok[~ok["warmup"].fillna(False).astype(bool)]
    fits = {**calibration.parts, **calibration.extra}
    extra = [
        float(lat) - time_scale * (fits[p].ttft.median + float(t) / fits[p].tokens_per_s.median)
        for p, lat, t in zip(ok["part"], ok["latency_s"], ok["tokens_out"], strict=True)
        if p in fits
    ]
    return max(0.0, float(np.median(extra))) if extra else 0.0


def without_overhead(calibration: Calibration, overhead_s: float, time_scale: float) -> Calibration:
    """``calibration`` with ``overhead_s / time_scale`` taken off every part's time to first token."""
    shift = overhead_s / time_scale
    if shift <= 0:
        return calibration

    def less(fit: PartFit) -> PartFit:
        median = max(MIN_TTFT_SHARE * fit.ttft.median, fit.ttft.median - shift)
        return dataclasses.replace(fit, ttft=dataclasses.replace(fit.ttft, median=median))

    note = (
        f"client time per call measured against the simulator: {overhead_s * 1000:.0f} ms; "
        f"{shift * 1000:.0f} ms taken off each part's time to first token for the prediction (it is in the "
        f"measured latencies and the client adds it again)"
    )
    return dataclasses.replace(
        calibration,
        parts={p: less(f) for p, f in calibration.parts.items()},
        extra={p: less(f) for p, f in calibration.extra.items()},
        generic=less(calibration.generic),
        notes=[*calibration.notes, note],
    )

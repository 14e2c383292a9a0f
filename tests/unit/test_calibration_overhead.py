"""The client's own time per call is measured against the simulator and taken out of the fitted time to first
token, so the prediction does not count it twice (and 1/time_scale times)."""

from __future__ import annotations

import pandas as pd
import pytest

from voorbeelden.experiments.calibration_overhead import client_overhead_s, without_overhead
from voorbeelden.sim.calibrate import calibrate
from voorbeelden.types import ALL_PARTS

PARTS = [p.value for p in ALL_PARTS]
TOKENS = dict(zip(PARTS, (60, 200, 90, 30, 30, 110), strict=True))
TTFT, PER_TOKEN = 0.2, 0.03


def _calibration():
    rows, t = [], 0.0
    for trial in range(2):
        for p in PARTS:
            lat = TTFT + PER_TOKEN * TOKENS[p]
            rows.append({"part": p, "status": "ok", "t_start": t, "t_end": t + lat, "latency_s": lat,
                         "tokens_out": TOKENS[p], "trial": trial, "run_id": "r", "strategy": "sequential"})  # fmt: skip
            t += lat + 0.01
    return calibrate(pd.DataFrame(rows))


def test_the_overhead_is_latency_beyond_the_scaled_service():
    cal = _calibration()
    scale, overhead = 0.25, 0.03
    probe = pd.DataFrame(
        {
            "part": PARTS,
            "status": "ok",
            "tokens_out": [TOKENS[p] for p in PARTS],
            "latency_s": [scale * (TTFT + PER_TOKEN * TOKENS[p]) + overhead for p in PARTS],
        }
    )
    assert client_overhead_s(probe, cal, scale) == pytest.approx(overhead, rel=1e-6)
    served = without_overhead(cal, overhead, scale)
    # 30 ms of the client's at time scale 0.25 counts 120 ms in the measured run's seconds
    assert served.parts["synoniemen"].ttft.median == pytest.approx(TTFT - overhead / scale, rel=1e-6)
    assert any("client time per call" in n for n in served.notes)


def test_the_shift_never_takes_the_ttft_below_a_tenth_and_none_is_no_change():
    cal = _calibration()
    served = without_overhead(cal, 1.0, 0.25)
    assert served.parts["toelichting"].ttft.median == pytest.approx(0.1 * TTFT, rel=1e-6)
    assert without_overhead(cal, 0.0, 0.25) is cal
    assert client_overhead_s(pd.DataFrame(), cal, 0.25) == 0.0

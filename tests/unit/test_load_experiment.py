"""Notebook 07's sentences and prediction error, computed from hand-made levels (no server)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from voorbeelden.experiments.load import conclude, predicted_vs_measured
from voorbeelden.experiments.load_sweep import LoadSettings, SweepResult

SETTINGS = LoadSettings(strategies=("sequential", "parallel"), users=(1, 4, 8), slo_s=20.0)


def _lv(strategy: str, users: int, walls: list[float], gpm: float, good: float) -> dict[str, Any]:
    walls = sorted(walls)
    p50, p95 = (float(v) for v in np.percentile(walls, [50, 95]))
    return {
        "strategy": strategy, "users": users, "walls_s": walls, "wall_p50_s": p50, "wall_p95_s": p95,
        "generations_per_min": gpm, "goodput_per_min": good, "generations_measured": len(walls),
        "generations_complete": len(walls), "generations_cut": 0, "windows": [],
    }  # fmt: skip


def _run(label: str, levels: list[dict[str, Any]], prediction: bool = False) -> dict[str, Any]:
    return {"label": label, "result": SweepResult(SETTINGS, levels=levels), "prediction": prediction}


def test_the_conclusion_names_a_winner_only_when_the_knees_intervals_are_apart() -> None:
    apart = _run(
        "sim",
        [
            _lv("sequential", 1, [12.0] * 6, 5, 5),
            _lv("sequential", 4, [30.0] * 6, 8, 0),
            _lv("parallel", 1, [3.0] * 6, 20, 20),
            _lv("parallel", 4, [10.0] * 6, 24, 24),
            _lv("parallel", 8, [30.0] * 6, 24, 0),
        ],
    )
    lines = conclude([apart], SETTINGS, [])
    assert "sim: parallel serves the most users within the SLO" in " ".join(lines)
    close = _run(
        "sim",
        [
            _lv("sequential", 1, [8.0, 12.0, 19.0, 24.0], 5, 5),
            _lv("sequential", 4, [18.0, 21.0, 26.0], 8, 2),
            _lv("parallel", 1, [9.0, 15.0, 19.5, 23.0], 6, 6),
            _lv("parallel", 4, [17.0, 22.0, 25.0], 8, 2),
        ],
    )
    assert any("no strategy serves clearly more" in line for line in conclude([close], SETTINGS, []))


def test_the_prediction_error_is_the_predicted_knee_against_the_measured_one() -> None:
    measured = _run(
        "local (127.0.0.1:1)", [_lv("parallel", 1, [5.0], 6, 6), _lv("parallel", 4, [25.0], 8, 0)]
    )
    predicted = _run(
        "batching-6", [_lv("parallel", 1, [5.0], 6, 6), _lv("parallel", 4, [35.0], 8, 0)], prediction=True
    )
    (p,) = predicted_vs_measured([measured, predicted])
    assert p["measured"] == pytest.approx(1 + 15 / 20 * 3)  # 3.25
    assert p["predicted"] == pytest.approx(1 + 15 / 30 * 3)  # 2.5
    assert p["error"] == pytest.approx(2.5 / 3.25 - 1)
    lines = conclude([measured, predicted], SETTINGS, [p])
    assert any("error -23% (outside the 20% goal)" in line for line in lines)
    assert predicted_vs_measured([measured]) == []


def test_on_a_local_backend_the_notebook_starts_its_engine_and_predicts_its_knee(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the local server is stood in for by a simulator (the real one is tests/real_llm's job): what is checked
    # is the wiring: the engine asked for is started, measured, then batching-6 runs the same sweep
    from contextlib import contextmanager

    import voorbeelden.local
    from voorbeelden.experiments.load import load_experiment
    from voorbeelden.sim import SimConfig, running_simulator

    started: list[dict[str, Any]] = []

    @contextmanager
    def fake_llm(**kw: Any):  # type: ignore[no-untyped-def]
        started.append(kw)
        with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.05, capacity=6)) as sim:
            yield type("H", (), {"base_url": sim.base_url, "describe": lambda self: {"kind": "local"}})()

    monkeypatch.setattr(voorbeelden.local, "running_local_llm", fake_llm)
    P = {
        "backend": "local", "profiles": ["uniform-2s"], "sim_capacity": None, "time_scale": 1.0, "seed": 0,
        "strategies": ["parallel"], "k": 3, "users": [1], "rates": [], "think_s": 0.0, "slo_s": 1.0,
        "duration_s": 1.0, "warmup_s": 0.0, "windows": 1, "drain_s": 2.0, "predict_profile": "batching-6",
        "predict_time_scale": 0.02, "local_engine": "llama-server", "local_slots": 6, "out_dir": str(tmp_path),
    }  # fmt: skip
    exp = load_experiment(P)
    assert started == [{"engine": "llama-server", "slots": 6}]
    assert [r["label"] for r in exp.runs][1] == "batching-6" and exp.runs[1]["prediction"]
    assert [p["strategy"] for p in exp.prediction] == ["parallel"]
    side = json.loads((tmp_path / "07_load.json").read_text())
    assert side["runs"][1]["prediction"] is True and side["prediction"][0]["strategy"] == "parallel"


def test_the_prediction_uses_notebook_06s_profile_file_when_it_exists(tmp_path: Any) -> None:
    """The knee is predicted by the fit of the same server (notebook 06's profile file, with its capacity);
    when that file is missing the built-in profile stands in, and the conclusion says so."""
    from voorbeelden.experiments.load import prediction_profile
    from voorbeelden.sim.calibrate import profile_to_dict
    from voorbeelden.sim.profiles import PROFILES

    P = {"predict_profile": "batching-6", "predict_profile_file": "06_cal.json", "sim_capacity": 4,
         "out_dir": str(tmp_path)}  # fmt: skip
    notes: list[str] = []
    label, overrides = prediction_profile(P, notes)  # type: ignore[misc]
    assert label == "batching-6" and overrides == {"profile": "batching-6", "capacity": None}
    assert "06_cal.json is missing" in notes[0] and "not a fit of this server" in notes[0]

    data = {**profile_to_dict(PROFILES["uniform-2s"]), "name": "calibrated-local", "capacity": 1}
    (tmp_path / "06_cal.json").write_text(json.dumps(data))
    notes = []
    label, overrides = prediction_profile(P, notes)  # type: ignore[misc]
    assert label == "calibrated (06_cal.json)"
    assert overrides == {"profile_file": str(tmp_path / "06_cal.json"), "capacity": 1}
    assert "notebook 06's calibration of this server" in notes[0]
    assert prediction_profile({**P, "predict_profile": None, "predict_profile_file": None}, []) is None

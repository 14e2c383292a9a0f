"""Calibration: fitting a simulator profile from call records, and the simulator serving it.

Synthetic records pin the method down exactly (a known service-time law, a known number of server slots);
a round trip over real HTTP against the simulator checks that a fitted profile reproduces what was measured;
the CLI is checked for its output and its refusals.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from voorbeelden.sim import PROFILES, SimConfig
from voorbeelden.sim.calibrate import (
    CalibrationError,
    calibrate,
    calibrate_files,
    fifo_ends,
    profile_to_dict,
    read_records,
    write_profile,
)
from voorbeelden.sim.profiles import load_profile_file, profile_from_dict
from voorbeelden.types import ALL_PARTS

PARTS = [p.value for p in ALL_PARTS]
TOKENS = dict(zip(PARTS, (60, 400, 150, 30, 25, 120), strict=True))
BASE_S, PER_PROMPT_TOKEN, PER_TOKEN = 0.05, 0.002, 0.01


def service(part: str, tokens_in: int = 100) -> float:
    return BASE_S + PER_PROMPT_TOKEN * tokens_in + PER_TOKEN * TOKENS[part]


def record(part: str, start: float, end: float, **extra: Any) -> dict[str, Any]:
    return {
        "part": part,
        "status": "ok",
        "t_start": start,
        "t_end": end,
        "latency_s": end - start,
        "tokens_out": TOKENS[part],
        "tokens_in": 100 + 10 * PARTS.index(part),
        "hedge": False,
        "cached": False,
        **extra,
    }


def sequential_gen(trial: int) -> list[dict[str, Any]]:
    t, rows = 0.0, []
    for p in PARTS:
        s = service(p, 100 + 10 * PARTS.index(p))
        rows.append(record(p, t, t + s, strategy="sequential", trial=trial, run_id="r"))
        t += s + 0.003  # the client's round trip between calls
    return rows


def concurrent_gen(trial: int, slots: int | None, strategy: str = "parallel") -> list[dict[str, Any]]:
    starts = [0.001 * i for i in range(len(PARTS))]
    services = [service(p, 100 + 10 * i) for i, p in enumerate(PARTS)]
    ends = fifo_ends(starts, services, slots or len(PARTS))
    return [
        record(p, s, float(e), strategy=strategy, trial=trial, run_id="r")
        for p, s, e in zip(PARTS, starts, ends, strict=True)
    ]


def frame(slots: int | None, trials: int = 3) -> pd.DataFrame:
    rows = []
    for t in range(trials):
        rows += sequential_gen(t) + concurrent_gen(t, slots)
    return pd.DataFrame(rows)


# ---- the method -----------------------------------------------------------------------------------------------


def test_fifo_ends_queues_calls_on_the_slots() -> None:
    assert list(fifo_ends([0, 0, 0], [1, 2, 3], 1)) == [1, 3, 6]
    assert list(fifo_ends([0, 0, 0], [1, 2, 3], 2)) == [1, 2, 4]
    assert list(fifo_ends([0, 5], [1, 1], 1)) == [1, 6]  # an idle server takes a late call at once
    assert list(fifo_ends([0, 0], [1, 2], 1, order=[1, 0])) == [3, 2]


@pytest.mark.parametrize("slots", [1, 2, None])
def test_the_fit_recovers_the_service_law_and_the_number_of_slots(slots: int | None) -> None:
    cal = calibrate(frame(slots))
    assert cal.capacity == slots
    assert cal.seconds_per_token == pytest.approx(PER_TOKEN, rel=1e-6)
    for p in PARTS:
        fit = cal.parts[p]
        assert fit.tokens.median == TOKENS[p] and fit.tokens.sigma == 0.0
        expected_ttft = BASE_S + PER_PROMPT_TOKEN * (100 + 10 * PARTS.index(p))
        assert fit.ttft.median == pytest.approx(expected_ttft, rel=1e-6)
        assert fit.n_solo == 3 and fit.ttft_source == "regression"
    assert cal.concurrency.n_generations == 3


def test_streamed_ttft_is_used_when_measured() -> None:
    df = frame(1)
    df["ttft_s"] = np.where(df["part"] == "toelichting", 0.123, np.nan)
    cal = calibrate(df)
    assert cal.parts["toelichting"].ttft.median == pytest.approx(0.123)
    assert cal.parts["toelichting"].ttft_source == "streamed"


def test_failed_hedged_and_cached_calls_are_not_fitted() -> None:
    df = frame(1)
    bad = df.iloc[:3].copy()
    bad["latency_s"] = 99.0
    bad["status"] = ["error", "ok", "ok"]
    bad["hedge"] = [False, True, False]
    bad["cached"] = [False, False, True]
    cal = calibrate(pd.concat([df, bad], ignore_index=True))
    assert cal.seconds_per_token == pytest.approx(PER_TOKEN, rel=1e-6)


def test_records_without_parts_or_usable_calls_are_refused_with_a_reason() -> None:
    with pytest.raises(CalibrationError, match="no call records"):
        calibrate(pd.DataFrame())
    df = frame(1)
    with pytest.raises(CalibrationError, match="antoniemen"):
        calibrate(df[df["part"] != "antoniemen"])
    df = df.assign(status="error")
    with pytest.raises(CalibrationError, match="no usable call records"):
        calibrate(df)


def test_read_records_takes_generation_rows_and_record_rows_and_skips_warmup(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rows = [
        {"strategy": "sequential", "trial": 0, "warmup": False, "records": sequential_gen(0)},
        {"strategy": "sequential", "trial": -1, "warmup": True, "records": sequential_gen(-1)},
        *sequential_gen(1),
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"torn": ')
    df = read_records(path)
    assert len(df) == 12 and set(df["trial"]) == {0, 1}
    path.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(CalibrationError, match=r"r.jsonl:2 is not a JSON line"):
        read_records(path)


# ---- profile files ----------------------------------------------------------------------------------------


def test_a_profile_file_round_trips_and_the_simulator_config_serves_it(tmp_path: Path) -> None:
    cal = calibrate(frame(1), name="calibrated-test")
    path = write_profile(cal, tmp_path / "p.json")
    profile, data = load_profile_file(path)
    assert data["capacity"] == 1 and data["fit"]["n_records"] == 36
    assert profile_to_dict(profile)["parts"] == profile_to_dict(cal.profile())["parts"]
    cfg = SimConfig(profile_file=str(path), capacity=1)
    assert cfg.profile == "calibrated-test" and cfg.resolved_profile().parts["synoniemen"].tokens.median == 30
    back = cfg.with_changes({"profile": "uniform-2s"})
    assert back.profile_file is None and back.resolved_profile() is PROFILES["uniform-2s"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "uniform-2s"}, "built-in"),
        ({"parts": {}}, "lacks part"),
        ({"name": ""}, "non-empty 'name'"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    data = {**profile_to_dict(calibrate(frame(1), name="x").profile()), **change}
    with pytest.raises(ValueError, match=message):
        profile_from_dict(data)
    data = profile_to_dict(calibrate(frame(1), name="x").profile())
    data["parts"]["toelichting"]["tokens"]["median"] = -1
    with pytest.raises(ValueError, match=r"parts.toelichting.tokens needs median > 0"):
        profile_from_dict(data)


# ---- round trip over HTTP, and the commands -------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, None])
def test_round_trip_against_the_simulator(tmp_path: Path, capacity: int | None) -> None:
    """Measure a simulator with a known capacity, fit, and serve the fit: the capacity comes back, and the
    fitted simulator answers parts with the measured output tokens."""
    from voorbeelden.backend import open_backend
    from voorbeelden.begrippen import load_begrippen
    from voorbeelden.experiments.retries import bench_config
    from voorbeelden.experiments.trials import run_trials

    out = tmp_path / "trials.jsonl"
    with open_backend("sim", profile="definitie-app", time_scale=0.01, capacity=capacity) as be:
        run_trials(
            load_begrippen(2),
            backend=be,
            strategies=("sequential", "parallel"),
            trials=2,
            warmup=0,
            out=out,
            config=bench_config(0.01),
        )
    cal = calibrate_files(out)
    assert cal.capacity == capacity
    measured = read_records(out).groupby("part")["tokens_out"].median()
    assert {p: cal.parts[p].tokens.median for p in PARTS} == {p: measured[p] for p in PARTS}


def test_calibrate_command_writes_the_profile_and_sim_serves_it(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    rows = [{"run_id": "r", "strategy": g[0]["strategy"], "trial": t, "records": g} for t in range(3) for g in
            (sequential_gen(t), concurrent_gen(t, 1))]  # fmt: skip
    results.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    profile = tmp_path / "profile.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "voorbeelden",
            "calibrate",
            str(results),
            "--out",
            str(profile),
            "--name",
            "fit",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "server concurrency: 1" in done.stdout and "praktijkvoorbeelden" in done.stdout
    assert json.loads(profile.read_text())["name"] == "fit"

    sim = subprocess.Popen(
        [sys.executable, "-m", "voorbeelden", "sim", "--port", "0", "--profile-file", str(profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = sim.stdout.readline().strip() if sim.stdout else ""
        assert url.startswith("http://127.0.0.1:")
        import httpx2

        config = httpx2.get(url.removesuffix("/v1") + "/admin/config", timeout=10).json()
        assert config["profile"] == "fit" and config["capacity"] == 1
        assert config["profile_file"] == str(profile)
    finally:
        sim.terminate()
        sim.wait(timeout=10)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("", "no call records"), ('{"x": 1}\n', "no call records")],
)
def test_calibrate_command_refuses_bad_input_without_a_traceback(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "calibrate", str(path), "--out", str(tmp_path / "p.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "p.json").exists()


def test_sim_refuses_a_bad_profile_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "sim", "--port", "0", "--profile-file", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "is not JSON" in done.stderr and "Traceback" not in done.stderr


# ---- the report's side: notes, comparison table, parameter blocks ---------------------------------------------


def test_a_speedup_below_one_gets_its_reason_on_the_first_page() -> None:
    from voorbeelden.experiments.calibration import speedup_notes

    summary = {
        "backend": {"kind": "local", "concurrency": 1},
        "speedup": {
            "slow": {"median": 0.9, "n_pairs": 3, "ci_low": 0.8, "ci_high": 0.95},
            "fast": {"median": 1.4, "n_pairs": 3, "ci_low": 1.2, "ci_high": 1.6},
        },
    }
    notes = speedup_notes(summary, None)
    assert len(notes) == 1 and notes[0].startswith("slow: parallel was not faster")
    assert "one request at a time" in notes[0] and "slower beyond noise" in notes[0]
    other = speedup_notes({"backend": {"kind": "real"}, "speedup": summary["speedup"]}, {"capacity": None})
    assert "cost more than they saved" in other[0]


def test_a_speedup_far_below_its_bound_on_a_queueing_server_gets_its_reason_too() -> None:
    from voorbeelden.experiments.calibration import speedup_notes

    speedup = {
        "queued": {"median": 1.02, "n_pairs": 4, "ci_low": 1.00, "ci_high": 1.02, "trial_bound": 4.1},
        "near": {"median": 3.9, "n_pairs": 4, "ci_low": 3.8, "ci_high": 4.0, "trial_bound": 4.1},
    }
    (note,) = speedup_notes({"backend": {"kind": "local", "concurrency": 1}, "speedup": speedup}, None)
    assert note.startswith("queued: parallel gained only 1.02x over 4 pairs")
    assert "bound is 4.10x" in note and "one request at a time" in note and "not distinguishable" in note
    # the same figures from a server that serves calls at once need no excuse
    assert speedup_notes({"backend": {"kind": "real"}, "speedup": speedup}, {"capacity": 8}) == []


def test_the_calibration_table_states_the_error_and_the_verdict() -> None:
    from voorbeelden.experiments.calibration import calibration_html

    html = calibration_html(
        {
            "capacity": 1,
            "goal": 0.15,
            "table": [
                {
                    "strategy": "parallel",
                    "n_pairs": 2,
                    "measured_speedup": 0.9,
                    "predicted_speedup": 1.2,
                    "error": 0.333,
                    "within_goal": False,
                    "ci_low": 0.8,
                    "ci_high": 1.0,
                },
            ],
            "conclusion": ["a line"],
        }
    )
    assert "+33%" in html and ">NO<" in html and "a line" in html


def _gens(walls: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for strategy, values in walls.items():
        for i, wall in enumerate(values):
            rows.append(
                {"strategy": strategy, "pair": f"{i}:b", "begrip": "b", "trial": i, "warmup": False,
                 "wall_s": wall, "tokens_out": 100, "n_failed": 0, "sum_latency_s": wall,
                 "max_latency_s": wall / 6}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_compare_states_measured_and_predicted_speedups_and_their_error() -> None:
    from voorbeelden.experiments.calibration import compare

    measured = _gens({"sequential": [10.0, 10.0, 10.0], "parallel": [10.0, 12.5, 10.0]})
    predicted = _gens({"sequential": [2.0, 2.0, 2.0], "parallel": [2.0, 2.0, 2.0]})  # at time scale 0.2
    table = compare(measured, predicted, ["sequential", "parallel"], predicted_time_scale=0.2)
    seq, par = table.iloc[0], table.iloc[1]
    assert seq["wall_error"] == pytest.approx(0.0) and seq["within_goal"]
    assert par["measured_speedup"] == pytest.approx(1.0) and par["predicted_speedup"] == pytest.approx(1.0)
    assert par["error"] == pytest.approx(0.0) and par["n_pairs"] == 3
    table = compare(
        measured, _gens({"sequential": [2.0] * 3, "parallel": [1.0] * 3}), ["sequential", "parallel"]
    )
    assert table.iloc[1]["error"] == pytest.approx(1.0) and not table.iloc[1]["within_goal"]


def test_compare_checks_the_p50_wall_of_every_strategy_beside_the_speedup() -> None:
    from voorbeelden.experiments.calibration import compare

    measured = _gens({"sequential": [10.0, 10.0, 10.0], "parallel": [5.0, 5.0, 5.0]})
    # the same speedup (2x) on walls 30% too long: the speedup alone would pass
    predicted = _gens({"sequential": [13.0] * 3, "parallel": [6.5] * 3})
    table = compare(measured, predicted, ["sequential", "parallel"], goal=0.15).set_index("strategy")
    assert table.loc["parallel", "error"] == pytest.approx(0.0)
    assert table.loc["parallel", "wall_error"] == pytest.approx(0.3)
    assert table.loc["sequential", "wall_error"] == pytest.approx(0.3)
    assert not table.loc["parallel", "within_goal"] and not table.loc["sequential", "within_goal"]
    close = compare(
        measured, _gens({"sequential": [10.5] * 3, "parallel": [5.2] * 3}), ["sequential", "parallel"]
    )
    assert close["within_goal"].all()


def test_the_local_parameter_file_and_its_blocks_are_checked() -> None:
    from voorbeelden.report.run_env import GenerationOverrides, check_blocks
    from voorbeelden.report.runner import load_params

    root = Path(__file__).resolve().parents[2]
    config = load_params(root / "notebooks" / "params" / "local.yaml")
    assert check_blocks(config) == []
    assert config["common"]["backend"] == "local"
    assert set(config["notebooks"]) >= {"01_sequential_vs_parallel.ipynb", "06_calibration.ipynb"}
    env = GenerationOverrides.model_validate(config["generation"]).environ()
    assert env["VOORBEELDEN_TEMPERATURE"] == "0.0" and env["VOORBEELDEN_SEED"] == "1"
    problems = check_blocks({"generation": {"temperature": 5, "sead": 1}, "local_llm": {"threads": 0}})
    assert len(problems) == 3, problems
    assert any(p.startswith("generation: temperature") for p in problems)
    assert any("sead" in p for p in problems) and any(p.startswith("local_llm: threads") for p in problems)


def test_calibrate_command_fits_and_writes_a_batching_curve(tmp_path: Path) -> None:
    """Records from a server whose calls slow each other (step-model curve, 6 slots) at 1, 3 and 6 calls at
    once: the command prints the curve, the profile file carries it, and the simulator refuses a broken one."""
    from voorbeelden.sim.batching import replay_times
    from voorbeelden.sim.profiles import Batching

    truth = Batching.step_model(6, 0.4)
    rows = []
    for t in range(3):
        rows.append({"run_id": "r", "strategy": "sequential", "trial": t, "records": sequential_gen(t)})
        for k in (3, 6):
            sent = [0.001 * i for i in range(len(PARTS))]
            services = [service(p, 100 + 10 * i) for i, p in enumerate(PARTS)]
            starts, ends = replay_times(sent, services, Batching(truth.speed[:k]))
            recs = [record(p, float(s), float(e)) for p, s, e in zip(PARTS, starts, ends, strict=True)]
            rows.append({"run_id": "r", "strategy": f"k{k}", "trial": t, "records": recs})
    results = tmp_path / "r.jsonl"
    results.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    profile = tmp_path / "profile.json"
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "calibrate", str(results), "--out", str(profile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "batching: concurrent calls slow each other" in done.stdout, done.stdout
    data = json.loads(profile.read_text())
    assert data["capacity"] is None and data["batching"]["max_batch"] == 6
    assert data["batching"]["speed"][-1] == pytest.approx(truth.rate(6), rel=0.1)
    loaded, _ = load_profile_file(profile)
    assert loaded.batching is not None

    data["batching"]["speed"][0] = 0.5
    profile.write_text(json.dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "sim", "--port", "0", "--profile-file", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "batching.speed[0]" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_notebook06_calibrates_each_local_server_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``local_servers`` wiring, without a model: each 'local server' is a simulator standing in for it (a
    batching one for llama-server:6, a one-slot one for llama-server:1). Each gets its own measured scenario,
    profile file, table rows and conclusion; the 6-slot one comes back with a batching curve, the 1-slot one
    with a slot count of 1."""
    import contextlib

    import voorbeelden.local as local
    from voorbeelden.experiments.calibration import calibration_experiment
    from voorbeelden.sim import running_simulator

    @contextlib.contextmanager
    def fake_llm(engine: str, slots: int, **_: Any):
        cfg = (
            SimConfig(profile="batching-6", time_scale=0.1)
            if slots > 1
            else SimConfig(profile="batching-6", time_scale=0.1, capacity=1)
        )
        with running_simulator(cfg, process=True) as sim:

            class Handle:
                base_url = sim.base_url

                def describe(self) -> dict[str, Any]:
                    return {"kind": "local", "engine": engine, "slots": slots}

            yield Handle()

    monkeypatch.setattr(local, "running_local_llm", fake_llm)
    params = {
        "backend": "local", "local_servers": ["llama-server:6", "llama-server:1"], "profile": "uniform-2s",
        "sim_capacity": None, "strategies": ["sequential", "parallel"], "time_scale": 1.0,
        "predict_time_scale": 0.25, "seed": 0, "trials": 2, "warmup": 1, "n_begrippen": 1, "k": 3,
        "temperature": None, "sampling_seed": None, "max_tokens": None, "call_timeout_s": 60.0, "goal": 0.15,
        "out_dir": str(tmp_path),
    }  # fmt: skip
    exp = calibration_experiment(params)
    six, one = exp.all
    assert (six.label, one.label) == ("llama-server:6", "llama-server:1")
    assert six.calibration.profile().batching is not None, six.calibration.notes
    assert one.calibration.profile().batching is None and one.calibration.capacity == 1
    assert (tmp_path / "06_calibration_profile_llama-server-6.json").is_file()
    assert (tmp_path / "06_calibration_profile_llama-server-1.json").is_file()
    side = json.loads((tmp_path / "06_calibration.json").read_text())
    assert [s["label"] for s in side["servers"]] == ["llama-server:6", "llama-server:1"]
    assert {r["server"] for r in side["table"]} == {"llama-server:6", "llama-server:1"} and len(
        side["table"]
    ) == 4
    assert side["batching"]["batching"] is not None  # the first server's curve, for the report's section
    scenarios = set(read_records(tmp_path / "06_calibration.jsonl")["scenario"])
    assert scenarios == {"calibration:measured:llama-server:6", "calibration:measured:llama-server:1"}


def test_an_answer_whose_content_did_not_parse_is_timed_like_any_other() -> None:
    """A small model that echoes the antoniemen instruction every time still took the server's time to do
    so: those records are fitted (measured on llama-server without its prompt cache: every antoniemen call
    was a parse_error, and the fit refused the run)."""
    df = frame(1)
    df.loc[df["part"] == "antoniemen", "status"] = "parse_error"
    cal = calibrate(df)
    assert "antoniemen" in cal.parts
    assert cal.seconds_per_token == pytest.approx(PER_TOKEN, rel=1e-6)


def test_a_part_asked_again_is_fitted_as_one_call_with_the_work_of_its_attempts() -> None:
    """The simulator never asks a part again, so the two attempts of a resampled part (an unusable answer,
    then one asked at once) are fitted as one call from the first start to the last end: the part's fitted
    service time covers both, and a sequential generation's fitted work is what the server did."""
    rows = []
    for t in range(3):
        clock = 0.0
        for p in PARTS:
            tries = 2 if p == "antoniemen" else 1
            for attempt in range(1, tries + 1):
                s = service(p, 100 + 10 * PARTS.index(p))
                status = "parse_error" if attempt < tries else "ok"
                rows.append(record(p, clock, clock + s, strategy="sequential", trial=t, run_id="r",
                                   attempt=attempt, status=status))  # fmt: skip
                clock += s + 0.003
    cal = calibrate(pd.DataFrame(rows))
    fitted = cal.table().set_index("part")["service_s"]
    one = service("antoniemen", 100 + 10 * PARTS.index("antoniemen"))
    assert fitted["antoniemen"] == pytest.approx(2 * one + 0.003, rel=0.15)
    assert fitted["voorbeeldzinnen"] == pytest.approx(service("voorbeeldzinnen"), rel=0.15)
    assert any("asked again" in note for note in cal.notes)

"""``voorbeelden load`` as a user runs it: bad input is exit 2 naming the option, a sweep's JSON has the
documented shape, lost parts are exit 3, a remote endpoint needs --yes, and Ctrl-C keeps what was measured."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, env_without_openai, run_voorbeelden

FAST = ["--time-scale", "0.05", "--duration", "8", "--warmup", "1", "--windows", "2"]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--users", "0,2"], "--users"),
        (["--users", "1,1"], "--users"),
        (["--users", "a"], "--users"),
        (["--rate", "-2"], "--rate"),
        (["--users", "1", "--rate", "2"], "--rate"),
        (["--strategies", "sequential,nope"], "--strategies"),
        (["--slo", "0"], "--slo"),
        (["--duration", "nan"], "--duration"),
        (["-k", "7"], "-k"),
        (["--sim-capacity", "0"], "--sim-capacity"),
        (["--sim-profile", "nope"], "--sim-profile"),
        (["--base-url", "localhost:8000"], "--base-url"),
    ],
)
def test_bad_input_is_exit_2_naming_the_option_before_any_simulator_starts(
    args: list[str], names: str
) -> None:
    proc = run_voorbeelden(["load", *args])
    assert proc.returncode == 2, proc.stderr
    assert names in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "embedded simulator" not in proc.stderr


def test_a_closed_loop_sweep_prints_levels_and_knees_as_json() -> None:
    proc = run_voorbeelden(
        ["load", "--users", "1,2", "--strategies", "sequential,parallel", "--slo", "60", "--json", *FAST]
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["mode"] == "closed" and data["exit_code"] == 0 and data["interrupted"] is False
    assert [(lv["strategy"], lv["users"]) for lv in data["levels"]] == [
        ("sequential", 1),
        ("sequential", 2),
        ("parallel", 1),
        ("parallel", 2),
    ]
    for lv in data["levels"]:
        for key in (
            "wall_p50_s", "wall_p95_s", "wall_p99_s", "first_visible_p50_s", "parts_delivered", "parts_asked",
            "generations_per_min", "goodput_per_min", "calls_per_min", "rate_limited_429",
            "calls_in_flight_mean", "calls_in_flight_peak", "windows",
        ):  # fmt: skip
            assert key in lv, key
    assert set(data["knee"]) == {"sequential", "parallel"}
    for knee in data["knee"].values():
        assert knee["unit"] == "users"
        assert {"level", "next_level", "interpolated", "low", "high", "windows"} <= set(knee)
    assert data["backend"]["kind"] == "simulated" and data["backend"]["capacity"] == 4
    assert data["generations"]["incomplete"] == 0


def test_parts_lost_to_call_timeouts_are_exit_3() -> None:
    # definitie-app's praktijkvoorbeelden takes ~37 model seconds: a 20 s call timeout loses it every time
    proc = run_voorbeelden(
        ["load", "--sim-profile", "definitie-app", "--users", "1", "--strategies", "parallel", "--json",
         "--call-timeout", "20", "--max-retries", "0", *FAST]
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    data = json.loads(proc.stdout)
    (lv,) = data["levels"]
    assert lv["parts_delivered"] == 5 * lv["generations_measured"]
    assert lv["goodput_per_min"] == 0
    assert data["generations"]["incomplete"] == data["generations"]["measured"] > 0


def test_a_remote_endpoint_needs_yes() -> None:
    proc = run_voorbeelden(["load", "--base-url", "https://api.example.invalid/v1", "--users", "1"])
    assert proc.returncode == 4, proc.stderr
    assert "--yes" in proc.stderr


def test_ctrl_c_keeps_the_levels_measured_so_far() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voorbeelden", "load", "--users", "1,2,3,4,5,6", "--json", "--slo", "60",
         "--time-scale", "0.05", "--duration", "20", "--warmup", "1"],
        cwd=ROOT, env=env_without_openai(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(8)  # the simulator is up and a level or more has run (a level is ~1.5 s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["interrupted"] is True and data["exit_code"] == 130
    assert len(data["levels"]) < 12  # stopped before the end
    assert "Traceback" not in err

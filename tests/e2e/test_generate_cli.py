"""``voorbeelden generate`` as a user runs it: a subprocess, no environment set up beforehand."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _fake_keys import fake_key
from conftest import env_without_openai, run_voorbeelden

from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]
DEF = "Een schriftelijke beslissing van een bestuursorgaan."


def cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_voorbeelden(["generate", *args], env=env_without_openai(env_extra), timeout=60)


def test_works_with_no_env_and_says_it_uses_the_simulator() -> None:
    res = cli("besluit", "--definitie", DEF, "--juridisch", "Bestuursrecht", "--time-scale", "0.01")
    assert res.returncode == 0, res.stderr
    assert "embedded simulator" in res.stderr
    for heading in ("Voorbeeldzinnen", "Praktijkvoorbeelden", "Tegenvoorbeelden", "Synoniemen", "Antoniemen"):
        assert f"== {heading} ==" in res.stdout
    assert "attempts" in res.stdout and "latency" in res.stdout


def test_json_output_parses() -> None:
    res = cli(
        "besluit", "--definitie", DEF, "--json", "--strategy", "bounded", "-k", "2", "--time-scale", "0.01"
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["strategy"] == "bounded"
    assert set(data["parts"]) == {
        "voorbeeldzinnen",
        "praktijkvoorbeelden",
        "tegenvoorbeelden",
        "synoniemen",
        "antoniemen",
        "toelichting",
    }
    assert len(data["records"]) >= 6 and data["request"]["begrip"] == "besluit"


def test_invalid_input_is_one_line_and_exit_2() -> None:
    res = cli("", "--definitie", DEF)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "begrip" in lines[0]
    res = cli("besluit", "--definitie", "x" * 4001)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_configured_endpoint_is_used_and_key_never_printed() -> None:
    secret = fake_key("doNotPrint")
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as sim:
        res = cli(
            "besluit",
            "--definitie",
            DEF,
            "--json",
            "--model",
            "my-model",
            env_extra={"OPENAI_API_KEY": secret, "OPENAI_BASE_URL": sim.base_url},
        )
        assert sim.counters()["requests_total"] == 6
    assert res.returncode == 0, res.stderr
    assert "embedded simulator" not in res.stderr
    assert secret not in res.stdout + res.stderr
    assert json.loads(res.stdout)["parts"]["synoniemen"]


def _one_error_line(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    last = [ln for ln in res.stderr.splitlines() if ln.strip()][-1]
    for word in words:
        assert word in last, last


def test_options_that_do_nothing_for_the_strategy_are_an_error_naming_them() -> None:
    _one_error_line(cli("besluit", "-k", "2"), "-k has no effect with --strategy parallel", "bounded")
    _one_error_line(
        cli("besluit", "--strategy", "sequential", "--hedge-delay", "1"),
        "--hedge-delay has no effect with --strategy sequential",
        "hedged",
    )


def test_simulator_options_with_a_real_endpoint_are_an_error_naming_them() -> None:
    res = cli("besluit", "--base-url", "http://127.0.0.1:9/v1", "--time-scale", "0.5")
    _one_error_line(res, "--time-scale has no effect", "127.0.0.1:9", "--base-url")
    res = cli(
        "besluit", "--sim-profile", "uniform-2s", env_extra={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    _one_error_line(res, "--sim-profile has no effect", "OPENAI_BASE_URL")


def test_bad_sampling_and_retry_values_are_exit_2_naming_the_option() -> None:
    _one_error_line(cli("besluit", "--temperature", "nan"), "--temperature", "finite")
    _one_error_line(cli("besluit", "--temperature", "2.5"), "--temperature")
    _one_error_line(cli("besluit", "--seed", "-1"), "--seed")
    _one_error_line(cli("besluit", "--seed", "1.5"), "--seed")
    _one_error_line(cli("besluit", "--max-retries", "-1"), "--max-retries")


def test_max_retries_reaches_the_calls() -> None:
    """--max-retries 0: the part that always fails is tried once (the default would try it three times)."""
    config = SimConfig(profile="uniform-2s", time_scale=0.01, schedule=("synoniemen=503",))
    with running_simulator(config) as sim:
        res = cli(
            "besluit",
            "--json",
            "--max-retries",
            "0",
            "--temperature",
            "0",
            "--seed",
            "3",
            env_extra={"OPENAI_BASE_URL": sim.base_url},
        )
        assert sim.counters()["requests_total"] == 6
    assert res.returncode == 3, res.stderr
    data = json.loads(res.stdout)
    assert [r["attempt"] for r in data["records"] if r["part"] == "synoniemen"] == [1]

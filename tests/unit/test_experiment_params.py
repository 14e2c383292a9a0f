"""Notebook parameter validation: bad values stop in the validation cell with a message that says what to fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from _fake_keys import fake_key

import voorbeelden
from voorbeelden.backend import resolve_backend, url_host
from voorbeelden.begrippen import BEGRIPPEN_FILE, count_begrippen, load_begrippen
from voorbeelden.experiments.params import validate_params

FAULTS = dict(
    backend="sim",
    profile="uniform-2s",
    strategy="parallel",
    time_scale=0.05,
    seed=0,
    trials=1,
    warmup=0,
    n_begrippen=2,
    max_retries=2,
    call_timeout_s=10.0,
    fault_kinds=["500"],
    fault_rates=[0.0],
    out_dir="",
)


def test_good_parameters_are_normalised(tmp_path: Path) -> None:
    changes = {"trials": 3.0, "fault_kinds": "500, hang", "fault_rates": [0, 0.5]}
    P = validate_params("02_failure_injection", **{**FAULTS, **changes, "out_dir": str(tmp_path / "new")})
    assert P["fault_kinds"] == ["500", "hang"]
    assert P["trials"] == 3 and isinstance(P["trials"], int)
    assert P["fault_rates"] == [0.0, 0.5]
    assert P["backend_kind"] == "simulated"
    assert Path(P["out_dir"]).is_dir()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"profile": "gpt-9"}, "profile: unknown profile 'gpt-9'; use uniform-2s"),
        ({"strategy": "teleport"}, "strategy: unknown strategy 'teleport'; use"),
        ({"trials": -1}, "trials: Input should be greater than or equal to 1"),
        ({"trials": True}, "trials: must be a number, got True"),
        ({"trials": "3"}, "trials: must be a number, got '3'"),
        ({"warmup": 1.5}, "warmup: must be a whole number"),
        ({"time_scale": 0}, "time_scale: Input should be greater than 0"),
        ({"time_scale": float("nan")}, "time_scale: must be a finite number"),
        ({"n_begrippen": 1000}, "n_begrippen: asks for 1000 begrippen; the data set holds"),
        ({"fault_rates": [0.1, 1.5]}, "fault_rates.1: Input should be less than or equal to 1"),
        ({"fault_kinds": ["500", "404"]}, "unknown fault kind '404'"),
        ({"backend": "ftp://x"}, "backend must be 'auto', 'sim', 'local' or an http(s) base URL"),
        ({"trails": 3}, "trails: unknown parameter; this notebook knows"),
    ],
)
def test_bad_parameters_raise_a_clear_value_error(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match="invalid parameters for 02_failure_injection") as info:
        validate_params("02_failure_injection", **{**FAULTS, **params})
    assert message in str(info.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ValueError) as info:
        validate_params("02_failure_injection", **{**FAULTS, "trials": 0, "profile": "x", "seed": -1})
    text = str(info.value)
    assert "trials" in text and "profile" in text and "seed" in text


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_base_url_that_does_not_answer_stops_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    key = fake_key("params")
    monkeypatch.setenv("OPENAI_API_KEY", key)
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    with pytest.raises(ValueError, match="does not answer") as info:
        validate_params("03_report", backend=url, out_dir="")
    assert key not in str(info.value)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ValueError, match="from OPENAI_BASE_URL"):
        validate_params("03_report", backend="auto", out_dir="")


def test_backend_auto_follows_the_environment() -> None:
    assert resolve_backend("auto", {}).kind == "simulated"
    real = resolve_backend("auto", {"OPENAI_BASE_URL": "https://user:pw@llm.example.org:8443/v1/"})
    assert real.kind == "real" and real.base_url == "https://user:pw@llm.example.org:8443/v1"
    assert real.host == "llm.example.org:8443"  # never the credentials or the path
    assert resolve_backend("auto", {"OPENAI_API_KEY": "k"}).base_url == "https://api.openai.com/v1"
    assert resolve_backend("sim", {"OPENAI_API_KEY": "k"}).kind == "simulated"
    assert url_host("http://127.0.0.1:9/v1") == "127.0.0.1:9"


def test_begrippen_come_from_the_package_and_a_shortfall_is_an_error() -> None:
    shipped = load_begrippen()
    assert BEGRIPPEN_FILE.is_relative_to(Path(voorbeelden.__file__).parent)
    assert len(shipped) == count_begrippen() >= 24 and all(r.definitie for r in shipped)
    assert len(load_begrippen(3)) == 3
    with pytest.raises(ValueError, match=f"holds {len(shipped)}"):
        load_begrippen(len(shipped) + 1)

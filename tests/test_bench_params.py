"""Notebook parameter validation: bad values stop in the validation cell with a message that says what to fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from voorbeelden.bench.backend import resolve_backend, url_host
from voorbeelden.bench.data import BUILTIN_BEGRIPPEN, load_begrippen
from voorbeelden.bench.params import validate_params


def test_good_parameters_are_normalised(tmp_path: Path) -> None:
    P = validate_params(
        backend="sim",
        profiles="uniform-2s, definitie-app",
        trials=3.0,
        time_scale=0.05,
        fault_rates=[0, "0.5"],
        out_dir=str(tmp_path / "new" / "dir"),
    )
    assert P["profiles"] == ["uniform-2s", "definitie-app"]
    assert P["trials"] == 3 and isinstance(P["trials"], int)
    assert P["fault_rates"] == [0.0, 0.5]
    assert P["backend_kind"] == "simulated"
    assert Path(P["out_dir"]).is_dir()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"profile": "gpt-9"}, "profile: 'gpt-9' is unknown; use one of"),
        ({"profiles": ["uniform-2s", "nope"]}, "'nope' is unknown"),
        ({"trials": -1}, "trials must be between 1 and"),
        ({"trials": True}, "trials must be an integer"),
        ({"warmup": 1.5}, "warmup must be an integer"),
        ({"time_scale": 0}, "time_scale must be > 0"),
        ({"fault_rates": [0.1, 1.5]}, "each fault rate must be >= 0.0 and <= 1.0"),
        ({"fault_kinds": ["500", "404"]}, "'404' is unknown"),
        ({"backend": "ftp://x"}, "backend must be 'auto', 'sim' or an http(s) base URL"),
        ({"trails": 3}, "unknown parameter 'trails'"),
    ],
)
def test_bad_parameters_raise_a_clear_value_error(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match="invalid notebook parameters") as info:
        validate_params(**params)
    assert message in str(info.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ValueError) as info:
        validate_params(trials=0, profile="x", seed=-1)
    text = str(info.value)
    assert "trials" in text and "profile" in text and "seed" in text


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_base_url_that_does_not_answer_stops_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-params")
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    with pytest.raises(ValueError, match="does not answer") as info:
        validate_params(backend=url)
    assert "sk-test-SECRET" not in str(info.value)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ValueError, match="from OPENAI_BASE_URL"):
        validate_params(backend="auto")


def test_backend_auto_follows_the_environment() -> None:
    assert resolve_backend("auto", {}).kind == "simulated"
    real = resolve_backend("auto", {"OPENAI_BASE_URL": "https://user:pw@llm.example.org:8443/v1/"})
    assert real.kind == "real" and real.base_url == "https://user:pw@llm.example.org:8443/v1"
    assert real.host == "llm.example.org:8443"  # never the credentials or the path
    assert resolve_backend("auto", {"OPENAI_API_KEY": "k"}).base_url == "https://api.openai.com/v1"
    assert resolve_backend("sim", {"OPENAI_API_KEY": "k"}).kind == "simulated"
    assert url_host("http://127.0.0.1:9/v1") == "127.0.0.1:9"


def test_begrippen_load_from_the_shared_set_or_the_builtin_one() -> None:
    builtin = load_begrippen(path=BUILTIN_BEGRIPPEN)
    assert len(builtin) == 5 and all(r.definitie for r in builtin)
    assert len(load_begrippen(3)) == 3
    with pytest.raises(ValueError, match="holds 5"):
        load_begrippen(6, path=BUILTIN_BEGRIPPEN)

"""A paid endpoint only with consent (issue 11, item 9): report (and a large batch) against a remote endpoint
first say what they will do and ask; --yes skips the question; without a terminal they stop before any call
and say how to proceed. The backend line names the variable that really chose the endpoint."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _fake_keys import fake_key
from conftest import env_without_openai, run_voorbeelden

from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]
CI_PARAMS = ROOT / "notebooks" / "params" / "ci.yaml"
KEY = fake_key("consent")


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # stdin is not a terminal: nobody to ask
    return run_voorbeelden(args, cwd=cwd, env=env_without_openai(env), timeout=90, stdin=subprocess.DEVNULL)


def test_report_with_only_an_api_key_stops_before_any_call_and_says_how_to_proceed(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    done = _run(
        ["report", "--params", str(CI_PARAMS), "--out", str(out), "--no-progress"], ROOT, OPENAI_API_KEY=KEY
    )
    assert done.returncode == 4, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert "api.openai.com" in err and "chosen by OPENAI_API_KEY" in err
    assert "chat-completion calls" in err and "input tokens" in err and "estimated cost: up to $" in err
    assert "--yes" in err and "backend: sim" in err
    assert not out.exists() or not any(out.iterdir())  # no notebook ran
    assert KEY not in done.stdout + done.stderr


def test_a_large_batch_against_a_remote_endpoint_asks_first(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"begrip": f"besluit {i}"}) + "\n" for i in range(30)))
    out = tmp_path / "out.jsonl"
    done = _run(
        ["batch", str(inp), "--out", str(out), "--model", "some-private-model"],
        tmp_path,
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL="https://llm.example.org/v1",
    )
    assert done.returncode == 4, done.stderr
    err = " ".join(done.stderr.split())
    assert (
        "llm.example.org" in err and "chosen by OPENAI_BASE_URL" in err and "180 chat-completion calls" in err
    )
    assert "estimated cost: unknown" in err  # no list price for that model: said, not guessed
    assert "--yes" in err and not out.exists()


def test_yes_skips_the_question(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import voorbeelden.report.runner as report_module
    from voorbeelden.commands import report as report_command

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    called: list[Any] = []

    def fake_run_report(*args: Any, **kwargs: Any) -> Any:
        called.append(args)
        raise FileNotFoundError("stub: the run itself is not under test")

    monkeypatch.setattr(report_module, "run_report", fake_run_report)
    args = argparse.Namespace(params=str(CI_PARAMS), out=None, notebooks=None, no_progress=True, yes=True)
    assert report_command.run(args) == 2  # the stub's error, i.e. it got past the gate
    assert called and "--yes given: going ahead" in capsys.readouterr().err
    called.clear()
    args.yes = False
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal
    assert report_command.run(args) == 4 and not called


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_an_interactive_answer_decides() -> None:
    from voorbeelden.consent import Plan, confirm

    plan = Plan("test run", "api.openai.com", "OPENAI_API_KEY", 12, 1000, 5000, "gpt-4.1")
    err = io.StringIO()
    assert confirm(plan, yes=False, how_to_avoid="", stdin=_Terminal("y\n"), stderr=err)
    assert "Proceed? [y/N]" in err.getvalue() and "$0.04" in err.getvalue()  # 1000*2/1e6 + 5000*8/1e6
    assert not confirm(plan, yes=False, how_to_avoid="", stdin=_Terminal("\n"), stderr=io.StringIO())


def test_local_endpoints_need_no_consent_and_prices_are_dated() -> None:
    from voorbeelden.consent import is_remote
    from voorbeelden.prices import PRICES_AS_OF, price_of

    for url in (
        "http://127.0.0.1:8000/v1",
        "http://localhost:11434/v1",
        "http://[::1]:8080/v1",
        "http://127.0.0.2/v1",
    ):
        assert not is_remote(url), url
    for url in (None, "https://api.openai.com/v1", "http://10.0.0.5:8000/v1", "https://llm.example.org/v1"):
        assert is_remote(url), url
    snapshot = price_of("gpt-4.1-2025-04-14")
    assert snapshot is not None and (snapshot.input_per_m, snapshot.output_per_m) == (2.0, 8.0)
    assert price_of("gpt-4.1-mini").output_per_m == 1.6 and price_of("llama3") is None
    assert PRICES_AS_OF.startswith("20")


def test_the_backend_line_names_the_variable_that_chose_it() -> None:
    from voorbeelden.backend import Backend, resolve_backend
    from voorbeelden.experiments.speedup import describe_backend

    key_only = resolve_backend("auto", {"OPENAI_API_KEY": KEY})
    assert key_only.host == "api.openai.com" and key_only.source.startswith("OPENAI_API_KEY")
    line = describe_backend(Backend(kind="real", base_url=key_only.base_url or "", chosen_by=key_only.source))
    assert "chosen by OPENAI_API_KEY" in line and "from OPENAI_BASE_URL" not in line
    with_url = resolve_backend("auto", {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert with_url.source == "OPENAI_BASE_URL"
    assert resolve_backend("http://127.0.0.1:9/v1", {}).source == "backend parameter"


def test_generate_names_the_variable_that_chose_the_endpoint(tmp_path: Path) -> None:
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        done = _run(["generate", "besluit"], tmp_path, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=sim.base_url)
    assert done.returncode == 0, done.stderr
    port = sim.base_url.split(":")[-1].split("/")[0]
    assert f"using the endpoint 127.0.0.1:{port} (chosen by OPENAI_BASE_URL)" in done.stderr

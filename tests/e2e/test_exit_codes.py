"""Exit codes that mean something (issue 11, item 3): generate and batch say complete (0), none (1), bad input
(2) and partial (3) apart, document it in --help, and batch lists each term's status in its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _fake_keys import fake_key
from _truth_server import answer_401, serve
from conftest import env_without_openai

from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]
DEF = "Een schriftelijke beslissing van een bestuursorgaan."
LOSE_TWO = ("synoniemen=malformed", "antoniemen=malformed")  # malformed bodies are not retried


def _cli(*args: str, base_url: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = env_without_openai()
    if base_url:
        env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=fake_key("exitCodes"))
    return subprocess.run(
        [sys.executable, "-m", "voorbeelden", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=90,
    )


@pytest.mark.parametrize("command", ["generate", "batch"])
def test_help_documents_the_exit_codes(command: str) -> None:
    done = _cli(command, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "exit codes:" in text
    for code in ("0 ", "1 ", "2 bad input", "3 partial", "130 interrupted"):
        assert code in text, code


def test_report_help_documents_its_exit_codes() -> None:
    text = " ".join(_cli("report", "--help").stdout.split())
    for code in (
        "0 every notebook ran",
        "1 a notebook failed",
        "2 bad parameters",
        "4 stopped",
        "130 interrupted",
    ):
        assert code in text, code


def test_readme_documents_the_exit_codes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Exit codes" in readme
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for needle in ("`0`", "`1`", "`2`", "`3`", "`130`", "partial", "batch", "report"):
        assert needle in section, needle


def test_generate_exit_codes_complete_partial_none_bad_input() -> None:
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        complete = _cli(
            "generate", "besluit", "--definitie", DEF, "--strategy", "sequential", base_url=sim.base_url
        )
        sim.configure(schedule=list(LOSE_TWO))
        partial = _cli(
            "generate", "besluit", "--definitie", DEF, "--strategy", "sequential", base_url=sim.base_url
        )
    with serve(answer_401) as srv:
        none = _cli("generate", "besluit", "--definitie", DEF, base_url=srv.base_url)
    bad = _cli("generate", "", "--definitie", DEF)
    assert complete.returncode == 0, complete.stdout + complete.stderr
    assert partial.returncode == 3, partial.stdout + partial.stderr
    assert "4 of 6 parts delivered" in partial.stdout
    assert none.returncode == 1, none.stdout + none.stderr
    assert "0 of 6 parts delivered" in none.stdout
    assert bad.returncode == 2


def _inputs(path: Path, n: int) -> Path:
    path.write_text(
        "".join(json.dumps({"begrip": f"besluit {i}", "definitie": DEF}) + "\n" for i in range(n))
    )
    return path


def _batch(inp: Path, out: Path, base_url: str) -> subprocess.CompletedProcess[str]:
    return _cli(
        "batch", str(inp), "--out", str(out), "--json", "--no-cache", base_url=base_url, cwd=out.parent
    )


def test_batch_exit_codes_and_per_term_status(tmp_path: Path) -> None:
    inp = _inputs(tmp_path / "in.jsonl", 3)
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        complete = _batch(inp, tmp_path / "complete.jsonl", sim.base_url)
        sim.configure(schedule=list(LOSE_TWO))
        partial = _batch(inp, tmp_path / "partial.jsonl", sim.base_url)
    with serve(answer_401) as srv:
        none = _batch(inp, tmp_path / "none.jsonl", srv.base_url)
    with_invalid = tmp_path / "mixed.jsonl"
    with_invalid.write_text(inp.read_text() + "not json\n")
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        mixed = _batch(with_invalid, tmp_path / "mixed-out.jsonl", sim.base_url)

    assert complete.returncode == 0, complete.stderr
    s = json.loads(complete.stdout)
    assert s["term_status"] == {"complete": 3, "partial": 0, "failed": 0, "invalid": 0}
    assert [t["status"] for t in s["terms"]] == ["complete"] * 3

    assert partial.returncode == 3, partial.stderr
    s = json.loads(partial.stdout)
    assert {t["status"] for t in s["terms"]} == {"partial"}
    assert all(t["parts_delivered"] == 4 and t["begrip"].startswith("besluit") for t in s["terms"])

    assert none.returncode == 1, none.stderr
    s = json.loads(none.stdout)
    assert {t["status"] for t in s["terms"]} == {"failed"}
    assert all("auth" in t["error"] for t in s["terms"])

    assert mixed.returncode == 3, mixed.stderr
    assert json.loads(mixed.stdout)["term_status"]["invalid"] == 1

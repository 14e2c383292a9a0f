"""The API key from the environment is used but never printed or written by `generate` and `batch`.

(`report` has its own test in tests/test_report_e2e.py.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fake_keys import fake_key
from conftest import env_without_openai, run_voorbeelden

from voorbeelden.sim import SimConfig, SimHandle, running_simulator

ROOT = Path(__file__).resolve().parents[2]
SECRET = fake_key("SECRET")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    # A few faults so error paths (messages, records of failed attempts) are exercised too.
    with running_simulator(
        SimConfig(profile="uniform-2s", time_scale=0.005, fault_rate=0.2, faults=("500", "malformed", "429"))
    ) as handle:
        yield handle


def _run(args: list[str], sim: SimHandle, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = env_without_openai({"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": sim.base_url, "MPLBACKEND": "agg"})
    return run_voorbeelden(args, cwd=cwd, env=env, timeout=60)


def _leaks(done: subprocess.CompletedProcess[str], root: Path) -> list[str]:
    # The key's distinctive tail as well as the whole key, so a truncated or masked-but-partial key counts.
    needles = [SECRET, SECRET[-16:]]
    where = [
        name
        for name, text in (("stdout", done.stdout), ("stderr", done.stderr))
        if any(n in text for n in needles)
    ]
    for p in root.rglob("*"):
        if p.is_file() and any(n.encode() in p.read_bytes() for n in needles):
            where.append(str(p))
    return where


def test_generate_json_never_shows_the_key(sim: SimHandle, tmp_path: Path) -> None:
    before = sim.counters()["requests_total"]
    done = _run(["generate", "besluit", "--definitie", "Een beslissing.", "--json"], sim, tmp_path)
    assert done.returncode in (0, 1, 3), done.stderr  # complete, none or partial (injected faults)
    data = json.loads(done.stdout)
    assert data["records"], "no calls were recorded"
    assert sim.counters()["requests_total"] >= before + 6  # the calls reached the test's simulator
    assert not _leaks(done, tmp_path)


def test_batch_json_never_writes_the_key(sim: SimHandle, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    rows = [{"begrip": f"besluit {i}", "definitie": "Een beslissing."} for i in range(6)]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "cache"
    args = ["batch", str(inp), "--out", str(out), "--json", "--cache-dir", str(cache), "--max-retries", "1"]
    done = _run(args, sim, tmp_path)
    assert done.returncode in (0, 1, 3), done.stderr  # complete, none or partial (injected faults)
    summary = json.loads(done.stdout)
    assert summary["generated"] == 6 and summary["invalid"] == 1
    assert len(out.read_text().splitlines()) == 7
    assert any(p.is_file() for p in cache.rglob("*")), "the cache wrote nothing, so nothing was checked there"
    assert not _leaks(done, tmp_path)
    # A rerun answers from the cache and resumes from --out: still no key anywhere.
    again = _run(args, sim, tmp_path)
    assert again.returncode in (0, 1, 3), again.stderr
    assert not _leaks(again, tmp_path)

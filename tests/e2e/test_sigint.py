"""Ctrl-C (SIGINT to the process group, as a terminal sends it) mid-run: a quick, clean exit.

For `generate`, `batch` (with a simulator subprocess and --out) and `report`: the process ends within a couple
of seconds with exit 130 (or another clean non-zero code), says so, prints no traceback, and leaves no child
process (simulator, kernel) behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import env_without_openai

ROOT = Path(__file__).resolve().parents[2]
CI_PARAMS = ROOT / "notebooks" / "params" / "ci.yaml"
EXIT_WITHIN_S = 3.0  # "~1-2 s", with slack for a loaded 2-core CI machine


def _env() -> dict[str, str]:
    env = env_without_openai()
    env.update(MPLBACKEND="agg", PYTHONUNBUFFERED="1")
    return env


def _start(args: list[str], tmp: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "voorbeelden", *args],
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=open(out, "w"),
        stderr=open(err, "w"),
        text=True,
        start_new_session=True,
    )
    return proc, out, err


def _wait_for(cond, timeout: float, proc: subprocess.Popen[str]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        assert proc.poll() is None, f"the command ended early with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError("the command did not reach the point to interrupt in time")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _interrupt(proc: subprocess.Popen[str], seen: list[psutil.Process]) -> tuple[int, float]:
    seen = seen + _descendants(proc.pid)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("the command did not stop within 30 s of SIGINT") from None
    elapsed = time.monotonic() - t0
    time.sleep(0.3)  # let children that were told to stop finish doing so
    alive = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:  # never leave them for the next test
        p.kill()
    assert not alive, f"orphaned child processes: {[p.cmdline() for p in alive]}"
    try:  # anything else still in the group (a grandchild that re-parented)
        os.killpg(proc.pid, 0)
        group_left = True
    except ProcessLookupError:
        group_left = False
    if group_left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not group_left, "processes of the command's group survived SIGINT"
    return code, elapsed


def _assert_clean(code: int, elapsed: float, err: Path) -> str:
    stderr = err.read_text()
    assert code == 130 or code not in (0, -signal.SIGINT), (code, stderr)
    assert code > 0, (code, stderr)
    assert "Traceback" not in stderr, stderr
    assert "interrupt" in stderr.lower(), stderr
    assert elapsed < EXIT_WITHIN_S, f"took {elapsed:.2f} s to stop after SIGINT"
    return stderr


def test_sigint_during_generate(tmp_path: Path) -> None:
    # uniform-2s at time_scale 5: each call takes ~10 s, so the generation is surely mid-run.
    args = ["generate", "besluit", "--sim-profile", "uniform-2s", "--time-scale", "5"]
    proc, _, err = _start(args, tmp_path)
    _wait_for(lambda: "embedded simulator" in err.read_text(), 20, proc)
    time.sleep(0.5)
    code, elapsed = _interrupt(proc, [])
    _assert_clean(code, elapsed, err)
    assert code == 130


def test_sigint_during_batch_keeps_finished_lines(tmp_path: Path) -> None:
    rows = [{"begrip": f"besluit {i}", "definitie": "Een beslissing."} for i in range(400)]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    args = ["batch", str(inp), "--out", str(out), "--no-progress", "--no-cache", "--sim-process"]
    args += ["--sim-profile", "uniform-2s", "--time-scale", "0.05", "--max-in-flight", "12", "--fixed"]
    proc, _, err = _start(args, tmp_path)
    seen: list[psutil.Process] = []

    def some_done() -> bool:
        seen.extend(_descendants(proc.pid))
        return out.exists() and out.read_text().count("\n") >= 2

    _wait_for(some_done, 30, proc)
    before = out.read_text().count("\n")
    assert any("voorbeelden" in " ".join(p.cmdline()) for p in seen if p.is_running()), "no sim subprocess"
    code, elapsed = _interrupt(proc, seen)
    _assert_clean(code, elapsed, err)
    lines = out.read_text().splitlines()
    assert before <= len(lines) < len(rows)
    done = [json.loads(line) for line in lines]  # every kept line is whole JSON
    assert len({d["begrip"] if "begrip" in d else json.dumps(d) for d in done}) == len(done)


@pytest.mark.slow
def test_sigint_during_report(tmp_path: Path) -> None:
    args = ["report", "--params", str(CI_PARAMS), "--out", str(tmp_path / "reports"), "--no-progress"]
    proc, _, err = _start(args, tmp_path)
    seen: list[psutil.Process] = []

    def kernel_running() -> bool:
        kids = _descendants(proc.pid)
        seen.extend(kids)
        return any("kernel" in " ".join(p.cmdline()) for p in kids if p.is_running())

    _wait_for(kernel_running, 60, proc)
    time.sleep(1.0)  # the first notebook is now executing cells
    code, elapsed = _interrupt(proc, seen)
    _assert_clean(code, elapsed, err)

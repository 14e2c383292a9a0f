"""Killed processes: a simulator started for a command dies with it whatever the signal, an interrupted
report says so in its folder (and reports/latest does not move to it), and Ctrl-C of a batch with the
in-process simulator prints no "Task was destroyed but it is pending!".

Issue 14 cases 5 and 12.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from conftest import env_without_openai

from voorbeelden.report.runner import SOCKET_DIR_PREFIX, sweep_socket_dirs

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp: Path) -> dict[str, str]:
    env = env_without_openai()
    env.update(VOORBEELDEN_CACHE_DIR=str(tmp / "cache"), PYTHONUNBUFFERED="1", MPLBACKEND="agg")
    return env


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return []
        time.sleep(0.05)
    left = [p for p in pids if _alive(p)]
    for p in left:  # never leave them for the next test
        try:
            psutil.Process(p).kill()
        except psutil.NoSuchProcess:
            pass
    return left


def _sim_children(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if "sim" in k.cmdline()]


# ---- case 5: child servers die with their parent ----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_the_simulator_subprocess_of_a_batch_dies_with_it(tmp_path: Path, sig: signal.Signals) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"begrip": f"kill {i}"}) + "\n" for i in range(200)))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "voorbeelden", "batch", str(inp), "--out", str(out), "--sim-process"]
    cmd += ["--time-scale", "0.2", "--sim-profile", "uniform-2s", "--no-progress", "--no-cache"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        sims: list[psutil.Process] = []
        while time.monotonic() < deadline and not (sims and out.exists() and out.stat().st_size > 0):
            sims = sims or _sim_children(proc.pid)
            time.sleep(0.05)
        assert sims, "the batch started no simulator subprocess"
        proc.send_signal(sig)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _gone_within([s.pid for s in sims], 5.0), f"simulator outlived its parent ({sig.name})"


def test_running_simulator_process_dies_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from voorbeelden.sim import SimConfig, running_simulator
        with running_simulator(SimConfig(time_scale=0.01), process=True) as sim:
            print(sim.process.pid, flush=True)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        sim_pid = int(proc.stdout.readline())
        assert _alive(sim_pid)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not _gone_within([sim_pid], 5.0), "the simulator subprocess was orphaned"


# ---- a report whose notebook holds a simulator: killed, and interrupted -----------------------------------

_HOLD = """
import os, time
from voorbeelden.sim import SimConfig, running_simulator
_sim = running_simulator(SimConfig(time_scale=0.01), process=True)
_handle = _sim.__enter__()
with open(os.path.join(out_dir, "pids.txt"), "w") as f:
    f.write(f"{os.getpid()} {_handle.process.pid}")
time.sleep(300)
"""


def _notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('out_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _report_setup(tmp: Path, code: str) -> tuple[list[str], Path]:
    nbs = tmp / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_hold.ipynb", code)
    params = tmp / "params.yaml"
    params.write_text("execution_timeout: 600\nnotebooks:\n  01_hold.ipynb: {}\n")
    out = tmp / "reports"
    cmd = [sys.executable, "-m", "voorbeelden", "report", "--params", str(params), "--out", str(out)]
    cmd += ["--notebooks", str(nbs), "--no-progress"]
    return cmd, out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_a_killed_report_leaves_no_kernel_or_simulator_and_is_marked_incomplete(
    tmp_path: Path, sig: signal.Signals
) -> None:
    cmd, out = _report_setup(tmp_path, _HOLD)
    out.mkdir()
    (out / "earlier").mkdir()
    (out / "latest").symlink_to("earlier", target_is_directory=True)  # a complete report from before
    # A short temporary folder of its own (kernel socket paths must stay under ~100 characters).
    tmpdir = Path(tempfile.mkdtemp(prefix="vk-"))
    env = {**_env(tmp_path), "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not pids:
            found = list(out.glob("*/pids.txt"))
            if found and found[0].read_text().strip():
                pids = [int(p) for p in found[0].read_text().split()]
            assert proc.poll() is None, "the report ended early"
            time.sleep(0.1)
        assert pids, "the notebook never started its simulator"
        proc.send_signal(sig)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = _gone_within(pids, 10.0)  # the kernel notices its parent is gone within about a second
    assert not left, f"kernel/simulator left behind after {sig.name}: {left}"
    report_dir = next(p for p in out.iterdir() if p.is_dir() and p.name not in ("earlier", "latest"))
    assert (report_dir / "INCOMPLETE").is_file(), sorted(p.name for p in report_dir.iterdir())
    assert "incomplete" in (report_dir / "INCOMPLETE").read_text()
    assert not (report_dir / "index.html").exists()
    assert os.readlink(out / "latest") == "earlier"
    # The kernel's socket folder names the killed report; the next report's sweep removes what it left.
    left_behind = list(tmpdir.glob(f"{SOCKET_DIR_PREFIX}{proc.pid}-*"))
    if sig == signal.SIGKILL:
        assert len(left_behind) == 1, sorted(p.name for p in tmpdir.iterdir())
    assert sorted(sweep_socket_dirs(tmpdir)) == sorted(left_behind)
    assert not list(tmpdir.glob(f"{SOCKET_DIR_PREFIX}*"))
    shutil.rmtree(tmpdir)


@pytest.mark.slow
def test_an_interrupted_report_is_marked_incomplete_and_a_finished_one_is_not(tmp_path: Path) -> None:
    cmd, out = _report_setup(tmp_path, "import time\ntime.sleep(300)")
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            kids = psutil.Process(proc.pid).children(recursive=True)
            if any("kernel" in " ".join(k.cmdline()) for k in kids):
                break
            time.sleep(0.1)
        time.sleep(2.0)  # the kernel is now running the sleeping cell
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code != 0
    (report_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    assert (report_dir / "INCOMPLETE").is_file()
    assert not (out / "latest").exists()

    # the same report, finished: no mark, and latest points to it
    _notebook(tmp_path / "notebooks" / "01_hold.ipynb", "x = 1")
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    latest = (out / "latest").resolve()
    assert latest != report_dir and (latest / "index.html").is_file()
    assert not (latest / "INCOMPLETE").exists()


# ---- case 12: Ctrl-C of a batch with the in-process simulator ---------------------------------------------


def test_ctrl_c_of_a_batch_with_the_in_process_simulator_leaves_no_pending_tasks(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"begrip": f"sigint {i}"}) + "\n" for i in range(400)))
    out = tmp_path / "out.jsonl"
    err = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "voorbeelden", "batch", str(inp), "--out", str(out), "--no-cache"]
    cmd += ["--no-progress"]  # the defaults otherwise: definitie-app at time_scale 0.1, 64 calls in flight
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path), stderr=f, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 20):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = err.read_text()
    assert code == 130, stderr
    assert "Task was destroyed but it is pending" not in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]

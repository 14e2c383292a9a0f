"""The CLI starts without the heavy libraries it does not use: ``--help`` of every command imports no openai,
and the simulator process (``python -m voorbeelden sim``, which ``running_simulator(process=True)`` and the
benchmarks start) imports no openai, pandas or matplotlib, even while it serves.

Checked with ``python -X importtime``, which names every module a process imports (on stderr), so the test
sees the real import graph of a fresh interpreter, not this test process's already-filled ``sys.modules``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import env_without_openai

ROOT = Path(__file__).resolve().parents[2]
PYTHON_M = (sys.executable, "-X", "importtime", "-m", "voorbeelden")
LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")


def _env() -> dict[str, str]:
    return env_without_openai()


def imported(stderr: str) -> set[str]:
    """Top-level package names in a ``-X importtime`` report."""
    return {m.group(1).split(".")[0] for m in map(LINE.match, stderr.splitlines()) if m}


def importtime(*args: str) -> set[str]:
    res = subprocess.run(
        [*PYTHON_M, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    mods = imported(res.stderr)
    assert "voorbeelden" in mods  # the report was read: an unparsed one would pass every check below
    return mods


def test_importtime_report_is_parsed() -> None:
    """The parser sees a heavy import when there is one (so an empty result means 'not imported')."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import openai"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "openai" in imported(res.stderr)


def test_sim_help_imports_no_openai_pandas_matplotlib_numpy() -> None:
    mods = importtime("sim", "--help")
    assert not mods & {"openai", "pandas", "matplotlib", "numpy"}, sorted(mods)


@pytest.mark.parametrize(
    "args", [("--help",), ("generate", "--help"), ("batch", "--help"), ("report", "--help")]
)
def test_help_imports_no_openai_pandas_matplotlib(args: tuple[str, ...]) -> None:
    mods = importtime(*args)
    assert not mods & {"openai", "pandas", "matplotlib"}, sorted(mods)


def test_running_simulator_process_imports_no_openai_pandas_matplotlib(tmp_path: Path) -> None:
    """The simulator as it is started for benchmarks: serving, then stopped by closing its stdin. Its
    import report goes to a file: a pipe nobody reads while it serves could fill and stall it."""
    report = tmp_path / "importtime.txt"
    with report.open("w") as err:
        proc = subprocess.Popen(
            [*PYTHON_M, "sim", "--port", "0", "--quiet", "--exit-with-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
        try:
            assert proc.stdout is not None and proc.stdin is not None
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            proc.stdin.close()  # end of file on stdin: the simulator stops
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    mods = imported(report.read_text())
    assert {"voorbeelden", "aiohttp"} <= mods  # it did import the server it runs
    assert not mods & {"openai", "pandas", "matplotlib"}, sorted(mods)


def test_importing_the_cli_imports_no_openai_pandas_matplotlib_numpy() -> None:
    """``import voorbeelden.cli`` (what every command pays before it starts) stays free of the heavy
    libraries; checked by what it imports, not by a timing."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import voorbeelden.cli"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    mods = imported(res.stderr)
    assert "voorbeelden" in mods
    assert not mods & {"openai", "pandas", "matplotlib", "numpy"}, sorted(mods)


def test_dir_of_the_package_lists_its_public_names_without_importing_them() -> None:
    """Jupyter's tab completion asks ``dir(voorbeelden)``: the lazy exports are listed before first use,
    and listing them imports nothing heavy."""
    code = (
        "import sys, voorbeelden\n"
        "names = dir(voorbeelden)\n"
        "missing = sorted(set(voorbeelden.__all__) - set(names))\n"
        "print(missing, 'generate' in names, 'openai' in sys.modules, 'lazy_exports' in names)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["[]", "True", "False", "False"]

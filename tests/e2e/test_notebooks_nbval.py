"""CI for the notebooks: committed without outputs, parameters first, validation next, and nbval runs them.

nbval runs in a subprocess (``pytest --nbval-lax notebooks/``) so that plain ``pytest`` from the project root
checks the notebooks without turning nbval on for every test file; its defaults are small and CI-safe.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import env_without_openai

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_report_suite_notebooks_are_present() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_sequential_vs_parallel.ipynb",
        "02_failure_injection.ipynb",
        "03_report.ipynb",
        "04_scale_and_rate_limits.ipynb",
        "05_strategies.ipynb",
        "06_calibration.ipynb",
        "07_under_load.ipynb",
        "08_local_engines.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_with_parameters_then_validation(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert code[0].metadata.get("tags") == ["parameters"]
    assert "validate_params(" in code[1].source
    names = papermill.inspect_notebook(str(path))
    assert "out_dir" in names
    assert not [n for n in names if "key" in n.lower() or "secret" in n.lower()], (
        "secrets are never parameters"
    )
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
def test_nbval_runs_the_notebooks_with_their_defaults(tmp_path: Path) -> None:
    env = env_without_openai()
    env.update(MPLBACKEND="agg", VOORBEELDEN_OUT_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "notebooks/"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert (tmp_path / "01_speedup_vs_bound.png").is_file()
    assert (tmp_path / "03_environment.json").is_file()

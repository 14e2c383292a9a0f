"""The report runner on trivial notebooks: statuses, failure messages, HTML, index and the latest link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from voorbeelden.report.runner import SOCKET_DIR_PREFIX, load_params, run_report, sweep_socket_dirs

ROOT = Path(__file__).resolve().parents[2]


def _notebook(path: Path, *cells: str) -> None:
    params = new_code_cell("x = 1\nout_dir = ''")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {
        "name": "some-kernel-ci-does-not-have",
        "display_name": "x",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_a_failing_notebook_is_marked_failed_and_the_others_still_run(tmp_path: Path) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(
        nbs / "a_ok.ipynb",
        "import os\nfrom pathlib import Path\nprint('cwd', Path.cwd())\nassert Path.cwd().name == 'nbs'",
        "Path(out_dir, 'a.txt').write_text(str(x))",
    )
    _notebook(
        nbs / "b_fails.ipynb", "raise ValueError('invalid notebook parameters:\\n  - trials must be >= 1')"
    )
    params = tmp_path / "p.yaml"
    params.write_text(
        "execution_timeout: 60\ncommon: {x: 5}\nnotebooks:\n  b_fails.ipynb: {}\n  a_ok.ipynb: {x: 7}\n"
    )
    out = tmp_path / "reports"
    result = run_report(params, out, notebooks_dir=nbs, progress=False)

    assert result.exit_code == 1
    by_name = {r.name: r for r in result.runs}
    assert [r.name for r in result.runs] == ["b_fails.ipynb", "a_ok.ipynb"]  # YAML order
    assert by_name["a_ok.ipynb"].status == "ok"
    assert by_name["b_fails.ipynb"].status == "failed"
    assert "ValueError: invalid notebook parameters" in by_name["b_fails.ipynb"].error
    report = result.report_dir
    assert (report / "a.txt").read_text() == "7"  # per-notebook value beats common; out_dir injected
    assert (report / "b_fails.ipynb").is_file() and (report / "b_fails.html").is_file()
    index = (report / "index.html").read_text()
    assert "1 of 2 notebooks FAILED" in index and "trials must be &gt;= 1" in index
    summary = json.loads((report / "summary.json").read_text())
    assert summary["ok"] is False
    assert summary["backend"]["kind"] in ("simulated", "real")
    assert (out / "latest").resolve() == report.resolve()


def test_parameter_file_shape_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("commons: {}\n")
    with pytest.raises(ValueError, match="unknown top-level key"):
        load_params(bad)
    with pytest.raises(FileNotFoundError):
        load_params(tmp_path / "missing.yaml")
    for name in ("ci.yaml", "default.yaml"):
        config = load_params(ROOT / "notebooks" / "params" / name)
        # every notebook of the suite is run by both parameter sets, and nothing else
        assert set(config["notebooks"]) == {p.name for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")}


def test_the_sweep_removes_socket_folders_of_finished_reports_only(tmp_path: Path) -> None:
    """A report killed with SIGKILL leaves its kernel-socket folder; the next report removes it, but never the
    folder of a report still running, nor anything not named like ours."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(done.stdout)
    dead = tmp_path / f"{SOCKET_DIR_PREFIX}{dead_pid}-abc"
    running = tmp_path / f"{SOCKET_DIR_PREFIX}{os.getpid()}-def"
    unnamed = tmp_path / f"{SOCKET_DIR_PREFIX}xyz12345"
    other = tmp_path / f"other-{dead_pid}-ghi"
    for folder in (dead, running, unnamed, other):
        folder.mkdir()
        (folder / "k-1").write_text("")
    assert sweep_socket_dirs(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (running, unnamed, other))


def test_the_report_names_the_commit_it_started_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit made while a report runs must not be credited with the figures of the code that ran."""
    import voorbeelden.report.environment as environment

    def git_info() -> dict[str, object]:  # the commit changes once the notebook has run
        ran = any((tmp_path / "reports").glob("*/ran"))
        return {"commit": "committed-during-the-run" if ran else "started", "dirty": False}

    monkeypatch.setattr(environment, "git_info", git_info)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "a.ipynb", "from pathlib import Path\nPath(out_dir, 'ran').write_text('')")
    params = tmp_path / "p.yaml"
    params.write_text("notebooks:\n  a.ipynb: {}\n")
    result = run_report(params, tmp_path / "reports", notebooks_dir=nbs, progress=False)
    assert result.summary["environment"]["git"]["commit"] == "started"
    assert (
        json.loads((result.report_dir / "summary.json").read_text())["environment"]["git"]["commit"]
        == "started"
    )

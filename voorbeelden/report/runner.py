"""``voorbeelden report``: execute the notebooks with papermill into ``reports/<timestamp>/``.

Each notebook runs as its own papermill run, one after the other (papermill's ``cwd`` uses ``os.chdir``, so
never in threads), with ``kernel_name="python3"``, ``cwd`` = the notebooks folder and an execution timeout.
A notebook that fails is saved partially executed and marked failed with its error; the others still run,
and the report is written, but :attr:`ReportResult.exit_code` is 1. Every executed notebook is redacted
before its HTML is made. The parameter file is read and checked by :mod:`voorbeelden.report.plan`, the folder
kept by :mod:`voorbeelden.report.folder`, the summary assembled by :mod:`voorbeelden.report.summary` and the
first page rendered by :mod:`voorbeelden.report.page`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voorbeelden.experiments.speedup import write_json
from voorbeelden.redact import redact, redact_obj
from voorbeelden.report.folder import DEFAULT_OUT, check_out_root, finish, new_report_dir
from voorbeelden.report.page import render_index
from voorbeelden.report.plan import (
    DEFAULT_EXECUTION_TIMEOUT_S,
    DEFAULT_PARAMS,
    NOTEBOOKS_DIR,
    load_params,
    notebook_names,
    plan_parameters,
)
from voorbeelden.report.summary import build_summary


@dataclass
class NotebookRun:
    name: str
    status: str = "not run"  # ok | failed
    error: str | None = None
    duration_s: float = 0.0
    ipynb: str | None = None
    html: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportResult:
    report_dir: Path
    runs: list[NotebookRun]
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Every notebook ran *and* every headline rests on complete generations (``summary["ok"]``)."""
        return all(r.status == "ok" for r in self.runs) and bool(self.summary.get("ok", True))

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


SOCKET_DIR_PREFIX = "voorbeelden-kernel-"


def sweep_socket_dirs(root: Path | None = None) -> list[Path]:
    """Remove kernel-socket folders (``voorbeelden-kernel-<pid>-*``) of ours whose report process is gone.

    Only folders whose pid no longer runs and that belong to this user: a report running beside this one keeps
    its sockets. Returns what was removed."""
    import shutil
    import tempfile

    import psutil

    root = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{SOCKET_DIR_PREFIX}*-*"):
        pid = folder.name[len(SOCKET_DIR_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or psutil.pid_exists(int(pid)):
            continue
        try:
            if not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _execute(nb: Path, output: Path, parameters: dict[str, Any], timeout_s: int, cwd: Path) -> str | None:
    """Run one notebook; None on success, else the error as one readable line (the exception's own)."""
    import tempfile

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    # The kernel talks to us over IPC sockets in a private temporary folder: local by construction, so
    # ipykernel has no reason to warn that TCP runs unencrypted, and nothing lands in the notebooks folder.
    # The folder's name carries our pid: a report killed with SIGKILL cannot remove it, the next one does.
    sockets = tempfile.TemporaryDirectory(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-")
    try:
        pm.execute_notebook(
            str(nb),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(cwd),
            execution_timeout=timeout_s,
            progress_bar=False,
            log_output=False,
            start_timeout=120,
            # Kill the kernel rather than ask it to shut down: a graceful shutdown_request during Ctrl-C
            # races the interrupted cell's reply and the kernel prints a ZMQError traceback to our stderr.
            shutdown_kernel="immediate",
            config=Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets.name, "k")}}),
        )
    except PapermillExecutionError as exc:
        return f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel death, timeout, missing kernel: still a report, marked failed
        return f"{type(exc).__name__}: {exc}"
    finally:
        sockets.cleanup()
    return None


def redact_notebook(path: Path) -> None:
    """Redact every text in an executed notebook (outputs, tracebacks, metadata; images are left alone): a
    cell may print an upstream error that echoes the key, and the .ipynb and its HTML are report files."""
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))

    def walk(value: Any, key: str = "") -> Any:
        if key.startswith("image/"):
            return value
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    clean = walk(data)
    if clean != data:
        path.write_text(json.dumps(clean, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _to_html(ipynb: Path) -> Path | None:
    import nbformat
    from nbconvert import HTMLExporter

    if not ipynb.is_file():
        return None
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(ipynb, as_version=4))
    out = ipynb.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def _merge_jsonl(report_dir: Path) -> Path:
    target = report_dir / "results.jsonl"
    with target.open("w", encoding="utf-8") as sink:
        for part in sorted(report_dir.glob("0*.jsonl")):
            for line in part.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = redact_obj(json.loads(line))
                    row.setdefault("notebook", part.stem)
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target


def _run_notebook(
    nb_dir: Path, name: str, params: Mapping[str, Any], report_dir: Path, timeout_s: int
) -> tuple[NotebookRun, str | None]:
    """Execute one notebook into the report (redacted, then as HTML): its run and its execution error."""
    parameters = {**params, "out_dir": str(report_dir)}
    run = NotebookRun(name=name, parameters={k: v for k, v in parameters.items() if k != "out_dir"})
    output = report_dir / name
    started = time.monotonic()
    error = _execute(nb_dir / name, output, parameters, timeout_s, nb_dir)
    error = redact(error) if error is not None else None
    redact_notebook(output)  # before the HTML is made from it
    run.duration_s = time.monotonic() - started
    run.status = "ok" if error is None else "failed"
    run.error = error
    if output.is_file():
        run.ipynb = output.name
        try:
            html_path = _to_html(output)
        except Exception as exc:  # an HTML failure must not hide the notebook's own result
            run.error = (run.error + "; " if run.error else "") + f"HTML export failed: {exc}"
            run.status = "failed"
        else:
            run.html = html_path.name if html_path else None
    return run, error


def run_report(
    params_file: str | Path | None = None,
    out_root: str | Path | None = None,
    *,
    notebooks_dir: str | Path | None = None,
    progress: bool = True,
) -> ReportResult:
    """Execute the notebooks named in ``params_file`` and write the report; see the module docstring."""
    from tqdm.auto import tqdm

    from voorbeelden.report.environment import git_info
    from voorbeelden.report.run_env import report_environment

    t0 = time.monotonic()
    started_from = git_info()  # the code that runs is the code checked out now, not at the end of the run
    params_path = Path(params_file) if params_file is not None else DEFAULT_PARAMS
    config = load_params(params_path)
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    names = notebook_names(config, nb_dir, params_path)
    plan = plan_parameters(config, names, nb_dir, params_path)
    out_root = Path(out_root) if out_root is not None else DEFAULT_OUT
    check_out_root(out_root)
    report_dir = new_report_dir(out_root)
    sweep_socket_dirs()  # what killed reports left in the temporary folder
    timeout_s = int(config.get("execution_timeout") or DEFAULT_EXECUTION_TIMEOUT_S)
    os.environ.setdefault("MPLBACKEND", "agg")  # inherited by the kernels: headless plotting

    runs: list[NotebookRun] = []
    bar = tqdm(names, desc="report", unit="notebook", file=sys.stderr, disable=not progress)
    # The local model server (when the run asks for one) lives for the whole run: every notebook measures
    # the same warm server, and it is stopped whatever happens.
    with report_environment(config, plan) as local_backend:
        for name in bar:
            bar.set_postfix_str(name)
            run, error = _run_notebook(nb_dir, name, plan[name], report_dir, timeout_s)
            runs.append(run)
            if error is not None:
                tqdm.write(f"{name}: FAILED: {error}", file=sys.stderr)
    bar.close()

    _merge_jsonl(report_dir)
    summary = build_summary(
        report_dir,
        runs,
        config,
        params_path,
        time.monotonic() - t0,
        git=started_from,
        backend=local_backend,
    )
    write_json(report_dir / "summary.json", summary)
    (report_dir / "index.html").write_text(redact(render_index(summary, report_dir)), encoding="utf-8")
    finish(out_root, report_dir)  # complete now; only a complete report becomes reports/latest
    return ReportResult(report_dir, runs, summary)

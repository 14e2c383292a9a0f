"""``voorbeelden report``: execute the notebooks with papermill and assemble ``reports/<timestamp>/``.

Each notebook runs as its own papermill run, one after the other (papermill's ``cwd`` uses ``os.chdir``, so
never in threads), with ``kernel_name="python3"``, ``cwd`` = the notebooks folder and an execution timeout.
A notebook that fails is saved partially executed and marked failed with its error; the others still run,
and the report is written, but :attr:`ReportResult.exit_code` is 1.

Parameters come from a YAML file::

    execution_timeout: 300        # seconds per cell
    common: {backend: auto, time_scale: 0.02, seed: 0}   # given to every notebook that declares the name
    notebooks:                    # run in this order; per-notebook values override common ones
      01_sequential_vs_parallel.ipynb: {trials: 3}

``out_dir`` is always the report folder. The API key is never a parameter (papermill writes parameters into
the output notebook): notebooks read ``OPENAI_API_KEY`` from the environment. Two optional blocks,
``local_llm:`` (start the real local model server once for the run) and ``generation:`` (run-wide request
overrides such as temperature 0 and a seed), are described in :mod:`voorbeelden.report.run_env`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voorbeelden.begrippen import PROJECT_ROOT
from voorbeelden.experiments.speedup import NB01, NB02, describe_backend, read_json, write_json
from voorbeelden.redact import redact, redact_obj

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DEFAULT_PARAMS = NOTEBOOKS_DIR / "params" / "default.yaml"
DEFAULT_OUT = PROJECT_ROOT / "reports"
DEFAULT_EXECUTION_TIMEOUT_S = 600
_TOP_LEVEL_KEYS = {"execution_timeout", "common", "notebooks", "description", "local_llm", "generation"}


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


def load_params(path: str | Path | None) -> dict[str, Any]:
    """Read and check the YAML parameter file's shape (values are checked by each notebook)."""
    path = Path(path) if path is not None else DEFAULT_PARAMS
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with common/notebooks/execution_timeout")
    unknown = set(data) - _TOP_LEVEL_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; use {sorted(_TOP_LEVEL_KEYS)}")
    for key in ("common", "notebooks"):
        if not isinstance(data.get(key) or {}, dict):
            raise ValueError(f"{path}: {key!r} must be a mapping")
    for name, values in (data.get("notebooks") or {}).items():
        if not isinstance(values or {}, dict):
            raise ValueError(f"{path}: parameters of {name} must be a mapping")
    return data


INCOMPLETE_MARK = "INCOMPLETE"


def check_out_root(out_root: Path) -> None:
    """Refuse a report folder that cannot be used, before any notebook runs (a message, not a traceback)."""
    from voorbeelden.outpaths import check_folder_target

    check_folder_target(out_root, "--out")
    latest = out_root / "latest"
    if latest.exists() and not latest.is_symlink():
        # found now, not after minutes of notebooks when the finished report cannot be linked
        raise ValueError(
            f"--out {out_root}: {latest} is a real {'folder' if latest.is_dir() else 'file'}, not the link to "
            "the newest report that this command keeps there; rename or move it"
        )


def _mark_incomplete(report_dir: Path) -> None:
    """A report folder is incomplete until its index.html is written. The mark is written first and removed
    last, so a run that ends any other way (Ctrl-C, SIGTERM, SIGKILL, a crash) leaves it behind."""
    started = dt.datetime.now().isoformat(timespec="seconds")
    (report_dir / INCOMPLETE_MARK).write_text(
        f"This report is incomplete: the run started {started} (pid {os.getpid()}) ended before writing "
        "index.html (interrupted, killed or crashed).\nNotebooks, figures and summary.json here may be missing "
        "or partial; reports/latest was not moved here.\n",
        encoding="utf-8",
    )


def plan_parameters(
    config: Mapping[str, Any], names: Sequence[str], nb_dir: Path, params_path: Path
) -> dict[str, dict[str, Any]]:
    """The parameters each notebook will get, checked before any kernel starts.

    ``common`` values go to every notebook that declares the name (papermill's own inspection of the
    ``parameters`` cell says which); per-notebook values must be declared by that notebook. Every notebook's
    full set (its defaults + these) is checked against its model in :mod:`voorbeelden.experiments.params`, so a typo,
    a wrong type or a count the data set cannot meet stops the run in about a second, with the file, the
    notebook and the key named. Raises one ValueError that lists every problem.
    """
    from voorbeelden.experiments.params import declared_defaults, model_for, problems_of

    common = dict(config.get("common") or {})
    plan: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    used_common: set[str] = set()
    for name in names:
        defaults = declared_defaults(nb_dir / name)
        own = dict((config.get("notebooks") or {}).get(name) or {})
        for key in own:
            if key not in defaults:
                problems.append(
                    f"{name}: {key}: unknown parameter; the notebook declares {', '.join(sorted(defaults))}"
                )
        parameters = {k: v for k, v in common.items() if k in defaults}
        used_common |= set(parameters)
        parameters.update((k, v) for k, v in own.items() if k in defaults)
        model = model_for(name)
        if model is not None:
            problems += [
                f"{name}: {p}" for p in problems_of(model, {**defaults, **parameters, "out_dir": ""})
            ]
        plan[name] = parameters
    for key in sorted(set(common) - used_common):
        problems.append(f"common: {key}: no notebook in the run declares this parameter")
    from voorbeelden.report.run_env import check_blocks

    problems += check_blocks(config)
    if problems:
        raise ValueError(
            f"{params_path}: invalid parameters; nothing was run:\n  - " + "\n  - ".join(problems)
        )
    return plan


def _timestamp_dir(out_root: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = out_root / stamp
    n = 1
    while candidate.exists():
        n += 1
        candidate = out_root / f"{stamp}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def _point_latest(out_root: Path, report_dir: Path) -> None:
    link = out_root / "latest"
    tmp = out_root / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(report_dir.name, target_is_directory=True)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink()
        raise


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


def _backend_info(
    s01: Mapping[str, Any] | None, s02: Mapping[str, Any] | None, common: Mapping[str, Any]
) -> dict:
    from voorbeelden.backend import resolve_backend

    for s in (s01, s02):
        if s and s.get("backend"):
            info = dict(s["backend"])
            if info.get("kind") == "simulated" and s is s01:
                info["profile"] = list(s01["params"]["profiles"])
            return info
    spec = resolve_backend(str(common.get("backend", "auto")))
    return {
        "kind": spec.kind,
        "host": spec.host,
        "chosen_by": spec.source,
        "profile": common.get("profiles") or common.get("profile"),
        "time_scale": common.get("time_scale") if spec.kind == "simulated" else None,
        "seed": common.get("seed"),
    }


def _verdict(
    runs: Sequence[NotebookRun], side_files: Mapping[str, Mapping[str, Any] | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per headline (01 speedup, 02 fault control, 05 comparison) whether it rests on complete generations,
    and every reason the report is not ok: a failed notebook (its error) or an incomplete headline."""
    headlines = [
        {"notebook": name, "ok": bool(s.get("ok", True)), "reason": s.get("reason")}
        for name, s in side_files.items()
        if s is not None
    ]
    reasons = [f"{r.name} failed: {r.error}" for r in runs if r.status != "ok"]
    failed = {r.name.removesuffix(".ipynb") for r in runs if r.status != "ok"}
    reasons += [
        f"{h['notebook']}: {h['reason']}" for h in headlines if not h["ok"] and h["notebook"] not in failed
    ]
    return headlines, reasons


_FAULT_KEYS = (
    "fault_kind",
    "fault_rate",
    "n",
    "n_complete",
    "parts_delivered",
    "complete",
    "predicted",
    "retries_per_gen",
    "wall_median_s",
    "wall_p95_s",
)
_STRATEGY_KEYS = ("profile", "strategy", "n", "n_complete", "wall_p50_s", "wall_p95_s", "cost_usd_per_gen")
_NOTEBOOK_KEYS = ("name", "status", "error", "duration_s", "html", "ipynb")


def _pick_one(row: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: row.get(k) for k in keys}


def _pick(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The summary's copy of a notebook's table: these columns only (None where one is missing)."""
    return [_pick_one(row, keys) for row in rows]


def _speedup_by_profile(s01: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Notebook 01's paired speedup per profile, in the summary's names."""
    return {
        row["profile"]: {
            "n_pairs": row["n_pairs"],
            "n_pairs_total": row.get("n_pairs_total", row["n_pairs"]),
            "median": row["speedup_median"],
            "ci_low": row["ci_low"],
            "ci_high": row["ci_high"],
            "trial_bound": row["trial_bound_median"],
            "expected_bound": row["expected_bound"],
            "efficiency": row["efficiency"],
            "wall_sequential_median_s": row["wall_base_median_s"],
            "wall_parallel_median_s": row["wall_other_median_s"],
        }
        for row in (s01 or {}).get("speedup", [])
    }


def build_summary(
    report_dir: Path,
    runs: Sequence[NotebookRun],
    config: Mapping[str, Any],
    params_file: Path,
    duration_s: float,
    git: dict[str, Any] | None = None,
) -> dict[str, Any]:
    s01 = read_json(report_dir / f"{NB01}.json")
    s02 = read_json(report_dir / f"{NB02}.json")
    s05 = read_json(report_dir / "05_strategies.json")
    env = read_json(report_dir / "03_environment.json")
    if env is None:
        from voorbeelden.report.environment import collect_environment

        env = collect_environment(git=git)
    elif git is not None:  # the commit the run started from, not the one checked out when notebook 03 ran
        env["git"] = git
    backend = _backend_info(s01, s02, config.get("common") or {})
    env["backend"] = backend
    overhead: dict[str, dict[str, float]] = {}
    for row in (s01 or {}).get("overhead", []):
        overhead.setdefault(row["profile"], {})[row["strategy"]] = row["median_ms"]
    headlines, reasons = _verdict(runs, {NB01: s01, NB02: s02, "05_strategies": s05})
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "report_dir": report_dir.name,
        "ok": not reasons,
        "reason": "; ".join(reasons) if reasons else None,
        "reasons": reasons,
        "headlines": headlines,
        "duration_s": duration_s,
        "backend": backend,
        "backend_line": describe_backend(backend),
        "speedup": _speedup_by_profile(s01),
        "overhead_median_ms": overhead,
        "faults": _pick((s02 or {}).get("faults", []), _FAULT_KEYS),
        "faults_skipped": (s02 or {}).get("skipped"),
        "strategies": _pick((s05 or {}).get("table", []), _STRATEGY_KEYS),
        "notebooks": [_pick_one(vars(r), _NOTEBOOK_KEYS) for r in runs],
        "params_file": params_file.name,
        "params": {r.name: r.parameters for r in runs},
        "environment": env,
    }


def _notebook_names(config: Mapping[str, Any], nb_dir: Path, params_path: Path) -> list[str]:
    """The notebooks the parameters name (default: every numbered one), each checked to exist."""
    if not nb_dir.is_dir():
        raise FileNotFoundError(
            f"notebooks folder {nb_dir} not found (run from a source checkout or pass it)"
        )
    names = list(config.get("notebooks") or {}) or sorted(p.name for p in nb_dir.glob("[0-9]*.ipynb"))
    missing = [n for n in names if not (nb_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"notebook(s) {missing} named in {params_path} are not in {nb_dir}")
    return names


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

    t0 = time.monotonic()
    started_from = git_info()  # the code that runs is the code checked out now, not at the end of the run
    params_path = Path(params_file) if params_file is not None else DEFAULT_PARAMS
    config = load_params(params_path)
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    names = _notebook_names(config, nb_dir, params_path)
    plan = plan_parameters(config, names, nb_dir, params_path)
    out_root = Path(out_root) if out_root is not None else DEFAULT_OUT
    check_out_root(out_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a permission check can pass where the file system still refuses (/sys, quotas)
        raise ValueError(f"--out {out_root}: cannot create the folder ({exc.strerror or exc})") from exc
    report_dir = _timestamp_dir(out_root.resolve())
    _mark_incomplete(report_dir)
    sweep_socket_dirs()  # what killed reports left in the temporary folder
    timeout_s = int(config.get("execution_timeout") or DEFAULT_EXECUTION_TIMEOUT_S)
    os.environ.setdefault("MPLBACKEND", "agg")  # inherited by the kernels: headless plotting

    from voorbeelden.report.run_env import report_environment

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
    summary = build_summary(report_dir, runs, config, params_path, time.monotonic() - t0, git=started_from)
    if local_backend is not None:
        summary["backend"] = summary["environment"]["backend"] = local_backend
        summary["backend_line"] = describe_backend(local_backend)
    from voorbeelden.experiments.calibration import report_sections

    summary.update(report_sections(report_dir, summary))
    write_json(report_dir / "summary.json", summary)
    (report_dir / "index.html").write_text(redact(render_index(summary, report_dir)), encoding="utf-8")
    (report_dir / INCOMPLETE_MARK).unlink()  # complete now; only a complete report becomes reports/latest
    _point_latest(out_root.resolve(), report_dir)
    return ReportResult(report_dir, runs, summary)


# --- index.html --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2rem auto;padding:0 1rem;
color:#1d2b36;line-height:1.45}
h1{margin-bottom:.2rem} .sub{color:#555;margin-top:0}
.banner{padding:.9rem 1.2rem;border-radius:8px;font-size:1.15rem;margin:1rem 0}
.sim{background:#e9f5f3;border:2px solid #2a9d8f} .real{background:#fff4e0;border:2px solid #f77f00}
.bad{background:#fde8e8;border:2px solid #d62828} .good{background:#eef6ee;border:2px solid #4a934a}
table{border-collapse:collapse;margin:.6rem 0 1.4rem} th,td{border:1px solid #ccd;padding:.3rem .6rem;text-align:right}
th{background:#f1f3f5} td.l,th.l{text-align:left} .failed{color:#d62828;font-weight:bold} .ok{color:#2a7d2a}
img{max-width:100%;border:1px solid #dde;margin:.4rem 0 1.2rem} code{background:#f1f3f5;padding:0 .25rem}
pre{white-space:pre-wrap;background:#fbeaea;padding:.5rem} .figs{background:#f7f7fb;border:1px solid #ccd;font-size:1rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def _n_of(n: Any, total: Any) -> str:
    if n is None:
        return "–"
    return f"{int(n)} of {int(total)}" if total is not None else str(int(n))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and value == value


def _first_page_figures(summary: Mapping[str, Any]) -> str:
    """The headline figures as one list on the first screen, each with its completeness (n of N), so no
    number is read without knowing how many complete generations it stands on."""
    items: list[str] = []
    unit = "model s" if (summary.get("backend") or {}).get("kind") == "simulated" else "s"
    for profile, s in summary.get("speedup", {}).items():
        pairs = _n_of(s["n_pairs"], s.get("n_pairs_total"))
        if _finite(s.get("median")) and s["n_pairs"]:
            items.append(
                f"{_e(profile)}: parallel speedup <b>{_num(s['median'])}×</b> (95% CI {_num(s['ci_low'])}–"
                f"{_num(s['ci_high'])}) over {pairs} complete pairs"
            )
        else:
            items.append(f"{_e(profile)}: <b>no speedup</b>: {pairs} sequential/parallel pairs complete")
    for row in summary.get("strategies", []):
        done = _n_of(row.get("n_complete"), row.get("n"))
        if _finite(row.get("wall_p50_s")) and row.get("n_complete"):
            items.append(
                f"{_e(row['profile'])} / {_e(row['strategy'])}: wall p50 {_num(row['wall_p50_s'])} {unit}, "
                f"p95 {_num(row['wall_p95_s'])} {unit} over {done} complete generations"
            )
        else:
            items.append(
                f"{_e(row['profile'])} / {_e(row['strategy'])}: no figure: {done} generations complete"
            )
    if not items:
        return ""
    return (
        "<div class='banner figs'><b>Headline figures, each with its completeness</b><ul>"
        + "".join(f"<li>{i}</li>" for i in items)
        + "</ul></div>"
    )


def _verdict_html(summary: Mapping[str, Any], failed: list[Mapping[str, Any]]) -> list[str]:
    """The OK / NOT OK banner, with every reason."""
    out: list[str] = []
    reasons = summary.get("reasons") or []
    if failed or reasons:
        out.append(
            "<div class='banner bad'><b>This report is NOT OK"
            + (f": {len(failed)} of {len(summary['notebooks'])} notebooks FAILED" if failed else "")
            + "</b> (exit code 1). Why:<ul>"
        )
        out += [f"<li><pre>{_e(r)}</pre></li>" for r in reasons]
        out.append("</ul></div>")
    else:
        out.append(
            f"<div class='banner good'>All {len(summary['notebooks'])} notebooks ran, and every headline figure "
            "rests on complete generations (all six parts delivered).</div>"
        )
    return out


def _speedup_html(summary: Mapping[str, Any]) -> list[str]:
    """Notebook 01's paired speedups, its notes and the calibration section."""
    out: list[str] = []
    if summary["speedup"]:
        out.append(
            "<h2>Parallel speedup (sequential wall / parallel wall)</h2><p>Over complete pairs only (both "
            "generations delivered all six parts).</p><table><tr><th class='l'>profile</th>"
            "<th>complete pairs</th><th>median speedup</th><th>95% CI</th><th>per-trial bound Σ/max</th>"
            "<th>expected bound E[Σ]/E[max]</th><th>efficiency</th><th>overhead seq / par (ms)</th></tr>"
        )
        for profile, s in summary["speedup"].items():
            oh = summary["overhead_median_ms"].get(profile, {})
            out.append(
                f"<tr><td class='l'>{_e(profile)}</td><td>{_n_of(s['n_pairs'], s.get('n_pairs_total'))}</td>"
                f"<td><b>{_num(s['median'])}×</b></td>"
                f"<td>{_num(s['ci_low'])}–{_num(s['ci_high'])}</td><td>{_num(s['trial_bound'])}×</td>"
                f"<td>{_num(s['expected_bound'])}×</td><td>{_num(s['efficiency'], '{:.0%}')}</td>"
                f"<td>{_num(oh.get('sequential'), '{:.1f}')} / {_num(oh.get('parallel'), '{:.1f}')}</td></tr>"
            )
        out.append("</table>")
    out += [f"<p class='banner real'>{_e(note)}</p>" for note in summary.get("speedup_notes") or []]
    if summary.get("calibration"):
        from voorbeelden.experiments.calibration import calibration_html

        out.append(calibration_html(summary["calibration"]))
    return out


def _notebooks_html(summary: Mapping[str, Any]) -> list[str]:
    """One row per notebook: status, seconds, links, error."""
    out: list[str] = []
    out.append(
        "<h2>Notebooks</h2><table><tr><th class='l'>notebook</th><th class='l'>status</th><th>seconds</th>"
        "<th class='l'>report (HTML)</th><th class='l'>executed notebook</th><th class='l'>error</th></tr>"
    )
    for n in summary["notebooks"]:
        link_html = f"<a href='{_e(n['html'])}'>{_e(n['html'])}</a>" if n["html"] else "–"
        link_nb = f"<a href='{_e(n['ipynb'])}'>{_e(n['ipynb'])}</a>" if n["ipynb"] else "–"
        out.append(
            f"<tr><td class='l'>{_e(n['name'])}</td><td class='l {n['status']}'>{_e(n['status'])}</td>"
            f"<td>{n['duration_s']:.1f}</td><td class='l'>{link_html}</td><td class='l'>{link_nb}</td>"
            f"<td class='l'>{_e(n['error'] or '')}</td></tr>"
        )
    out.append("</table>")
    return out


def _faults_html(summary: Mapping[str, Any]) -> list[str]:
    """Notebook 02's fault table (or why it was skipped)."""
    if not summary["faults"]:
        skipped = summary.get("faults_skipped")
        return [f"<h2>Fault injection</h2><p>skipped: {_e(skipped)}</p>"] if skipped else []
    return [
        "<h2>Fault injection</h2><p>Wall times over <b>all</b> generations, incomplete ones included.</p>"
        "<table><tr><th class='l'>fault kind</th><th>rate</th><th>generations</th>"
        "<th>parts delivered</th><th>predicted 1−p<sup>r+1</sup></th><th>complete</th>"
        "<th>retries / generation</th><th>wall median (s, all)</th><th>wall p95 (s, all)</th></tr>",
        *map(_fault_row, summary["faults"]),
        "</table>",
    ]


def _fault_row(f: Mapping[str, Any]) -> str:
    complete = _n_of(f.get("n_complete"), f["n"]) if f.get("n_complete") is not None else "–"
    return (
        f"<tr><td class='l'>{_e(f['fault_kind'])}</td><td>{_num(f['fault_rate'])}</td><td>{f['n']}</td>"
        f"<td>{_num(f['parts_delivered'], '{:.1%}')}</td><td>{_num(f['predicted'], '{:.1%}')}</td>"
        f"<td>{complete} ({_num(f['complete'], '{:.0%}')})</td><td>{_num(f['retries_per_gen'])}</td>"
        f"<td>{_num(f['wall_median_s'], '{:.3f}')}</td><td>{_num(f['wall_p95_s'], '{:.3f}')}</td></tr>"
    )


def _plots_html(report_dir: Path) -> list[str]:
    """Every PNG of the report, in name order."""
    out: list[str] = []
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    if pngs:
        out.append("<h2>Plots</h2>")
        for png in pngs:
            out.append(f"<h3>{_e(png)}</h3><a href='{_e(png)}'><img src='{_e(png)}' alt='{_e(png)}'></a>")
    return out


def _environment_html(summary: Mapping[str, Any]) -> list[str]:
    """Backend, commit, Python, platform, packages; the data files."""
    out: list[str] = []
    env = summary["environment"]
    git = env.get("git") or {}
    out.append("<h2>Environment</h2><table>")
    rows = [
        ("backend", summary["backend_line"]),
        ("git commit", f"{git.get('commit')}{' (uncommitted changes)' if git.get('dirty') else ''}"),
        ("python", env.get("python")),
        ("platform", env.get("platform")),
        ("cpus", env.get("cpus")),
        *((f"package {k}", v) for k, v in (env.get("packages") or {}).items()),
    ]
    out += [f"<tr><th class='l'>{_e(k)}</th><td class='l'>{_e(v)}</td></tr>" for k, v in rows]
    out.append(
        "</table><h2>Data</h2><ul><li><a href='results.jsonl'>results.jsonl</a> (one line per generation, "
        "with its call records)</li><li><a href='summary.json'>summary.json</a> (headline figures, "
        "parameters, environment)</li></ul>"
    )
    return out


def _params_html(summary: Mapping[str, Any]) -> list[str]:
    """The parameters each notebook ran with."""
    out: list[str] = []
    out.append("<h2>Parameters</h2>")
    for name, p in summary["params"].items():
        out.append(f"<h3>{_e(name)}</h3><pre style='background:#f1f3f5'>{_e(json.dumps(p, indent=1))}</pre>")
    return out


def render_index(summary: Mapping[str, Any], report_dir: Path) -> str:
    """The report's first page: what ran against what, whether it is OK and why, then every section."""
    backend = summary["backend"]
    simulated = backend.get("kind") == "simulated"
    failed = [n for n in summary["notebooks"] if n["status"] != "ok"]
    out: list[str] = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>voorbeelden report {_e(summary['report_dir'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>voorbeelden report {_e(summary['report_dir'])}</h1>",
        f"<p class='sub'>created {_e(summary['created'])} · parameters <code>{_e(summary['params_file'])}</code> · "
        f"{summary['duration_s']:.0f} s</p>",
        f"<div class='banner {'sim' if simulated else 'real'}'><b>{_e(summary['backend_line'])}</b><br>",
        (
            "All latencies come from the embedded simulator, scaled by time_scale: figures describe the simulated "
            "profile, not a live model."
            if simulated
            else "Measured against a real model served on this machine (no API key involved)."
            if backend.get("kind") == "local"
            else "Measured against a live endpoint (host shown; the API key is read from the environment and "
            "never stored)."
        ),
        "</div>",
    ]
    out += _verdict_html(summary, failed)
    out.append(_first_page_figures(summary))
    out += _speedup_html(summary)
    out += _notebooks_html(summary)
    out += _faults_html(summary)
    out += _plots_html(report_dir)
    out += _environment_html(summary)
    out += _params_html(summary)
    out.append("</body></html>")
    return "\n".join(out)

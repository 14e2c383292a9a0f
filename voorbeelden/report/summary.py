"""``summary.json``: the report's figures, its verdict and where it ran, assembled from the side files.

Every notebook's contribution goes through :data:`voorbeelden.report.sections.SECTIONS`; this module adds what
belongs to the run as a whole: the notebooks' statuses, the backend, the environment and the verdict. The
report is ``ok`` only when every notebook ran *and* every headline rests on complete generations; ``reasons``
lists every reason it is not, failed notebooks first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voorbeelden.experiments.speedup import NB01, NB02, describe_backend, read_json
from voorbeelden.report.sections import SECTIONS, Section
from voorbeelden.report.verdict import status_line

if TYPE_CHECKING:
    from voorbeelden.report.runner import NotebookRun

_NOTEBOOK_KEYS = ("name", "status", "error", "duration_s", "html", "ipynb")


def backend_info(
    s01: Mapping[str, Any] | None, s02: Mapping[str, Any] | None, common: Mapping[str, Any]
) -> dict[str, Any]:
    """The backend the notebooks measured: as notebook 01 (or 02) described it, else as the parameters say."""
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


def verdict(
    runs: Sequence[NotebookRun],
    side_files: Mapping[str, Mapping[str, Any] | None],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per headline side file (notebook stem -> its JSON) whether it rests on complete generations, and every
    reason the report is not ok: a failed notebook (its error) first, then each incomplete headline (unless
    its notebook failed already, which says the same)."""
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


def build_summary(
    report_dir: Path,
    runs: Sequence[NotebookRun],
    config: Mapping[str, Any],
    params_file: Path,
    duration_s: float,
    git: dict[str, Any] | None = None,
    *,
    backend: dict[str, Any] | None = None,
    sections: Sequence[Section] = SECTIONS,
) -> dict[str, Any]:
    """The summary of a finished run. ``git``: the commit the run started from (read at its start);
    ``backend``: the backend the run started itself (the local model server), which beats the side files."""
    side = {s.notebook: read_json(report_dir / s.side_file) for s in sections}
    env = read_json(report_dir / "03_environment.json")
    if env is None:
        from voorbeelden.report.environment import collect_environment

        env = collect_environment(git=git)
    elif git is not None:  # the commit the run started from, not the one checked out when notebook 03 ran
        env["git"] = git
    if backend is None:  # as notebook 01 or 02 described it (read here too when a test passes other sections)
        s01, s02 = (side[n] if n in side else read_json(report_dir / f"{n}.json") for n in (NB01, NB02))
        backend = backend_info(s01, s02, config.get("common") or {})
    env["backend"] = backend
    headlines, reasons = verdict(runs, {s.notebook: side[s.notebook] for s in sections if s.headline})
    notebooks = [{k: vars(r).get(k) for k in _NOTEBOOK_KEYS} for r in runs]
    summary: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "report_dir": report_dir.name,
        "ok": not reasons,
        "reason": "; ".join(reasons) if reasons else None,
        "reasons": reasons,
        "headlines": headlines,
        "duration_s": duration_s,
        "backend": backend,
        "backend_line": describe_backend(backend),
        "notebooks": notebooks,
        "params_file": params_file.name,
        "params": {r.name: r.parameters for r in runs},
        "environment": env,
    }
    for section in sections:
        summary.update(section.summarise(side[section.notebook], summary))
    lines = [status_line(notebooks, reasons)]
    lines += [line for s in sections if s.verdict and (line := s.verdict(summary))]
    summary["verdict"] = lines
    return summary

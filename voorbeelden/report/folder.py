"""The report folder: ``reports/<timestamp>/``, its INCOMPLETE mark, and the ``latest`` link.

A report folder is incomplete until its ``index.html`` is written: the mark is written first and removed
last, so a run that ends any other way (Ctrl-C, SIGTERM, SIGKILL, a crash) leaves it behind, and only a
complete report becomes ``reports/latest``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from voorbeelden.begrippen import PROJECT_ROOT

DEFAULT_OUT = PROJECT_ROOT / "reports"
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


def new_report_dir(out_root: Path) -> Path:
    """A fresh ``<out_root>/<timestamp>[-n]/`` (created), already marked INCOMPLETE."""
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a permission check can pass where the file system still refuses (/sys, quotas)
        raise ValueError(f"--out {out_root}: cannot create the folder ({exc.strerror or exc})") from exc
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = out_root.resolve() / stamp
    n = 1
    while candidate.exists():
        n += 1
        candidate = out_root.resolve() / f"{stamp}-{n}"
    candidate.mkdir(parents=True)
    _mark_incomplete(candidate)
    return candidate


def _mark_incomplete(report_dir: Path) -> None:
    started = dt.datetime.now().isoformat(timespec="seconds")
    (report_dir / INCOMPLETE_MARK).write_text(
        f"This report is incomplete: the run started {started} (pid {os.getpid()}) ended before writing "
        "index.html (interrupted, killed or crashed).\nNotebooks, figures and summary.json here may be missing "
        "or partial; reports/latest was not moved here.\n",
        encoding="utf-8",
    )


def finish(out_root: Path, report_dir: Path) -> None:
    """The report is complete: remove the mark, then point ``latest`` at it (atomically, by rename)."""
    (report_dir / INCOMPLETE_MARK).unlink()
    out_root = out_root.resolve()
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

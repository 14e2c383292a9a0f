"""Where a command may write: its output files and folders, checked before any work.

Every command that writes (``batch --out/--records``, ``calibrate --out``, ``report --out``,
``bench ratelimit --out``) checks its targets here, so a bad target is one message naming the option, exit 2,
before a simulator starts or a file changes, instead of a traceback after the work. Two rules beyond "can I
write there": an output is never the same file as an input or as another output of the same run (records
appended into the input would be read back as input), and permission bits are not trusted alone: the folder is
tried with a nameless temporary file, since root passes every permission check on ``/sys`` and a read-only
mount or a quota refuses what the bits allow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["OutputPathError", "check_file_target", "check_folder_target", "same_target"]

PathLike = str | os.PathLike[str]


class OutputPathError(ValueError):
    """An output path that cannot be used; the message names the option and says what to do."""


def same_target(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: the same inode when both exist (links, ``./x`` vs ``x``), else the
    same absolute path (two outputs not created yet)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_folder_target(path: PathLike, option: str) -> None:
    """Refuse a folder that cannot be created or written (its nearest existing ancestor is what decides)."""
    p = Path(path)
    existing = next((a for a in (p, *p.parents) if a.exists()), Path("."))
    if not existing.is_dir():
        raise OutputPathError(f"{option} {p}: {existing} is a file, not a folder")
    _writable_folder(existing, f"{option} {p}: folder {existing}")


def check_file_target(
    path: PathLike,
    option: str,
    *,
    not_same_as: Mapping[str, PathLike | None] = {},
    example: str = "results.jsonl",
) -> None:
    """Refuse a file target that is a folder, cannot be written or created, or is one of ``not_same_as``
    (``{"the input": ..., "--out": ...}``: what the message calls each of them). ``example`` is the file
    name the message suggests inside a folder given by mistake."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{option} {p} is a directory; give a file name such as {p / example}")
    for name, other in not_same_as.items():
        if other is not None and same_target(p, other):
            raise OutputPathError(f"{option} {p} is the same file as {name}; choose another {option}")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise OutputPathError(f"{option} {p} is not writable (permission denied)")
        return
    parent = p.parent if str(p.parent) else Path(".")
    existing = next((a for a in (parent, *parent.parents) if a.exists()), Path("."))
    if not existing.is_dir():
        raise OutputPathError(f"{option} {p}: {existing} is a file, not a folder")
    _writable_folder(existing, f"{option} {p}: cannot create it, folder {existing}")


def _writable_folder(folder: Path, what: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} is not writable")
    try:
        with tempfile.TemporaryFile(dir=folder):  # nameless where the file system allows: leaves nothing
            pass
    except OSError as exc:
        raise OutputPathError(f"{what} refuses new files ({exc.strerror or exc})") from exc

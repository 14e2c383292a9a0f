"""What every report states about where it ran: package versions, git commit, machine, backend.

Nothing here reads or returns secrets: the backend is described by :meth:`Backend.describe` (host only) and
environment variables are never dumped.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from voorbeelden.begrippen import PROJECT_ROOT

PACKAGES = (
    "voorbeelden-lab",
    "openai",
    "httpx2",
    "aiohttp",
    "numpy",
    "pandas",
    "matplotlib",
    "papermill",
    "nbconvert",
    "ipykernel",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info() -> dict[str, Any]:
    """The commit and whether tracked files differ from it (read-only git commands)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def collect_environment(
    backend: dict[str, Any] | None = None, git: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Where a result was measured; ``git`` when the caller read it already (a report reads it at its start)."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": package_versions(),
        "git": git if git is not None else git_info(),
        "backend": backend,
    }

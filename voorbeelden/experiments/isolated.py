"""Run one benchmark job in a fresh Python process, so that its peak RSS is its own.

    result = run_job("contender", spec, isolate=True)   # {"wall_s": ..., "peak_rss_mb": ..., ...}

``ru_maxrss`` only ever grows, so contenders run one after another in one process would each report the
largest so far. A job is a coroutine function taking a JSON-able spec and returning a JSON-able dict; the
child (``python -m voorbeelden.experiments.isolated``) reads ``{"job", "spec"}`` from stdin and prints the result
as its last stdout line. It exits by itself when its parent disappears, so a killed benchmark leaves no
worker behind. ``isolate=False`` runs the job in this process (notebooks: no process start-up per job; the
peak RSS is then not reported, since it would not be the job's).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from voorbeelden.syncrun import run_sync

__all__ = ["JOBS", "run_job"]

JOBS: dict[str, str] = {
    "contender": "voorbeelden.experiments.contenders:run_contender_job",
    "memory": "voorbeelden.experiments.memory:run_memory_job",
}


def _job(name: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    if name not in JOBS:
        raise ValueError(f"unknown job {name!r}; use one of {', '.join(JOBS)}")
    module, func = JOBS[name].split(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def run_job(
    name: str, spec: dict[str, Any], *, isolate: bool = True, timeout_s: float = 3600.0
) -> dict[str, Any]:
    """Run job ``name`` with ``spec``; in a child process when ``isolate`` (adds ``peak_rss_mb``)."""
    if not isolate:
        result = run_sync(_job(name)(spec))
        result["peak_rss_mb"] = None
        return result
    proc = subprocess.Popen(
        [sys.executable, "-m", "voorbeelden.experiments.isolated"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        out, _ = proc.communicate(json.dumps({"job": name, "spec": spec}) + "\n", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"benchmark job {name} did not finish within {timeout_s:g} s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in out.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark job {name} failed (exit {proc.returncode}); see its stderr above")
    result = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"benchmark job {name} failed: {result['error']}")
    return result  # type: ignore[no-any-return]


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def main() -> int:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    request = json.loads(sys.stdin.readline())
    try:
        result = run_sync(_job(request["job"])(request["spec"]))
        from voorbeelden.batch.runner import peak_rss_mb

        result["peak_rss_mb"] = peak_rss_mb()
        code = 0
    except Exception as err:
        result, code = {"error": f"{type(err).__name__}: {err}"}, 1
    print(json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

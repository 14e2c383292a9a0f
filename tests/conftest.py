"""Fixtures and helpers the test modules share (instead of each keeping a copy).

Plain helpers (``env_without_openai``, ``run_voorbeelden``) are importable (``from conftest import ...``) for
module-level helper functions; the same things are fixtures for tests. Simulator fixtures are module-scoped:
each module gets its own server, started once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from voorbeelden.sim import SimConfig, SimHandle, running_simulator

ROOT = Path(__file__).resolve().parents[1]


def env_without_openai(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``OPENAI_*`` variable (so a test never reaches a real endpoint
    by accident, and never sees a developer's key), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(extra or {})
    return env


def run_voorbeelden(
    args: list[str] | tuple[str, ...],
    *,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """``python -m voorbeelden ARGS`` as a child process (text output captured); ``env`` defaults to
    :func:`env_without_openai`."""
    return subprocess.run(
        [sys.executable, "-m", "voorbeelden", *args],
        cwd=cwd,
        env=dict(env) if env is not None else env_without_openai(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def run_report(
    out: Path, params: Path, *, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``voorbeelden report --params PARAMS --out OUT --no-progress`` as a child process, plotting with Agg;
    ``env`` is added to :func:`env_without_openai` (an endpoint, a key, a test hook)."""
    args = ["report", "--params", str(params), "--out", str(out), "--no-progress"]
    full = env_without_openai({"MPLBACKEND": "agg", **(env or {})})
    return run_voorbeelden(args, env=full, timeout=timeout)


# The default per-test timeout (pyproject: 120 s) is for everything else; a test marked ``slow`` runs a whole
# report or a notebook suite (the CI report alone is 8 notebooks), so it gets its own, unless it sets one.
SLOW_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_voorbeelden


@pytest.fixture(scope="module")
def uniform_sim() -> Iterator[SimHandle]:
    """uniform-2s at time_scale 0.01: a "2 s" call takes 20 ms."""
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as handle:
        yield handle


@pytest.fixture
def fresh(uniform_sim: SimHandle) -> SimHandle:
    """The module's uniform simulator, reset: default profile and scale, no schedule, no faults, zero counters."""
    uniform_sim.configure(profile="uniform-2s", time_scale=0.01, schedule=[], fault_rate=0.0)
    uniform_sim.reset_counters()
    return uniform_sim


@pytest.fixture(scope="module")
def fast_sim() -> Iterator[SimHandle]:
    """uniform-2s at time_scale 0.001 (a "2 s" call takes 2 ms), for tests of the server, not of timing."""
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.001)) as handle:
        yield handle

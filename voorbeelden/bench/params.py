"""Validation of notebook parameters, run in the cell right after the ``parameters`` cell.

papermill never checks parameter types (``-p`` even guesses them), so a bad value would otherwise surface as a
stack trace twenty cells later. :func:`validate_params` checks every value it is given, collects *all*
problems and raises one :class:`ValueError` that says what to fix; on success it returns a normalised dict
(lists as lists, ``out_dir`` absolute and created, ``backend`` resolved).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voorbeelden.bench.backend import probe, resolve_backend
from voorbeelden.bench.data import PROJECT_ROOT

STRATEGY_NAMES = ("sequential", "parallel", "bounded", "combined", "hedged", "streaming")
OUT_DIR_ENV = "VOORBEELDEN_OUT_DIR"


def _profiles() -> tuple[str, ...]:
    from voorbeelden.sim import PROFILES

    return tuple(PROFILES)


def _fault_kinds() -> tuple[str, ...]:
    from voorbeelden.sim.config import FAULT_KINDS

    return tuple(FAULT_KINDS)


def _int(name: str, lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(f"{name} must be an integer, got {value!r}")
        v = int(value)
        if v < lo or (hi is not None and v > hi):
            bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise ValueError(f"{name} must be {bound}, got {v}")
        return v

    return check


def _float(name: str, lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        v = float(value)
        if v != v or v > hi or v < lo or (lo_open and v == lo):
            raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo} and <= {hi}, got {v}")
        return v

    return check


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"expected a list (or a comma-separated string), got {value!r}")


def _choices(
    name: str, allowed: Callable[[], tuple[str, ...]], *, single: bool = False
) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        options = allowed()
        values = [value] if single else _list(value)
        if not values:
            raise ValueError(f"{name} is empty; use one or more of {', '.join(options)}")
        for v in values:
            if v not in options:
                raise ValueError(
                    f"{name}: {v!r} is unknown; use {'one' if single else 'any'} of {', '.join(options)}"
                )
        return values[0] if single else values

    return check


def _rates(value: Any) -> list[float]:
    values = _list(value)
    if not values:
        raise ValueError("fault_rates is empty; give rates between 0 and 1, e.g. [0.0, 0.2]")
    check = _float("each fault rate", 0.0, 1.0)
    return [check(float(v) if isinstance(v, str) else v) for v in values]


def _bool(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
        return value

    return check


def _str(name: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, got {value!r}")
        return value

    return check


VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "backend": _str("backend"),
    "profile": _choices("profile", _profiles, single=True),
    "profiles": _choices("profiles", _profiles),
    "strategies": _choices("strategies", lambda: STRATEGY_NAMES),
    "strategy": _choices("strategy", lambda: STRATEGY_NAMES, single=True),
    "time_scale": _float("time_scale", 0.0, 10.0, lo_open=True),
    "seed": _int("seed", 0),
    "trials": _int("trials", 1, 10_000),
    "warmup": _int("warmup", 0, 100),
    "n_begrippen": _int("n_begrippen", 1, 1_000),
    "call_timeout_s": _float("call_timeout_s", 0.0, 3600.0, lo_open=True),
    "max_retries": _int("max_retries", 0, 10),
    "fault_kinds": _choices("fault_kinds", _fault_kinds),
    "fault_rates": _rates,
    "n_boot": _int("n_boot", 100, 1_000_000),
    "mc_samples": _int("mc_samples", 100, 10_000_000),
    "out_dir": _str("out_dir"),
    "check_backend": _bool("check_backend"),
}


def default_out_dir() -> Path:
    """Where notebooks write when ``out_dir`` is empty: ``$VOORBEELDEN_OUT_DIR`` or ``reports/notebooks``."""
    env = os.environ.get(OUT_DIR_ENV, "").strip()
    return Path(env) if env else PROJECT_ROOT / "reports" / "notebooks"


def validate_params(**params: Any) -> dict[str, Any]:
    """Check notebook parameters and return them normalised; raise one ValueError listing every problem.

    Known names are checked by type and range (``trials`` an integer >= 1, ``profile`` a known simulator
    profile, rates in [0, 1], ...). ``backend`` is resolved (see :func:`resolve_backend`); a real endpoint is
    probed and must answer HTTP. ``out_dir`` is made absolute and created. Unknown names are an error (a typo
    in a YAML file should not pass silently).
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name, value in params.items():
        check = VALIDATORS.get(name)
        if check is None:
            problems.append(f"unknown parameter {name!r}; known: {', '.join(sorted(VALIDATORS))}")
            continue
        try:
            out[name] = check(value)
        except ValueError as exc:
            problems.append(str(exc))
    if "backend" in out:
        try:
            spec = resolve_backend(out["backend"])
        except ValueError as exc:
            problems.append(str(exc))
        else:
            out["backend_kind"] = spec.kind
            out["backend_host"] = spec.host
            if spec.kind == "real" and out.get("check_backend", True) and not problems:
                assert spec.base_url is not None
                why = probe(spec.base_url)
                if why is not None:
                    problems.append(
                        f"backend {spec.host} (from {spec.source})"
                        f" does not answer: {why}. Check the URL, or use backend='sim' for the embedded simulator."
                    )
    if problems:
        raise ValueError("invalid notebook parameters:\n  - " + "\n  - ".join(problems))
    if "out_dir" in out:
        path = Path(out["out_dir"]).expanduser() if out["out_dir"].strip() else default_out_dir()
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        out["out_dir"] = str(path)
    return out

"""One parameter model per experiment notebook, checked twice: up front by ``voorbeelden report`` (before any
kernel starts) and again in the notebook's validation cell (papermill never checks types, ``-p`` even guesses).

The notebook's ``parameters`` cell is the one place for defaults; a model here holds only names, types and
ranges (every field is required), so the two cannot drift apart: the report check fills the defaults from
papermill's own inspection of the cell, and a test checks that every declared name has a field. Errors are
collected, not raised one at a time, and name the key, the value and the allowed range.
"""

from __future__ import annotations

import ast
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from voorbeelden.begrippen import PROJECT_ROOT, count_begrippen

OUT_DIR_ENV = "VOORBEELDEN_OUT_DIR"


# --- shared field types -------------------------------------------------------------------------------------


def _number(value: Any) -> Any:
    """Numbers only: YAML ``"3"`` or ``true`` is a mistake to report, not a value to coerce."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def _integer(value: Any) -> Any:
    _number(value)
    if int(value) != value:
        raise ValueError(f"must be a whole number, got {value!r}")
    return int(value)


def _split(value: Any) -> Any:
    """A list, or a comma-separated string (handy with ``papermill -p``)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, tuple):
        return list(value)
    return value


def _one_of(names: Any, what: str) -> Any:
    def check(value: Any) -> Any:
        allowed = tuple(names()) if callable(names) else tuple(names)
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise ValueError(f"is empty; use one or more of {', '.join(allowed)}")
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; use {', '.join(allowed)}")
        return value

    return check


def _profiles() -> tuple[str, ...]:
    from voorbeelden.sim import PROFILES

    return tuple(PROFILES)


def _strategies() -> tuple[str, ...]:
    from voorbeelden.strategies.registry import REGISTRY

    return tuple(REGISTRY)


def _fault_kinds() -> tuple[str, ...]:
    from voorbeelden.sim.config import FAULT_KINDS

    return tuple(FAULT_KINDS)


def _within_data_set(n: int) -> int:
    have = count_begrippen()
    if n > have:
        raise ValueError(f"asks for {n} begrippen; the data set holds {have} (use 1..{have})")
    return n


def _backend(value: Any) -> Any:
    from voorbeelden.backend import resolve_backend

    if not isinstance(value, str):
        raise ValueError(f"must be text ('sim', 'auto' or a base URL), got {value!r}")
    resolve_backend(value)  # raises ValueError with the allowed forms
    return value


def _with_sequential(value: list[str]) -> list[str]:
    if "sequential" not in value:
        raise ValueError("must include 'sequential' (the baseline every speedup is measured against)")
    return value


def Int(lo: int, hi: int | None = None) -> Any:
    return Annotated[int, BeforeValidator(_integer), Field(ge=lo, le=hi)]


def Float(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Any:
    return Annotated[float, BeforeValidator(_number), Field(gt=gt, ge=ge, le=le)]


Backend = Annotated[str, AfterValidator(_backend)]
Profile = Annotated[str, AfterValidator(_one_of(_profiles, "profile"))]
Profiles = Annotated[list[str], BeforeValidator(_split), AfterValidator(_one_of(_profiles, "profile"))]
Strategy = Annotated[str, AfterValidator(_one_of(_strategies, "strategy"))]
Strategies = Annotated[list[str], BeforeValidator(_split), AfterValidator(_one_of(_strategies, "strategy"))]
TimeScale = Float(gt=0.0, le=10.0)
Seed = Int(0)
Trials = Int(1, 10_000)
Warmup = Int(0, 100)
NBegrippen = Annotated[Int(1), AfterValidator(_within_data_set)]
Rate = Float(ge=0.0, le=1.0)


class NotebookParams(BaseModel):
    """Base: unknown names are an error (a typo in a YAML file must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    out_dir: str


class TrialParams(NotebookParams):
    """What every notebook of paired trials (01, 02, 05, 06) sets: the backend, its time scale, the seed, and
    how many trials (and warm-ups) over how many begrippen."""

    backend: Backend
    time_scale: TimeScale
    seed: Seed
    trials: Trials
    warmup: Warmup
    n_begrippen: NBegrippen


class SpeedupParams(TrialParams):
    """01: paired sequential vs parallel trials per profile."""

    profiles: Profiles
    n_boot: Int(100, 1_000_000)
    mc_samples: Int(100, 10_000_000)


class FaultParams(TrialParams):
    """02: fault kinds x rates on the simulator."""

    profile: Profile
    strategy: Strategy
    max_retries: Int(0, 10)
    call_timeout_s: Float(gt=0.0, le=3600.0)
    fault_kinds: Annotated[
        list[str], BeforeValidator(_split), AfterValidator(_one_of(_fault_kinds, "fault kind"))
    ]
    fault_rates: Annotated[list[Rate], BeforeValidator(_split), Field(min_length=1)]


class SummaryParams(NotebookParams):
    """03: reads what 01 and 02 wrote."""

    backend: Backend


def _rate_limit_modes() -> tuple[str, ...]:
    from voorbeelden.experiments.ratelimit import MODES

    return tuple(MODES)


def _contenders() -> tuple[str, ...]:
    from voorbeelden.experiments.contenders import CONTENDER_KINDS

    return CONTENDER_KINDS


class ScaleParams(NotebookParams):
    """04: every contender against a rate-limited simulator in each mode, and the batch's memory per term
    (times are simulated; ``time_scale`` maps them to real seconds)."""

    n_terms: Int(1, 10_000_000)
    profile: Profile
    time_scale: Float(gt=0.0, le=1.0)
    rpm: Float(gt=0.0)
    told_rpm: Annotated[list[Float(gt=0.0)], BeforeValidator(_split)]
    modes: Annotated[list[str], BeforeValidator(_split), AfterValidator(_one_of(_rate_limit_modes, "mode"))]
    contenders: Annotated[
        list[str], BeforeValidator(_split), AfterValidator(_one_of(_contenders, "contender"))
    ]
    quantum_s: Float(gt=0.0, le=60.0)
    seed: Seed
    isolate: StrictBool
    memory_terms: Int(0, 10_000_000)
    # the Batch API section (voorbeelden.experiments.batch_api): N terms online under batch_api_rpm against the
    # simulator's Batch API taking batch_api_delay_s (simulated) in progress; an empty list skips it. Defaults,
    # so the rate-limit benchmark's settings (the same model) need not name them.
    batch_api_terms: Annotated[list[Int(1, 100_000)], BeforeValidator(_split)] = [10, 40]
    batch_api_rpm: Float(gt=0.0) = 120.0
    batch_api_delay_s: Float(gt=0.0, le=86_400.0) = 120.0


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    in_: Float(ge=0.0) = Field(alias="in")
    out: Float(ge=0.0)


class StrategiesParams(TrialParams):
    """05: every strategy on every profile: wall, tail, first visible part, tokens, cost."""

    profiles: Profiles
    strategies: Strategies
    k: Int(1, 6)
    hedge_percentile: Float(gt=0.0, le=99.9)
    prices: dict[str, Price]


def _local_servers(value: list[str]) -> list[str]:
    from voorbeelden.local.engines import ENGINES, MAX_SLOTS

    for item in value:
        engine, _, slots = item.partition(":")
        if engine not in ENGINES or (slots and not (slots.isdigit() and 1 <= int(slots) <= MAX_SLOTS)):
            raise ValueError(
                f"{item!r} is not ENGINE[:SLOTS] with ENGINE one of {', '.join(ENGINES)} and SLOTS 1..{MAX_SLOTS}"
            )
    return value


class CalibrationParams(TrialParams):
    """06: measure sequential/parallel/bounded on a backend, calibrate the simulator, compare predictions."""

    profile: Profile  # the simulator's profile when backend is 'sim' (a stand-in for a real server)
    sim_capacity: Int(1, 1000) | None  # the stand-in simulator's capacity (None: unlimited)
    strategies: Annotated[Strategies, AfterValidator(_with_sequential)]
    predict_time_scale: TimeScale
    k: Int(1, 6)
    temperature: Float(ge=0.0, le=2.0) | None
    sampling_seed: Int(0) | None
    max_tokens: Int(1, 100_000) | None
    call_timeout_s: Float(gt=0.0, le=3600.0)
    goal: Float(gt=0.0, le=1.0)
    # backend 'local' only: servers this notebook starts and calibrates one after the other, as ENGINE:SLOTS
    # (e.g. llama-server:6, llama-server:1); empty: the backend it is given (the report's server)
    local_servers: Annotated[list[str], BeforeValidator(_split), AfterValidator(_local_servers)] = []


def _split_numbers(value: Any) -> Any:
    """:func:`_split`, and each piece of a string read as a number (``papermill -p users 1,2,4`` passes text)."""
    if not isinstance(value, str):
        return _split(value)
    out: list[Any] = []
    for piece in _split(value):
        try:
            out.append(ast.literal_eval(piece))
        except (ValueError, SyntaxError):
            out.append(piece)  # reported by the item's own check, with the text as given
    return out


class LoadParams(NotebookParams):
    """07: a load sweep per strategy (closed loop over ``users`` or open loop over ``rates``, exactly one),
    on each simulator profile (capacity ``sim_capacity``) or on the backend; times in model seconds.
    ``predict_profile``: on a real/local backend, the calibrated simulator profile whose knee is compared;
    ``predict_profile_file``: a profile file to predict with instead (relative to ``out_dir``: notebook 06's
    fit of the same server), falling back to ``predict_profile`` with a note when it is missing;
    ``local_engine``/``local_slots``: with ``backend="local"``, the local server the notebook starts for itself."""

    backend: Backend
    profiles: Profiles
    sim_capacity: Int(1, 1000) | None
    time_scale: TimeScale
    seed: Seed
    strategies: Strategies
    k: Int(1, 6)
    users: Annotated[list[Int(1, 10_000)], BeforeValidator(_split_numbers)]
    rates: Annotated[list[Float(gt=0.0)], BeforeValidator(_split_numbers)]
    think_s: Float(ge=0.0)
    slo_s: Float(gt=0.0)
    duration_s: Float(gt=0.0)
    warmup_s: Float(ge=0.0)
    windows: Int(1, 20)
    drain_s: Float(gt=0.0) | None
    predict_profile: Profile | None
    predict_profile_file: str | None = None
    predict_time_scale: TimeScale
    local_engine: (
        Annotated[str, AfterValidator(_one_of(("llama-cpp-python", "llama-server"), "engine"))] | None
    )
    local_slots: Int(1, 64)

    @model_validator(mode="after")
    def _one_way_to_load(self) -> LoadParams:
        if bool(self.users) == bool(self.rates):
            raise ValueError("give exactly one of users (closed loop) or rates (open loop); the other []")
        return self


def _engines() -> tuple[str, ...]:
    from voorbeelden.local.engines import ENGINES

    return ENGINES


class EnginesParams(TrialParams):
    """08: both local engines (the queueing llama-cpp-python, the batching llama-server with ``slots``):
    paired sequential/parallel trials with the server's counters, and the batching curve. On a simulated
    backend, the simulator's stand-ins (capacity 1 on ``sim_profile``; the batching-6 profile)."""

    engines: Annotated[list[str], BeforeValidator(_split), AfterValidator(_one_of(_engines, "engine"))]
    slots: Int(1, 64)
    threads: Int(1, 64)
    n_ctx: Int(512, 1 << 20)
    sim_profile: Profile
    n_boot: Int(100, 1_000_000)
    call_timeout_s: Float(gt=0.0, le=3600.0)
    temperature: Float(ge=0.0, le=2.0) | None
    sampling_seed: Int(0) | None
    max_tokens: Int(1, 100_000) | None
    curve_streams: Annotated[list[Int(1, 64)], BeforeValidator(_split_numbers)]
    curve_tokens: Int(2, 4096)
    curve_reps: Int(1, 100)


# The notebook (file stem) -> its model. A notebook not listed here has no checked parameters.
MODELS: dict[str, type[NotebookParams]] = {
    "01_sequential_vs_parallel": SpeedupParams,
    "02_failure_injection": FaultParams,
    "03_report": SummaryParams,
    "04_scale_and_rate_limits": ScaleParams,
    "05_strategies": StrategiesParams,
    "06_calibration": CalibrationParams,
    "07_under_load": LoadParams,
    "08_local_engines": EnginesParams,
}


def model_for(notebook: str) -> type[NotebookParams] | None:
    """The model of a notebook given by file name or stem (``01_sequential_vs_parallel[.ipynb]``)."""
    return MODELS.get(Path(notebook).name.removesuffix(".ipynb"))


def problems_of(model: type[BaseModel], values: Mapping[str, Any]) -> list[str]:
    """Every problem with ``values`` as ``key: message (got value)`` lines; empty when they are valid."""
    try:
        model.model_validate(dict(values))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(parameters)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                known = ", ".join(sorted(model.model_fields))
                lines.append(f"{key}: unknown parameter; this notebook knows {known}")
            elif err["type"] == "missing":
                lines.append(f"{key}: missing")
            elif err["type"] == "value_error":
                lines.append(f"{key}: {msg}")
            else:
                lines.append(f"{key}: {msg} (got {err.get('input')!r})")
        return lines
    return []


def declared_defaults(notebook: str | Path) -> dict[str, Any]:
    """The defaults of a notebook's ``parameters`` cell, read by papermill's own inspection (as the
    report will inject), each evaluated as a Python literal."""
    import papermill as pm

    out: dict[str, Any] = {}
    for name, spec in pm.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            out[name] = spec["default"]
    return out


def default_out_dir() -> Path:
    """Where notebooks write when ``out_dir`` is empty: ``$VOORBEELDEN_OUT_DIR`` or ``reports/notebooks``."""
    env = os.environ.get(OUT_DIR_ENV, "").strip()
    return Path(env) if env else PROJECT_ROOT / "reports" / "notebooks"


def validate_params(notebook: str, /, *, check_backend: bool = True, **params: Any) -> dict[str, Any]:
    """Check a notebook's parameters with its model and return them normalised; raise one ValueError that
    lists every problem.

    ``backend`` is resolved (``backend_kind``, ``backend_host`` are added); a real endpoint is probed and must
    answer HTTP unless ``check_backend`` is false. ``out_dir`` is made absolute and created.
    """
    from voorbeelden.backend import probe, resolve_backend

    model = model_for(notebook)
    if model is None:
        raise ValueError(f"no parameter model for notebook {notebook!r}; known: {', '.join(MODELS)}")
    problems = problems_of(model, params)
    if problems:
        raise ValueError(f"invalid parameters for {notebook}:\n  - " + "\n  - ".join(problems))
    out = model.model_validate(params).model_dump(by_alias=True)
    if "backend" in out:
        spec = resolve_backend(out["backend"])
        out["backend_kind"] = spec.kind
        out["backend_host"] = spec.host
        if spec.kind == "real" and check_backend:
            assert spec.base_url is not None
            why = probe(spec.base_url)
            if why is not None:
                raise ValueError(
                    f"backend {spec.host} (from {spec.source}) does not answer: {why}. Check the URL, or use "
                    "backend='sim' for the embedded simulator."
                )
    path = Path(out["out_dir"]).expanduser() if out["out_dir"].strip() else default_out_dir()
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    out["out_dir"] = str(path)
    return out


# --- the report's parameter file as a whole ----------------------------------------------------------------

EXECUTION_TIMEOUT_RANGE_S = (10.0, 7 * 24 * 3600.0)  # below 10 s no notebook cell finishes; above: a typo


def check_report_file(data: Any, path: str | os.PathLike[str]) -> None:
    """Refuse (ValueError naming the file and the key) what the report's runner would trip over later: an
    empty file (it would run every notebook on defaults nobody chose) and an ``execution_timeout`` that is not
    a finite number of seconds in :data:`EXECUTION_TIMEOUT_RANGE_S` (-1, 0 and 0.001 were accepted; NaN and
    text failed deep in the runner without naming the file or the key)."""
    if data is None or data == {}:
        raise ValueError(
            f"{path} is empty; a parameter file names at least the notebooks' parameters (see "
            "notebooks/params/default.yaml)"
        )
    if not isinstance(data, dict) or "execution_timeout" not in data:
        return
    value = data["execution_timeout"]
    lo, hi = EXECUTION_TIMEOUT_RANGE_S
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and lo <= value <= hi
    )
    if not ok:
        raise ValueError(
            f"{path}: execution_timeout must be a number of seconds per cell from {lo:g} to {hi:g}, got {value!r}"
        )

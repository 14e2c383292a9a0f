"""The experiments behind the notebooks, as functions, so a notebook is parameters, a call and a display.

Every time in an experiment is multiplied by ``time_scale`` on a simulated backend: the simulator's latencies
(server side) and the client's call timeout and retry backoff (here, via ``Backend.clock_scale``), so a run at
``time_scale=0.02`` is the same experiment as at 1.0, fifty times faster. On a real endpoint nothing is scaled:
its rows are tagged ``time_scale: None`` and :func:`voorbeelden.backend.model_seconds_factor` is 1.

Headlines need complete generations: when a notebook's headline figure has no complete pair the experiment
still writes its JSON (with ``ok: false`` and the reason) and :func:`require_complete` then raises
:class:`IncompleteHeadline`, so papermill marks the notebook failed and ``voorbeelden report`` exits non-zero.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from voorbeelden.backend import Backend, open_backend
from voorbeelden.begrippen import load_begrippen
from voorbeelden.experiments import stats
from voorbeelden.experiments.retries import bench_config
from voorbeelden.experiments.trials import TrialResults, rows_to_frames, run_trials
from voorbeelden.redact import redact_obj


class IncompleteHeadline(RuntimeError):
    """A notebook's headline measurement has no complete pair: its figure would describe failures."""


def require_complete(exp: Any) -> None:
    """Raise :class:`IncompleteHeadline` with the reason when ``exp.ok`` is false (a notebook's last word
    on its headline; the JSON side file was written before, with the same reason)."""
    if not getattr(exp, "ok", True):
        raise IncompleteHeadline(exp.reason)


def failure_reason(problems: list[str], gens: pd.DataFrame) -> str | None:
    """Why an experiment's result does not stand (None when it does): its problems and the most common errors
    among ``gens``."""
    if not problems:
        return None
    errors = stats.common_errors(gens) if len(gens) else []
    return "; ".join(problems) + (f". Most common errors: {'; '.join(errors)}" if errors else "")


NB01 = "01_sequential_vs_parallel"
NB02 = "02_failure_injection"


def part_max_tokens() -> dict[str, int]:
    """The token cap the generator sends per part (the expected bound must use the same caps)."""
    from voorbeelden.config import default_part_settings

    return {str(p): s.max_tokens for p, s in default_part_settings().items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def write_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    data = redact_obj(_jsonable(obj))  # every JSON side file is an output boundary: no keys in it
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _fresh(path: Path) -> Path:
    if path.exists():
        path.unlink()
    return path


# --- 01: sequential vs parallel ----------------------------------------------------------------------------


@dataclasses.dataclass
class SpeedupExperiment:
    results: TrialResults
    summary: pd.DataFrame
    walls: pd.DataFrame
    overhead: pd.DataFrame
    expected: dict[str, dict[str, Any]]
    backend: dict[str, Any]
    seconds: float
    ok: bool = True
    reason: str | None = None


def profile_labels(be: Backend, P: Mapping[str, Any]) -> list[str]:
    """The profiles a simulator runs one after another; a real endpoint is one "profile" of its own."""
    return list(P["profiles"]) if be.simulated else [f"{be.kind} ({be.host})"]


def trials_per_profile(
    be: Backend,
    P: Mapping[str, Any],
    begrippen: Sequence[Any],
    jsonl: Path,
    *,
    strategies: Sequence[str],
    scenario: str,
    per_profile: Callable[[], Mapping[str, Any]] | None = None,
    k: int | None = None,
    **generate_kwargs: Any,
) -> TrialResults:
    """Paired trials of ``strategies`` on every profile of ``P`` (the simulator reconfigured per profile),
    tagged with the profile and time scale, with the retry config scaled to the backend's clock; all appended
    to ``jsonl``. ``per_profile()`` gives keyword arguments that must be fresh for each profile."""
    frames: list[TrialResults] = []
    for label in profile_labels(be, P):
        if be.simulated:
            be.configure(profile=label)
        frames.append(
            run_trials(
                begrippen,
                backend=be,
                strategies=tuple(strategies),
                trials=P["trials"],
                warmup=P["warmup"],
                out=jsonl,
                scenario=scenario,
                tags={"profile": label, "time_scale": be.time_scale if be.simulated else None},
                key_prefix=f"s{P['seed']}:",
                config=bench_config(be.clock_scale).with_policy(k=k),
                **generate_kwargs,
                **(per_profile() if per_profile is not None else {}),
            )
        )
    return concat_results(frames, jsonl)


def concat_results(frames: Sequence[TrialResults], path: Path | None) -> TrialResults:
    """Several runs' results as one (empty frames when there were none)."""
    if not frames:
        return TrialResults(*rows_to_frames([]), path)
    gens = pd.concat([f.generations for f in frames], ignore_index=True)
    recs = pd.concat([f.records for f in frames], ignore_index=True)
    return TrialResults(gens, recs, path)


def _expected_bounds(P: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per simulated profile, the expected speedup bound E[sum]/E[max] (Monte Carlo, the parts' token caps)."""
    caps = part_max_tokens()
    return {
        label: stats.expected_bound(label, n=P["mc_samples"], seed=P["seed"], max_tokens=caps)
        for label in P["profiles"]
    }


def speedup_experiment(P: Mapping[str, Any]) -> SpeedupExperiment:
    """Paired sequential/parallel trials per profile (one simulator, reconfigured per profile), written to
    ``<out_dir>/01_sequential_vs_parallel.jsonl``, with the summary in ``...json``."""
    t0 = time.monotonic()
    out_dir = Path(P["out_dir"])
    jsonl = _fresh(out_dir / f"{NB01}.jsonl")
    begrippen = load_begrippen(P["n_begrippen"])
    with open_backend(
        P["backend"], profile=P["profiles"][0], time_scale=P["time_scale"], seed=P["seed"]
    ) as be:
        expected = _expected_bounds(P) if be.simulated else {}
        results = trials_per_profile(
            be, P, begrippen, jsonl, strategies=("sequential", "parallel"), scenario="sequential-vs-parallel"
        )
        backend = be.describe()
        if be.simulated:
            backend["profile"] = list(P["profiles"])
    gens = results.generations
    pairs = stats.paired_speedups(gens, by=("profile",))
    summary = stats.speedup_summary(
        pairs,
        by=("profile",),
        n_boot=P["n_boot"],
        seed=P["seed"],
        expected={k: v["bound"] for k, v in expected.items()},
    )
    for col in ("e_sum_s", "e_max_s", "slowest_part"):
        summary[col] = [expected.get(p, {}).get(col) for p in summary["profile"]]
    walls = stats.wall_summary(gens, by=("profile", "strategy"))
    over = stats.overhead(gens, by=("profile", "strategy"))
    reason = failure_reason(stats.headline_problems(summary), gens[~gens["warmup"]])
    exp = SpeedupExperiment(
        results, summary, walls, over, expected, backend, time.monotonic() - t0, reason is None, reason
    )
    measured = gens[~gens["warmup"]]
    write_json(
        out_dir / f"{NB01}.json",
        {
            "notebook": NB01,
            "ok": exp.ok,
            "reason": reason,
            "n_complete_generations": int(stats.is_complete(measured).sum()),
            "backend": backend,
            "params": dict(P),
            "speedup": summary.to_dict(orient="records"),
            "walls": walls.to_dict(orient="records"),
            "overhead": over.to_dict(orient="records"),
            "expected": expected,
            "n_generations": int((~gens["warmup"]).sum()),
            "n_warmup": int(gens["warmup"].sum()),
            "seconds": exp.seconds,
        },
    )
    return exp


# --- 02: failure injection ---------------------------------------------------------------------------------


@dataclasses.dataclass
class FaultExperiment:
    results: TrialResults
    summary: pd.DataFrame
    backend: dict[str, Any]
    skipped: str | None
    seconds: float
    ok: bool = True
    reason: str | None = None


def _fault_trials(
    be: Backend, P: Mapping[str, Any], begrippen: Sequence[Any], jsonl: Path
) -> list[TrialResults]:
    """One run of trials per (fault kind, rate), the simulator injecting that fault; faults off afterwards."""
    frames: list[TrialResults] = []
    for kind in P["fault_kinds"]:
        for rate in P["fault_rates"]:
            be.configure(fault_rate=rate, faults=[kind])
            frames.append(
                run_trials(
                    begrippen,
                    backend=be,
                    strategies=(P["strategy"],),
                    trials=P["trials"],
                    warmup=P["warmup"],
                    out=jsonl,
                    scenario=f"faults:{kind}@{rate:g}",
                    tags={"profile": P["profile"], "fault_kind": kind, "fault_rate": rate},
                    key_prefix=f"s{P['seed']}:",
                    config=bench_config(
                        be.clock_scale,
                        max_retries=P["max_retries"],
                        call_timeout_model_s=P["call_timeout_s"],
                    ),
                )
            )
    be.configure(fault_rate=0.0)
    return frames


def _control_problems(summary: pd.DataFrame) -> list[str]:
    """A kind whose rate-0 control has no complete generation: the backend fails without injected faults."""
    problems = []
    if len(summary) and "fault_rate" in summary:
        for row in summary[summary["fault_rate"] == 0].to_dict(orient="records"):
            if not row["n_complete"]:
                problems.append(
                    f"{row['fault_kind']} at rate 0 (the control): {stats.n_of(0, row['n'])} generations "
                    "complete, so the backend fails without injected faults"
                )
    return problems


def fault_experiment(P: Mapping[str, Any]) -> FaultExperiment:
    """For each fault kind and rate: the simulator injects that kind with that per-attempt probability
    (``sim.configure(fault_rate=p, faults=(kind,))``) and the generator runs with ``max_retries``. Written
    to ``<out_dir>/02_failure_injection.jsonl`` and ``...json``. A real endpoint cannot inject faults: the
    experiment is skipped and says so."""
    t0 = time.monotonic()
    out_dir = Path(P["out_dir"])
    jsonl = _fresh(out_dir / f"{NB02}.jsonl")
    begrippen = load_begrippen(P["n_begrippen"])
    frames: list[TrialResults] = []
    skipped = None
    with open_backend(P["backend"], profile=P["profile"], time_scale=P["time_scale"], seed=P["seed"]) as be:
        backend = be.describe()
        if not be.simulated:
            skipped = (
                f"backend is a real endpoint ({be.host}): faults can only be injected into the simulator"
            )
        else:
            frames = _fault_trials(be, P, begrippen, jsonl)
    results = concat_results(frames, jsonl)
    gens = results.generations
    summary = stats.fault_summary(gens, max_retries=P["max_retries"]) if frames else pd.DataFrame()
    reason = failure_reason(_control_problems(summary), gens)
    exp = FaultExperiment(
        results,
        summary,
        backend,
        skipped,
        time.monotonic() - t0,
        reason is None,
        reason,
    )
    write_json(
        out_dir / f"{NB02}.json",
        {
            "notebook": NB02,
            "ok": exp.ok,
            "reason": reason,
            "backend": backend,
            "params": dict(P),
            "skipped": skipped,
            "faults": summary.to_dict(orient="records"),
            "seconds": exp.seconds,
        },
    )
    return exp


def describe_backend(backend: Backend | Mapping[str, Any]) -> str:
    """One line for a report's first screen."""
    d = backend.describe() if isinstance(backend, Backend) else backend
    if d.get("kind") == "simulated":
        profile = d.get("profile")
        if isinstance(profile, list | tuple):
            profile = ", ".join(map(str, profile))
        return (
            f"SIMULATED backend (embedded simulator): profile {profile}, "
            f"time_scale {d.get('time_scale')}, seed {d.get('seed')}"
        )
    if d.get("kind") == "local":
        return (
            f"LOCAL model server ({d.get('server')} {d.get('server_version') or ''}) at {d.get('host')}: "
            f"model {d.get('model')}, server concurrency {d.get('concurrency')} ({d.get('concurrency_note')}), "
            f"interrupt_requests={d.get('interrupt_requests')}, {d.get('threads')} CPU thread(s)"
        )
    chosen = d.get("chosen_by")
    return f"REAL backend: {d.get('host')}" + (f" (chosen by {chosen})" if chosen else "")

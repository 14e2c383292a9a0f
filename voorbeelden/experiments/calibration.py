"""Notebook 06: measure a backend, calibrate the simulator from those records, and see whether it predicts.

Steps, each a function so the notebook stays thin: paired sequential/parallel/bounded trials on the backend
(``06_calibration.jsonl``); a profile fitted from their call records (:mod:`voorbeelden.sim.calibrate`,
written to ``06_profile.json``); the same trials, same begrippen and same pairing against the simulator
serving that profile with the fitted server concurrency (``predicted_06_calibration.jsonl``); and per
strategy the measured paired speedup over sequential beside the predicted one, with the relative error.

The goal (issue 12): predicted within 15% of measured for sequential, parallel and bounded on the local
server. The table states the error whatever it is; the conclusion is computed from it.

On a backend that queues (the local llama.cpp server serves one request at a time) a parallel speedup below
1 is the expected result, not a fault: the six calls wait for each other, and the "parallel" run only
saves the client's round trips between calls. :func:`speedup_notes` turns such a result into the sentence
the report's first page shows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voorbeelden.backend import PLACEHOLDER_KEY, open_backend
from voorbeelden.begrippen import load_begrippen
from voorbeelden.experiments import stats
from voorbeelden.experiments.calibration_plots import calibration_html, plot_calibration, plot_curve
from voorbeelden.experiments.retries import bench_config
from voorbeelden.experiments.speedup import write_json
from voorbeelden.experiments.trials import TrialResults, run_trials
from voorbeelden.sim.calibrate import Calibration, calibrate, read_records, write_profile

NB06 = "06_calibration"
__all__ = [
    "CalibrationExperiment",
    "calibration_experiment",
    "calibration_html",
    "compare",
    "conclude",
    "plot_calibration",
    "plot_curve",
]

PREDICTED_JSONL = f"predicted_{NB06}.jsonl"  # not "0*": the report's results.jsonl holds measurements only


@dataclasses.dataclass
class CalibrationExperiment:
    """One server's round trip: measured trials, the fitted calibration, the predicted trials, the table."""

    measured: TrialResults
    predicted: TrialResults
    calibration: Calibration
    table: pd.DataFrame
    conclusion: list[str]
    backend: dict[str, Any]
    seconds: float
    label: str = ""
    # per concurrency level: the per-stream speed the measured calls showed (see observed_speeds)
    speeds: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    others: list[CalibrationExperiment] = dataclasses.field(default_factory=list)

    @property
    def all(self) -> list[CalibrationExperiment]:
        """This server's experiment and those of the other servers measured in the same run."""
        return [self, *self.others]


def parse_local_server(text: str) -> tuple[str, int]:
    """``"llama-server:6"`` -> (engine, slots); ``"llama-cpp-python"`` -> (engine, 1)."""
    engine, _, slots = text.partition(":")
    return engine, int(slots) if slots else 1


def _config(P: Mapping[str, Any], time_scale: float, *, real: bool) -> Any:
    """The generator config of a run: scaled timeouts; on a real backend the sampling overrides."""
    cfg = bench_config(time_scale, call_timeout_model_s=P["call_timeout_s"]).with_policy(k=P["k"])
    if real:
        if P.get("temperature") is not None or P.get("sampling_seed") is not None:
            cfg = cfg.with_sampling(P.get("temperature"), P.get("sampling_seed"))
        if P.get("max_tokens") is not None:
            cfg = cfg.with_max_tokens(int(P["max_tokens"]))
    return cfg


@contextlib.contextmanager
def _server(P: Mapping[str, Any], local: str | None) -> Iterator[Any]:
    """The backend to measure: a local server this notebook starts (``local``, e.g. ``llama-server:6``),
    or the notebook's backend."""
    if local is not None:
        from voorbeelden.backend import Backend
        from voorbeelden.local import running_local_llm

        engine, slots = parse_local_server(local)
        with running_local_llm(engine=engine, slots=slots) as llm:
            yield Backend(kind="local", base_url=llm.base_url, info=llm.describe())
        return
    sim_overrides = {"capacity": P["sim_capacity"]} if P.get("sim_capacity") else {}
    with open_backend(
        P["backend"], profile=P["profile"], time_scale=P["time_scale"], seed=P["seed"], **sim_overrides
    ) as be:
        yield be


def _measure(
    P: Mapping[str, Any], begrippen: Any, common: Mapping[str, Any], out: Path, local: str | None, label: str
) -> tuple[TrialResults, dict[str, Any]]:
    """Step 1: the paired trials on the backend; returns them and the backend's description."""
    with _server(P, local) as be:
        backend = be.describe()
        if be.simulated:
            backend["capacity"] = P.get("sim_capacity")
        ts = P["time_scale"] if be.simulated else 1.0
        measured = run_trials(
            begrippen,
            backend=be,
            out=out,
            scenario=f"calibration:measured{label}",
            tags={"role": "measured"},
            config=_config(P, ts, real=not be.simulated),
            **common,
        )
    return measured, backend


def _predict(
    P: Mapping[str, Any],
    begrippen: Any,
    common: Mapping[str, Any],
    calibration: Calibration,
    profile_path: Path,
    label: str,
) -> tuple[TrialResults, Calibration]:
    """Step 3: the same trials against the simulator serving the fitted profile and concurrency, after a
    short probe that takes the client's own time per call out of the fit (see calibration_overhead);
    returns the trials and the calibration the simulator served."""
    from voorbeelden.experiments.calibration_overhead import client_overhead_s, without_overhead
    from voorbeelden.sim import SimConfig, running_simulator

    # The fitted profile is in the measured run's seconds; the prediction may run it faster (speedups are
    # ratios; walls are divided by the time scale).
    pts = P["predict_time_scale"]
    sim_config = SimConfig(
        profile_file=str(profile_path), time_scale=pts, seed=P["seed"], capacity=calibration.capacity
    )
    config = _config(P, pts, real=False)
    with running_simulator(sim_config, process=True) as sim:
        probe = run_trials(
            list(begrippen)[:1],
            base_url=sim.base_url,
            api_key=PLACEHOLDER_KEY,
            strategies=("sequential",),
            trials=1,
            warmup=1,
            key_prefix="probe:",
            config=config,
        )
        served = without_overhead(calibration, client_overhead_s(probe.records, calibration, pts), pts)
        write_profile(served, profile_path)
        sim.configure(profile_file=str(profile_path))
        sim.reset_counters()
        predicted = run_trials(
            begrippen,
            base_url=sim.base_url,
            api_key=PLACEHOLDER_KEY,
            out=Path(P["out_dir"]) / PREDICTED_JSONL,
            scenario=f"calibration:predicted{label}",
            tags={"role": "predicted"},
            config=config,
            **common,
        )
    return predicted, served


def calibration_experiment(P: Mapping[str, Any]) -> CalibrationExperiment:
    """Run the four steps (see the module docstring) for the backend, or for each of ``local_servers`` in
    turn (the first is returned, the others in ``.others``), and write ``06_calibration.json``."""
    t0 = time.monotonic()
    out_dir = Path(P["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    measured_path = out_dir / f"{NB06}.jsonl"
    for path in (measured_path, out_dir / PREDICTED_JSONL):
        path.unlink(missing_ok=True)
    for old in out_dir.glob(f"{NB06}_profile*.json"):
        old.unlink()
    begrippen = load_begrippen(P["n_begrippen"])
    servers: list[str | None] = list(P.get("local_servers") or []) if P["backend"] == "local" else []
    runs = [_round_trip(P, begrippen, out_dir, local) for local in (servers or [None])]
    first = dataclasses.replace(runs[0], others=runs[1:], seconds=time.monotonic() - t0)
    write_json(out_dir / f"{NB06}.json", _side_file(P, first))
    return first


def _round_trip(
    P: Mapping[str, Any], begrippen: Any, out_dir: Path, local: str | None
) -> CalibrationExperiment:
    """Measure one server, fit, predict with the simulator, compare."""
    t0 = time.monotonic()
    strategies = tuple(P["strategies"])
    common = {
        "strategies": strategies,
        "trials": P["trials"],
        "warmup": P["warmup"],
        "key_prefix": f"s{P['seed']}:",
    }
    label = "" if local is None else f":{local}"
    measured_path = out_dir / f"{NB06}.jsonl"
    measured, backend = _measure(P, begrippen, common, measured_path, local, label)
    records = read_records(measured_path)
    if "scenario" in records:
        records = records[records["scenario"] == f"calibration:measured{label}"]
    name = f"calibrated-{backend.get('kind')}" + ("" if local is None else "-" + local.replace(":", "-"))
    fitted = calibrate(records, name=name, source=measured_path.name)
    suffix = "" if local is None else "_" + local.replace(":", "-")
    profile_path = write_profile(fitted, out_dir / f"{NB06}_profile{suffix}.json")
    predicted, calibration = _predict(P, begrippen, common, fitted, profile_path, label)
    table = compare(
        measured.generations,
        predicted.generations,
        strategies,
        goal=P["goal"],
        predicted_time_scale=P["predict_time_scale"],
    )
    if local is not None:
        table.insert(0, "server", local)
    conclusion = conclude(table, calibration, backend, goal=P["goal"])
    return CalibrationExperiment(
        measured,
        predicted,
        calibration,
        table,
        conclusion,
        backend,
        time.monotonic() - t0,
        label=local or str(backend.get("kind", "")),
        speeds=observed_curve(records, fitted),
    )


def observed_curve(records: pd.DataFrame, calibration: Calibration) -> pd.DataFrame:
    """Per number of concurrent streams: the per-stream speed (relative to alone) and total throughput
    the measured calls showed, beside the fitted curve's."""
    from voorbeelden.sim.calibrate import usable_records
    from voorbeelden.sim.calibrate_batching import observed_speeds

    usable = usable_records(records)
    ttft = {p: f.ttft.median for p, f in {**calibration.parts, **calibration.extra}.items()}
    table = observed_speeds(usable, ttft, calibration.seconds_per_token)
    curve = calibration.profile().batching
    if curve is not None and len(table):
        table["fitted_speed"] = [curve.rate(int(n)) for n in table["streams"]]
    return table


def _side_file(P: Mapping[str, Any], first: CalibrationExperiment) -> dict[str, Any]:
    """``06_calibration.json``: the first server's fit at the top (what the report's section reads), every
    server's table rows and conclusion lines, and each server's own block under ``servers``."""
    runs = first.all
    many = len(runs) > 1

    def block(run: CalibrationExperiment) -> dict[str, Any]:
        fit = run.calibration.batching_fit
        return {
            "label": run.label,
            "backend": run.backend,
            "capacity": run.calibration.capacity,
            "concurrency": run.calibration.concurrency.to_dict(),
            "batching": None if fit is None else fit.to_dict(),
            "observed_speeds": run.speeds.to_dict(orient="records"),
            "fit": run.calibration.table().to_dict(orient="records"),
            "fit_notes": run.calibration.notes,
            "table": run.table.to_dict(orient="records"),
            "conclusion": run.conclusion,
            "seconds": run.seconds,
        }

    return {
        "notebook": NB06,
        "params": dict(P),
        "profile_file": f"{NB06}_profile*.json",
        **{k: v for k, v in block(first).items() if k not in ("table", "conclusion", "fit_notes")},
        "table": [row for run in runs for row in run.table.to_dict(orient="records")],
        "conclusion": [(f"[{run.label}] " if many else "") + line for run in runs for line in run.conclusion],
        "fit_notes": [
            (f"[{run.label}] " if many else "") + line for run in runs for line in run.calibration.notes
        ],
        "servers": [block(run) for run in runs],
        "goal": P["goal"],
        "seconds": first.seconds,
    }


def _per_token(gens: pd.DataFrame) -> pd.Series:
    tokens = pd.to_numeric(gens["tokens_out"], errors="coerce").replace(0, np.nan)
    return gens["wall_s"] / tokens


def compare(
    measured: pd.DataFrame,
    predicted: pd.DataFrame,
    strategies: Sequence[str],
    *,
    goal: float = 0.15,
    predicted_time_scale: float = 1.0,
) -> pd.DataFrame:
    """Per strategy: measured and predicted median paired speedup over sequential (sequential itself is 1 by
    definition) and their relative error (``error``); measured and predicted p50 wall time (the prediction's
    divided by its ``predicted_time_scale``) and their relative error (``wall_error``); for sequential also
    the error of the wall time per output token (``per_token_error``, which runs with different output
    lengths share). ``within_goal``: every error the row has is within ``goal``."""
    rows = []
    m_meas = stats._measured(measured)
    m_pred = stats._measured(predicted)
    seq_m = m_meas[m_meas["strategy"] == "sequential"]
    seq_p = m_pred[m_pred["strategy"] == "sequential"]
    for strategy in strategies:
        gm = m_meas[m_meas["strategy"] == strategy]
        gp = m_pred[m_pred["strategy"] == strategy]
        row: dict[str, Any] = {
            "strategy": strategy,
            "n": len(gm),
            "complete": float((gm["n_failed"] == 0).mean()) if len(gm) else float("nan"),
            "wall_median_s": float(gm["wall_s"].median()) if len(gm) else float("nan"),
            "predicted_wall_median_s": float(gp["wall_s"].median()) / predicted_time_scale
            if len(gp)
            else float("nan"),
            "s_per_token": float(_per_token(gm).median()) if len(gm) else float("nan"),
            "tokens_out_median": float(gm["tokens_out"].median()) if len(gm) else float("nan"),
        }
        if strategy == "sequential":
            # Speedup 1 by definition: the prediction of the baseline's wall time is what is checked.
            row.update(n_pairs=len(gm), measured_speedup=1.0, ci_low=1.0, ci_high=1.0, predicted_speedup=1.0)
            pm = _per_token(seq_m).median()
            pp = _per_token(seq_p).median() / predicted_time_scale
            row["per_token_error"] = _rel(pp, pm)
        else:
            pm = stats.paired_speedups(measured, baseline="sequential", other=strategy)
            pp = stats.paired_speedups(predicted, baseline="sequential", other=strategy)
            lo, hi = stats.bootstrap_ci(pm["speedup"], n_boot=2000, seed=0) if len(pm) else (np.nan, np.nan)
            row.update(
                n_pairs=len(pm),
                measured_speedup=float(pm["speedup"].median()) if len(pm) else float("nan"),
                ci_low=lo,
                ci_high=hi,
                predicted_speedup=float(pp["speedup"].median()) if len(pp) else float("nan"),
                per_token_error=float("nan"),
            )
        row["wall_error"] = _rel(row["predicted_wall_median_s"], row["wall_median_s"])
        row["error"] = _rel(row["predicted_speedup"], row["measured_speedup"])
        errors = [row["wall_error"]] + ([] if strategy == "sequential" else [row["error"]])
        row["within_goal"] = all(e == e and abs(e) <= goal for e in errors)
        rows.append(row)
    return pd.DataFrame(rows)


def _rel(predicted: float, measured: float) -> float:
    """predicted / measured - 1 (nan when either is missing or measured is 0)."""
    ok = predicted == predicted and measured == measured and measured
    return float(predicted / measured - 1) if ok else float("nan")


def conclude(
    table: pd.DataFrame, calibration: Calibration, backend: Mapping[str, Any], *, goal: float = 0.15
) -> list[str]:
    """Plain sentences computed from the table: the fitted concurrency, the errors, the verdict."""
    cap = calibration.capacity
    curve = calibration.profile().batching
    served = (
        f"batching: up to {curve.max_batch} streams decoded together, each at "
        f"{curve.rate(curve.max_batch):.2f}x its solo speed when all share the server "
        f"({curve.throughput(curve.max_batch):.2f}x total throughput)"
        if curve is not None
        else f"fitted server concurrency: {cap if cap is not None else 'no limit observed'}"
    )
    lines = [
        served
        + (
            f" (the backend states {backend.get('concurrency')})"
            if backend.get("concurrency") is not None
            else ""
        )
        + f"; decode {1 / calibration.seconds_per_token:.1f} tokens/s alone"
    ]
    for row in table.itertuples(index=False):
        verdict = "within" if row.within_goal else "OUTSIDE"
        wall = (
            f"p50 wall measured {row.wall_median_s:.2f} s, predicted {row.predicted_wall_median_s:.2f} s "
            f"({row.wall_error:+.0%})"
            if row.wall_error == row.wall_error
            else "no measured p50 wall"
        )
        if row.strategy == "sequential":
            lines.append(f"sequential: {wall}: {verdict} the {goal:.0%} goal")
            continue
        lines.append(
            f"{row.strategy}: measured speedup {row.measured_speedup:.2f}x "
            f"(95% CI {row.ci_low:.2f}-{row.ci_high:.2f}, {row.n_pairs} pairs), predicted "
            f"{row.predicted_speedup:.2f}x, error {row.error:+.0%}; {wall}: {verdict} the {goal:.0%} goal"
        )
        if row.measured_speedup < 1:
            lines.append(f"  {row.strategy} is slower than sequential: {_below_one_reason(cap, backend)}")
    return lines


def _below_one_reason(capacity: int | None, backend: Mapping[str, Any]) -> str:
    served = backend.get("concurrency") or capacity
    if served == 1:
        return (
            "the server answers one request at a time: the concurrent calls queue behind each other and the "
            "server does the same work as one call after the other, so overlap cannot save time; what "
            "differs from 1 is the client's round trips between calls (saved by overlap), the cost of the "
            "waiting calls, and noise (the per-trial bound Σ/max assumes a server that serves all calls at "
            "once, which this one does not)"
        )
    return (
        "the concurrent calls cost more than they saved (server slots, rate limits or a longer slowest call); "
        "compare the wall times and the bound"
    )


def speedup_notes(summary: Mapping[str, Any], calibration: Mapping[str, Any] | None) -> list[str]:
    """One sentence per speedup a reader would misread without its reason, for the report's first page: a
    speedup below 1, and one under half its per-trial bound on a server that answers one request at a time
    (1.02x beside a bound of 4.1x looks like a broken client unless the page says the server queues)."""
    backend = summary.get("backend") or {}
    cap = (calibration or {}).get("capacity")
    queues = (backend.get("concurrency") or cap) == 1
    notes = []
    for label, s in (summary.get("speedup") or {}).items():
        med, bound = s.get("median"), s.get("trial_bound")
        if med is None or med != med:
            continue
        if med < 1:
            notes.append(
                f"{label}: parallel was not faster than sequential (median speedup {med:.2f}x over "
                f"{s.get('n_pairs')} pairs{_ci_words(s)}) because {_below_one_reason(cap, backend)}."
            )
        elif queues and bound is not None and bound == bound and med < bound / 2:
            notes.append(
                f"{label}: parallel gained only {med:.2f}x over {s.get('n_pairs')} pairs{_ci_words(s)}, "
                f"where the per-trial bound is {bound:.2f}x, because {_below_one_reason(cap, backend)}."
            )
    return notes


def _ci_words(s: Mapping[str, Any]) -> str:
    lo, hi = s.get("ci_low"), s.get("ci_high")
    if lo is None or hi is None or lo != lo or hi != hi:
        return ""
    if hi < 1:
        verdict = ": slower beyond noise"
    elif lo > 1:
        verdict = ": faster beyond noise"
    else:
        verdict = ": not distinguishable from 1"
    return f", 95% CI {lo:.2f}-{hi:.2f}{verdict}"


def report_fields(data: Mapping[str, Any] | None, summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the report's summary adds from notebook 06's side file (None: not run): the calibration table and
    the speedup notes (see voorbeelden.report.sections)."""
    calibration = None
    if data is not None:
        calibration = {
            k: data.get(k)
            for k in (
                "backend",
                "capacity",
                "concurrency",
                "batching",
                "table",
                "goal",
                "conclusion",
                "fit_notes",
            )
        }
    return {"calibration": calibration, "speedup_notes": speedup_notes(summary, calibration)}

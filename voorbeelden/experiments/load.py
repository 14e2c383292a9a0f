"""Notebook 07, "Under load": a load sweep per strategy on each simulator profile (or on the endpoint), the
knees, the conclusion written from the measured levels, and on a real or local endpoint the calibrated
simulator's prediction of its knee. The sweep itself is :mod:`voorbeelden.experiments.load_sweep`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voorbeelden.experiments.load_sweep import LoadSettings, SweepResult, sweep

__all__ = ["LoadExperiment", "conclude", "load_experiment", "predicted_vs_measured", "settings_from"]

NB07 = "07_under_load"
SIDE_FILE = "07_load.json"


@dataclass
class LoadExperiment:
    """Notebook 07's result: one sweep per backend label (a simulator profile, or the endpoint), the levels as
    one table, the knees, and the conclusion written from them."""

    runs: list[dict[str, Any]]
    table: Any  # pandas DataFrame: one row per (label, strategy, level)
    knees: Any  # pandas DataFrame: one row per (label, strategy)
    conclusion: list[str]
    prediction: list[dict[str, Any]]
    seconds: float
    ok: bool
    reason: str | None = None


def settings_from(P: dict[str, Any]) -> LoadSettings:
    return LoadSettings(
        strategies=tuple(P["strategies"]),
        users=tuple(P["users"]),
        rates=tuple(P["rates"]),
        think_s=P["think_s"],
        slo_s=P["slo_s"],
        duration_s=P["duration_s"],
        warmup_s=P["warmup_s"],
        windows=P["windows"],
        k=P["k"],
        seed=P["seed"],
        drain_s=P["drain_s"],
    )


def capacity_for(profile: str, capacity: int | None) -> int | None:
    """The simulator's capacity for ``profile``: none for a batching profile (its own ``max_batch`` serves
    that many streams at once and queues the rest, as the server it models does), else ``capacity``."""
    from voorbeelden.sim.profiles import PROFILES

    known = PROFILES.get(profile)
    return None if known is not None and getattr(known, "batching", None) is not None else capacity


@contextmanager
def _backend(P: dict[str, Any], sim: dict[str, Any]) -> Iterator[Any]:
    """The backend to load: with ``backend="local"`` and a ``local_engine``, a server of that engine started
    for this notebook (the report's own local server answers one request at a time: a load test of a
    batching server needs its own); else :func:`~voorbeelden.backend.open_backend`."""
    from voorbeelden.backend import Backend, open_backend

    if P["backend"] == "local" and P["local_engine"]:
        from voorbeelden.local import running_local_llm

        with running_local_llm(engine=P["local_engine"], slots=P["local_slots"]) as llm:
            yield Backend(kind="local", base_url=llm.base_url, info=llm.describe())
        return
    with open_backend(P["backend"], profile=P["profiles"][0], **sim) as be:
        yield be


def _run(be: Any, label: str, settings: LoadSettings) -> dict[str, Any]:
    result = sweep(be, settings)
    info = be.describe()
    if be.simulated:
        info["capacity"] = be.sim.capacity if be.sim else None
    return {"label": label, "backend": info, "result": result}


def load_experiment(P: dict[str, Any]) -> LoadExperiment:
    """Notebook 07: a sweep per simulator profile (or on the endpoint), and on a real/local endpoint the same
    sweep on ``predict_profile`` to compare knees; writes ``07_load.json`` into ``out_dir``: the first run's
    :meth:`SweepResult.to_dict` at the top level, every run under ``runs``, the prediction and conclusion."""
    import pandas as pd

    from voorbeelden.backend import open_backend
    from voorbeelden.experiments.speedup import write_json

    t0 = time.monotonic()
    settings = settings_from(P)
    runs: list[dict[str, Any]] = []
    sim = {"time_scale": P["time_scale"], "seed": P["seed"], "capacity": P["sim_capacity"]}
    with _backend(P, sim) as be:
        labels = list(P["profiles"]) if be.simulated else [f"{be.kind} ({be.host})"]
        for label in labels:
            if be.simulated:
                be.configure(profile=label, capacity=capacity_for(label, P["sim_capacity"]))
            runs.append(_run(be, label, settings))
        measured_real = not be.simulated
    notes: list[str] = []
    if measured_real:
        chosen = prediction_profile(P, notes)
        if chosen is not None:
            label, overrides = chosen
            pred = {**sim, "time_scale": P["predict_time_scale"], **overrides}
            with open_backend("sim", **pred) as be:
                runs.append({**_run(be, label, settings), "prediction": True})
    table = pd.DataFrame([{"label": r["label"], **lv} for r in runs for lv in r["result"].levels])
    knees = pd.DataFrame(
        [
            {"label": r["label"], "strategy": s, **k.to_dict()}
            for r in runs
            for s, k in r["result"].knees.items()
        ]
    )
    prediction = predicted_vs_measured(runs)
    conclusion = notes + conclude(runs, settings, prediction)
    n_done = sum(r["result"].generations["complete"] for r in runs)
    reason = None if n_done else "no generation was complete at any level: there is nothing to measure"
    seconds = time.monotonic() - t0
    write_json(
        Path(P["out_dir"]) / SIDE_FILE,
        {
            # The first run's sweep at the top level (the capacity-limited simulator, or the endpoint): one
            # consistent set of levels and knees for the report and the compare tool; every run in "runs".
            **runs[0]["result"].to_dict(),
            "label": runs[0]["label"],
            "backend": runs[0]["backend"],
            "notebook": NB07,
            "ok": reason is None,
            "reason": reason,
            "params": P,
            "runs": [
                {
                    "label": r["label"],
                    "backend": r["backend"],
                    "prediction": bool(r.get("prediction")),
                    **r["result"].to_dict(),
                }
                for r in runs
            ],
            "prediction": prediction,
            "conclusion": conclusion,
            "seconds": seconds,
        },
    )
    return LoadExperiment(runs, table, knees, conclusion, prediction, seconds, reason is None, reason)


def prediction_profile(P: dict[str, Any], notes: list[str]) -> tuple[str, dict[str, Any]] | None:
    """What predicts the measured knee: ``predict_profile_file`` (notebook 06's fit of the same server, in
    ``out_dir``) when it exists, with the capacity the fit found; else ``predict_profile``, with a note
    saying that this is a built-in profile, not a calibration of this server; None when neither is set."""
    from voorbeelden.sim.profiles import load_profile_file

    name = P.get("predict_profile_file")
    if name:
        path = Path(name) if Path(name).is_absolute() else Path(P["out_dir"]) / name
        if path.is_file():
            profile, data = load_profile_file(path)
            notes.append(
                f"The prediction is the simulator serving {path.name} (notebook 06's calibration of this "
                f"server: {profile.description})."
            )
            return f"calibrated ({path.name})", {"profile_file": str(path), "capacity": data.get("capacity")}
        fallback = P["predict_profile"]
        notes.append(
            f"{path.name} is missing (notebook 06 writes it when it calibrates this server): "
            + (f"the prediction uses the built-in profile {fallback}, not a fit of this server." if fallback
               else "there is no prediction.")
        )  # fmt: skip
    if not P["predict_profile"]:
        return None
    profile = P["predict_profile"]
    return profile, {"profile": profile, "capacity": capacity_for(profile, P["sim_capacity"])}


def predicted_vs_measured(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per strategy: the measured knee (the first run) beside the calibrated simulator's (the prediction
    run), both as the interpolated SLO crossing, and the relative error; empty without a prediction run."""
    pred = next((r for r in runs if r.get("prediction")), None)
    if pred is None or not runs or runs[0] is pred:
        return []
    out = []
    measured, predicted = runs[0]["result"].knees, pred["result"].knees
    for strategy in measured:
        m, p = measured[strategy], predicted.get(strategy)
        mk = m.interpolated if m.interpolated is not None else m.level
        pk = None if p is None else (p.interpolated if p.interpolated is not None else p.level)
        err = None if mk in (None, 0) or pk is None else (pk - mk) / mk
        out.append({"strategy": strategy, "measured": mk, "predicted": pk, "error": err,
                    "measured_low": m.low, "measured_high": m.high})  # fmt: skip
    return out


MATTERS = 1.1


def _point(k: Any) -> float:
    return k.interpolated if k.interpolated is not None else (k.level or 0.0)


def _ranking(label: str, knees: dict[str, Any], unit: str) -> list[str]:
    """Which strategy serves the most load within the SLO, said only when its knee's 95% interval lies above
    every other's and the knee is at least 10% higher (MATTERS): the interval covers the sampling noise of
    one run, not the interpolation between levels nor the machine's own noise."""
    if len(knees) < 2:
        return []
    (best, kb), *rest = sorted(knees.items(), key=lambda item: _point(item[1]), reverse=True)
    clear = kb.ci_low is not None and all(
        k.ci_high is not None and kb.ci_low > k.ci_high and _point(kb) >= MATTERS * _point(k) for _, k in rest
    )
    points = ", ".join(f"{st} {_point(k):.3g}" for st, k in knees.items())
    if clear:
        return [f"{label}: {best} serves the most {unit} within the SLO (knees {points})."]
    return [
        f"{label}: no strategy serves clearly more {unit} within the SLO (knees {points}: their 95% "
        "intervals overlap or they differ by less than 10%)."
    ]


def conclude(runs: list[dict[str, Any]], s: LoadSettings, prediction: list[dict[str, Any]]) -> list[str]:
    """Sentences computed from the measured levels: which strategy serves most load within the SLO, from
    what load parallel stops paying, where the sweep stopped, and how far the prediction was off."""
    lines = []
    for run in runs:
        result: SweepResult = run["result"]
        knees = result.knees
        label = run["label"] + (" (calibrated simulator, prediction)" if run.get("prediction") else "")
        for strategy, knee in knees.items():
            lines.append(
                f"{label}, {strategy}: knee (p95 wall within {s.slo_s:g} s) {knee.describe(s.unit)}."
            )
        lines += _ranking(label, knees, s.unit)
        stops = result.parallel_stops_paying
        if "parallel" in knees and "sequential" in knees:
            lines.append(
                f"{label}: parallel stops paying (no goodput edge, median wall not 10% shorter) at "
                f"{stops:g} {s.unit}."
                if stops is not None
                else f"{label}: parallel kept an edge over sequential at every load both ran."
            )
        for strategy, why in result.stopped.items():
            lines.append(f"{label}: the {strategy} sweep stopped {why}.")
        g = result.generations
        if g["incomplete"]:
            lines.append(
                f"{label}: {g['incomplete']} of {g['measured']} measured generations were incomplete."
            )
    for p in prediction:
        if p["error"] is not None:
            lines.append(
                f"prediction ({p['strategy']}): knee {p['predicted']:.3g} predicted vs {p['measured']:.3g} "
                f"measured, error {100 * p['error']:+.0f}% ({'within' if abs(p['error']) <= 0.2 else 'outside'} "
                "the 20% goal)."
            )
        else:
            lines.append(f"prediction ({p['strategy']}): no crossing to compare (see the knees table).")
    return lines

"""Notebook 05: every strategy on several latency profiles, judged on four axes at once.

Parallel calls make a generation as slow as its slowest part, so which strategy "wins" depends on what is
asked: wall time, tail latency, time until the user sees something, or token cost. This module runs all
strategies as paired trials (same keys, so the simulator draws the same latencies for the same call), reduces
them to one row per (profile, strategy), marks the latency-vs-cost Pareto front and writes a conclusion that is
computed from those rows, never written in advance.

Every figure of a row (wall p50/p95, time to first visible part, tokens, cost) is computed over the
strategy's *complete* generations (all six parts delivered) and shown with ``complete`` = "n of N"; a row
with none complete has no figures and is not on the Pareto front. A profile where fewer than two strategies
(one, when only one was asked) have a complete generation has no comparison: the experiment is then not
``ok`` and the notebook fails with the reason. Times are model seconds for the simulator and wall-clock
seconds for a real endpoint (:func:`voorbeelden.backend.model_seconds_factor`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from voorbeelden.backend import model_seconds_factor, open_backend
from voorbeelden.begrippen import load_begrippen
from voorbeelden.experiments import stats
from voorbeelden.experiments.plots import _figure, _style
from voorbeelden.experiments.speedup import failure_reason, trials_per_profile, write_json
from voorbeelden.experiments.trials import TrialResults

NB05 = "05_strategies"


@dataclasses.dataclass
class StrategiesExperiment:
    results: TrialResults
    table: pd.DataFrame
    conclusion: list[str]
    backend: dict[str, Any]
    seconds: float
    ok: bool = True
    reason: str | None = None


def validate_params(P: Mapping[str, Any]) -> dict[str, Any]:
    """Check notebook 05's parameters with its model (:class:`voorbeelden.experiments.params.StrategiesParams`)."""
    from voorbeelden.experiments.params import StrategiesParams, problems_of

    P = dict(P)
    problems = problems_of(StrategiesParams, {k: v for k, v in P.items() if not k.startswith("backend_")})
    if problems:
        raise ValueError("bad parameters for notebook 05:\n  - " + "\n  - ".join(problems))
    return P


def _price(prices: Mapping[str, Mapping[str, float]], model: str) -> tuple[float, float]:
    entry = prices.get(model) or next(iter(prices.values()))
    return float(entry["in"]), float(entry["out"])


def strategies_experiment(P: Mapping[str, Any]) -> StrategiesExperiment:
    """Run every strategy in ``P['strategies']`` on every profile; write ``05_strategies.{jsonl,json}``."""
    from voorbeelden.config import GeneratorConfig
    from voorbeelden.strategies.context import LatencyHistory

    P = validate_params(P)
    t0 = time.monotonic()
    out_dir = Path(P["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / f"{NB05}.jsonl"
    jsonl.unlink(missing_ok=True)
    begrippen = load_begrippen(P["n_begrippen"])
    model = GeneratorConfig().settings(next(iter(_parts()))).model
    price_in, price_out = _price(P["prices"], model)
    with open_backend(
        P["backend"], profile=P["profiles"][0], time_scale=P["time_scale"], seed=P["seed"]
    ) as be:
        options = {
            "hedge_percentile": P.get("hedge_percentile", 90),
            "hedge_min_samples": 3,
            # before 3 latencies of a part are known: hedge after the uniform-2s median (in the backend's clock)
            "hedge_delay_s": 2.0 * be.clock_scale,
        }
        results = trials_per_profile(
            be,
            P,
            begrippen,
            jsonl,
            strategies=P["strategies"],
            scenario="strategies",
            k=P["k"],
            options=options,
            # the hedge percentile is learnt per profile
            per_profile=lambda: {"hedge_history": LatencyHistory()},
        )
        backend = be.describe()
    gens, recs = results.generations, results.records
    table = summarise(gens, recs, price_in=price_in, price_out=price_out)
    conclusion = conclude(table)
    reason = failure_reason(comparison_problems(table, len(P["strategies"])), gens[~gens["warmup"]])
    seconds = time.monotonic() - t0
    write_json(
        out_dir / f"{NB05}.json",
        {
            "notebook": NB05,
            "ok": reason is None,
            "reason": reason,
            "backend": backend,
            "params": dict(P),
            "model": model,
            "table": table.to_dict(orient="records"),
            "conclusion": conclusion,
            "seconds": seconds,
        },
    )
    return StrategiesExperiment(results, table, conclusion, backend, seconds, reason is None, reason)


def _parts() -> Sequence[Any]:
    from voorbeelden.types import ALL_PARTS

    return ALL_PARTS


def summarise(gens: pd.DataFrame, recs: pd.DataFrame, *, price_in: float, price_out: float) -> pd.DataFrame:
    """One row per (profile, strategy); figures over complete generations only (``n_complete`` of ``n``,
    also as the ``complete`` label), NaN when none completed. Times become model seconds through each row's
    ``time_scale`` tag (simulator) and stay wall-clock seconds for a real endpoint (tag ``None``)."""
    g = gens[~gens["warmup"]].copy() if "warmup" in gens else gens.copy()
    ts = g["time_scale"] if "time_scale" in g else pd.Series(None, index=g.index, dtype=object)
    factor = ts.map(lambda v: model_seconds_factor(None if v is None or v != v else float(v)))
    g["wall_model_s"] = g["wall_s"].astype(float) * factor
    g["first_visible_model_s"] = g["first_visible_s"].astype(float) * factor
    g["cost_usd"] = (g["tokens_in"] * price_in + g["tokens_out"] * price_out) / 1e6
    g["_complete"] = stats.is_complete(g)
    rows = []
    for (profile, strategy), every in g.groupby(["profile", "strategy"], sort=False):
        grp = every[every["_complete"]]
        extra = 0
        if "hedge" in recs:
            sel = recs[(recs["profile"] == profile) & (recs["strategy"] == strategy) & (recs["hedge"])]
            extra = len(sel)
        nan = float("nan")
        some = len(grp) > 0
        rows.append(
            {
                "profile": profile,
                "strategy": strategy,
                "n": len(every),
                "n_complete": len(grp),
                "complete": stats.n_of(len(grp), len(every)),
                "wall_p50_s": float(np.median(grp["wall_model_s"])) if some else nan,
                "wall_p95_s": float(np.percentile(grp["wall_model_s"], 95)) if some else nan,
                "first_visible_p50_s": float(np.nanmedian(grp["first_visible_model_s"]))
                if some and grp["first_visible_model_s"].notna().any()
                else None,
                "calls_per_gen": float(every["n_calls"].mean()),
                "backup_calls": int(extra),
                "tokens_in": float(grp["tokens_in"].mean()) if some else nan,
                "tokens_out": float(grp["tokens_out"].mean()) if some else nan,
                "cost_usd_per_gen": float(grp["cost_usd"].mean()) if some else nan,
                "completeness": float((every["n_ok"] / 6).mean()),
            }
        )
    table = pd.DataFrame(rows)
    table["pareto"] = False
    for _profile, grp in table.groupby("profile"):
        usable = grp[grp["n_complete"] > 0]
        if len(usable):
            table.loc[usable.index, "pareto"] = pareto_front(usable["cost_usd_per_gen"], usable["wall_p50_s"])
    return table


def comparison_problems(table: pd.DataFrame, n_strategies: int) -> list[str]:
    """One sentence per profile whose strategies cannot be compared: fewer than two of them (one, when
    only one was run) have a complete generation."""
    need = min(2, max(1, n_strategies))
    problems = []
    for profile, grp in table.groupby("profile", sort=False):
        usable = int((grp["n_complete"] > 0).sum())
        if usable < need:
            done = ", ".join(f"{r.strategy} {r.complete}" for r in grp.itertuples())
            problems.append(
                f"{profile}: {usable} of {len(grp)} strategies have a complete generation, so there is "
                f"nothing to compare (complete generations: {done})"
            )
    if table.empty:
        problems.append("no generation was measured")
    return problems


def pareto_front(cost: Sequence[float] | pd.Series, latency: Sequence[float] | pd.Series) -> list[bool]:
    """True where no other point is at least as cheap and as fast, and strictly better in one of the two."""
    c, lat = np.asarray(cost, float), np.asarray(latency, float)
    out = []
    for i in range(len(c)):
        dominated = np.any((c <= c[i]) & (lat <= lat[i]) & ((c < c[i]) | (lat < lat[i])))
        out.append(not bool(dominated))
    return out


def conclude(table: pd.DataFrame) -> list[str]:
    """Plain-language sentences, one per profile, computed from the table (only complete strategies count)."""
    lines = []
    for profile, grp in table.groupby("profile", sort=False):
        full = grp[grp["completeness"] >= 0.99]
        if full.empty:
            lines.append(f"{profile}: no strategy delivered all parts; see the completeness column.")
            continue

        def best(col: str, full: pd.DataFrame = full) -> pd.Series:
            return full.loc[full[col].astype(float).idxmin()]

        seq = grp[grp["strategy"] == "sequential"]
        wall = best("wall_p50_s")
        tail = best("wall_p95_s")
        cheap = best("cost_usd_per_gen")
        text = (
            f"{profile}: fastest median wall time is {wall['strategy']} ({wall['wall_p50_s']:.1f} s"
            + (
                f", {float(seq['wall_p50_s'].iloc[0]) / wall['wall_p50_s']:.1f}x sequential"
                if not seq.empty
                else ""
            )
            + f"); best tail (p95) is {tail['strategy']} ({tail['wall_p95_s']:.1f} s); "
            f"cheapest is {cheap['strategy']} (${cheap['cost_usd_per_gen'] * 1000:.2f} per 1,000 generations)"
        )
        if full["first_visible_p50_s"].notna().any():
            vis = full.loc[full["first_visible_p50_s"].astype(float).idxmin()]
            text += (
                f"; first part visible soonest with {vis['strategy']} ({vis['first_visible_p50_s']:.1f} s)"
            )
        front = ", ".join(grp.loc[grp["pareto"], "strategy"])
        lines.append(text + f". Pareto front (latency vs cost): {front}.")
    return lines


def _profile_panels(table: pd.DataFrame) -> tuple[Figure, list[tuple[Any, str, pd.DataFrame]]]:
    """A figure with one panel per profile (in table order): (axes, profile, that profile's rows)."""
    profiles = list(dict.fromkeys(table["profile"]))
    fig = _figure(5.0 * len(profiles), 4.4)
    axes = fig.subplots(1, len(profiles), squeeze=False)[0]
    rows = [table[table["profile"] == p].reset_index(drop=True) for p in profiles]
    return fig, list(zip(axes, profiles, rows, strict=True))


def plot_pareto(table: pd.DataFrame) -> Figure:
    """Median wall time against cost per generation, one panel per profile, the Pareto front joined."""
    fig, panels = _profile_panels(table)
    for ax, profile, grp in panels:
        cost = grp["cost_usd_per_gen"] * 1000
        ax.scatter(cost, grp["wall_p50_s"], s=60, color="#457b9d", zorder=3)
        for _, row in grp.iterrows():
            if not row["n_complete"]:
                continue  # no complete generation: no point to draw
            ax.annotate(
                f"{row['strategy']} ({row['complete']})",
                (row["cost_usd_per_gen"] * 1000, row["wall_p50_s"]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=9,
            )
        front = grp[grp["pareto"]].sort_values("cost_usd_per_gen")
        _ = ax.plot(
            front["cost_usd_per_gen"] * 1000, front["wall_p50_s"], "-o", color="#e63946", label="Pareto front"
        )
        ax.set_title(profile)
        ax.set_xlabel("cost per 1,000 generations (USD, complete generations)")
        ax.set_ylabel("median wall time (s, complete generations)")
        ax.legend(loc="upper right", fontsize=8)
        _style(ax)
    fig.suptitle("Latency vs cost per strategy (lower left is better)")
    return fig


def plot_axes(table: pd.DataFrame) -> Figure:
    """Wall p50/p95 and time to first visible part per strategy, one panel per profile."""
    fig, panels = _profile_panels(table)
    for ax, profile, grp in panels:
        y = np.arange(len(grp))
        _ = ax.barh(y - 0.25, grp["wall_p50_s"], height=0.25, color="#457b9d", label="wall p50")
        _ = ax.barh(y, grp["wall_p95_s"], height=0.25, color="#a8dadc", label="wall p95")
        vis = grp["first_visible_p50_s"].astype(float).fillna(0)
        _ = ax.barh(y + 0.25, vis, height=0.25, color="#f4a261", label="first part visible p50")
        ax.set_yticks(y, [f"{r.strategy}\n{r.complete} complete" for r in grp.itertuples()])
        ax.invert_yaxis()
        ax.set_xlabel("seconds (model s for the simulator), complete generations")
        ax.set_title(profile)
        ax.legend(loc="lower right", fontsize=8)
        _style(ax)
    fig.suptitle("Wall time and time to first visible part per strategy")
    return fig

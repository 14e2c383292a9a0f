"""The numbers a benchmark reports: percentiles, paired speedups with a bootstrap CI, and the bounds they are
compared to.

Two bounds sit beside every measured speedup:

* the per-trial bound ``sum of latencies / max latency`` of the calls a trial actually made (what perfect
  overlap would have given for exactly those draws), and
* the expected bound ``E[sum] / E[max]`` of the profile's six latency distributions, by Monte Carlo.
  With random latencies ``E[max of 6]`` is well above the mean, so "6x" needs six *equal* calls.

``efficiency = measured median speedup / bound``: how much of the possible overlap the client realised.

Completeness: a generation is *complete* when all six parts were delivered (``n_failed == 0``). Speedups,
wall-time percentiles and overheads are computed over complete generations (pairs: both sides complete)
only, and every table carries the count it used beside the count it had (``n`` / ``n_total``,
``n_pairs`` / ``n_pairs_total``), because a fast failure is not a fast generation. The fault summary is the
one place that is explicitly over all generations (its subject is what faults do to completeness); its
columns say so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from voorbeelden.experiments.retries import predicted_delivery
from voorbeelden.types import ALL_PARTS

ALL_PARTS_VALUES: tuple[str, ...] = tuple(p.value for p in ALL_PARTS)

# Fault kinds a failed attempt is retried on (HTTP 5xx, 429, a dropped connection, a hang cut by the
# call timeout); for these, with per-attempt fault probability p and r retries, a part is delivered with
# probability 1 - p**(r + 1).
RETRYABLE_KINDS: tuple[str, ...] = ("500", "503", "429", "drop", "hang")


def _measured(gens: pd.DataFrame) -> pd.DataFrame:
    return gens[~gens["warmup"].astype(bool)] if "warmup" in gens else gens


def is_complete(gens: pd.DataFrame) -> pd.Series:
    """True for generations that delivered all six parts (no part lost)."""
    if "n_failed" not in gens:
        return pd.Series(True, index=gens.index)
    return gens["n_failed"].fillna(1).astype(int) == 0


def n_of(n: int, total: int) -> str:
    """Completeness as it is shown beside a figure: ``"3 of 4"``."""
    return f"{int(n)} of {int(total)}"


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., Any] = np.median,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat`` (called with ``axis=1``), with a seeded numpy generator."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boots = stat(x[idx], axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def wall_summary(gens: pd.DataFrame, by: Sequence[str] = ("strategy",)) -> pd.DataFrame:
    """Median, p95 and mean wall time (s) per group over complete generations (warm-up excluded); ``n`` is
    how many were complete, ``n_total`` how many ran. A group with none complete has NaN figures."""
    g = _measured(gens).copy()
    g["_complete"] = is_complete(g)
    return _complete_figures(g, by, "wall_s", "s", with_mean=True)


def _complete_figures(
    g: pd.DataFrame, by: Sequence[str], column: str, unit: str, *, with_mean: bool = False
) -> pd.DataFrame:
    """Per group of ``g`` (which has a ``_complete`` column): n complete of n_total, and the median, p95 (and
    mean) of ``column`` over the complete rows only; NaN where none is complete."""
    stats = ["median", "p95", *(["mean"] if with_mean else [])]
    rows = []
    for key, df in g.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        done = df.loc[df["_complete"], column].astype(float)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row.update(n=len(done), n_total=len(df), complete=n_of(len(done), len(df)))
        figures = {"median": done.median, "p95": lambda d=done: np.percentile(d, 95), "mean": done.mean}
        for name in stats:
            row[f"{name}_{unit}"] = float(figures[name]()) if len(done) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "n", "n_total", "complete", *(f"{s}_{unit}" for s in stats)])


def paired_speedups(
    gens: pd.DataFrame,
    *,
    baseline: str = "sequential",
    other: str = "parallel",
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per pair (same begrip, trial and tags): both walls, ``speedup = baseline wall / other wall``,
    the per-trial bound ``sum / max`` of the baseline's call latencies, and ``complete`` (both sides
    delivered all six parts). Incomplete pairs are kept, marked, so their number can be reported; the
    summary uses only complete ones."""
    g = _measured(gens).copy()
    g["complete"] = is_complete(g)
    keys = [*by, "pair"]
    base = g[g["strategy"] == baseline].set_index(keys)
    oth = g[g["strategy"] == other].set_index(keys)
    left = base[["wall_s", "sum_latency_s", "max_latency_s", "begrip", "trial", "complete"]].rename(
        columns={"wall_s": "wall_base_s", "complete": "complete_base"}
    )
    right = oth[["wall_s", "sum_latency_s", "max_latency_s", "complete"]].rename(
        columns={
            "wall_s": "wall_other_s",
            "sum_latency_s": "sum_latency_s_other",
            "max_latency_s": "max_latency_s_other",
            "complete": "complete_other",
        }
    )
    joined = left.join(right, how="inner")
    joined["complete"] = joined["complete_base"].astype(bool) & joined["complete_other"].astype(bool)
    joined["speedup"] = joined["wall_base_s"] / joined["wall_other_s"]
    joined["trial_bound"] = joined["sum_latency_s"] / joined["max_latency_s"]
    return joined.reset_index()


def speedup_summary(
    pairs: pd.DataFrame,
    by: Sequence[str] = (),
    *,
    n_boot: int = 2000,
    seed: int = 0,
    expected: Mapping[Any, float] | None = None,
) -> pd.DataFrame:
    """Per group, over *complete* pairs only: median paired speedup with its bootstrap 95% CI, the median
    per-trial bound, the expected bound (``expected[group]`` when given) and efficiency = speedup / bound.
    ``n_pairs`` is the number of complete pairs used, ``n_pairs_total`` the number run; with no complete
    pair every figure is NaN (never a speedup of failures)."""
    rows = []
    groups = pairs.groupby(list(by), sort=False) if by else [((), pairs)]
    for key, all_pairs in groups:
        key = key if isinstance(key, tuple) else (key,)
        df = all_pairs[all_pairs["complete"].astype(bool)] if "complete" in all_pairs else all_pairs
        lo, hi = bootstrap_ci(df["speedup"], n_boot=n_boot, seed=seed)
        row = dict(zip(by, key, strict=True))
        med = float(df["speedup"].median()) if len(df) else float("nan")
        bound = float(df["trial_bound"].median()) if len(df) else float("nan")
        exp = None
        if expected is not None:
            exp = expected.get(key[0] if len(key) == 1 else key)
        row.update(
            n_pairs=len(df),
            n_pairs_total=len(all_pairs),
            pairs_complete=n_of(len(df), len(all_pairs)),
            speedup_median=med,
            ci_low=lo,
            ci_high=hi,
            trial_bound_median=bound,
            expected_bound=float(exp) if exp is not None else float("nan"),
            efficiency=med / bound if bound and np.isfinite(bound) else float("nan"),
            wall_base_median_s=float(df["wall_base_s"].median()) if len(df) else float("nan"),
            wall_other_median_s=float(df["wall_other_s"].median()) if len(df) else float("nan"),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def overhead(gens: pd.DataFrame, by: Sequence[str] = ("strategy",)) -> pd.DataFrame:
    """Client-side cost beyond the calls themselves, per group, over complete generations: for a sequential
    run wall - sum of latencies, for any concurrent one wall - max latency (median and p95, in ms)."""
    g = _measured(gens).copy()
    g["_complete"] = is_complete(g)
    ideal = np.where(g["strategy"] == "sequential", g["sum_latency_s"], g["max_latency_s"])
    g["overhead_ms"] = (g["wall_s"] - ideal) * 1000
    return _complete_figures(g, by, "overhead_ms", "ms")


def headline_problems(summary: pd.DataFrame, label: str = "profile") -> list[str]:
    """Why a speedup table cannot be a headline: one sentence per group without a complete pair."""
    problems = []
    for row in summary.to_dict(orient="records"):
        if not row.get("n_pairs"):
            problems.append(
                f"{row.get(label, 'all')}: no complete sequential/parallel pair "
                f"({n_of(0, row.get('n_pairs_total', 0))} pairs complete), so no speedup"
            )
    if summary.empty:
        problems.append("no sequential/parallel pair was measured")
    return problems


def common_errors(gens: pd.DataFrame, limit: int = 2) -> list[str]:
    """The most frequent part errors of a set of generations, as ``"n x error"`` (for a failure's reason)."""
    counts: dict[str, int] = {}
    for errors in gens.get("errors", pd.Series(dtype=object)):
        if isinstance(errors, Mapping):
            for text in errors.values():
                short = str(text).split(" (after ", 1)[0]
                counts[short] = counts.get(short, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return [f"{n} x {text}" for text, n in top]


def expected_bound(
    profile: str | Any,
    *,
    n: int = 4000,
    seed: int = 0,
    max_tokens: int | Mapping[str, int | None] | None = None,
    parts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Monte Carlo ``E[sum]``, ``E[max]`` and ``bound = E[sum] / E[max]`` of one draw of each part's
    service time (unscaled seconds) from ``PROFILES[profile].sample_service_s``. ``max_tokens`` is one cap
    or a cap per part (as the generator sends them)."""
    if isinstance(profile, str):
        from voorbeelden.sim import PROFILES

        prof = PROFILES[profile]
    else:
        prof = profile
    names = list(parts) if parts is not None else [p.value for p in ALL_PARTS]
    rng = np.random.default_rng(seed)
    draws = np.empty((n, len(names)))
    for j, part in enumerate(names):
        cap = max_tokens.get(part) if isinstance(max_tokens, Mapping) else max_tokens
        for i in range(n):
            draws[i, j] = prof.sample_service_s(part, rng, cap)
    sums = draws.sum(axis=1)
    maxes = draws.max(axis=1)
    return {
        "profile": getattr(prof, "name", str(profile)),
        "n": n,
        "e_sum_s": float(sums.mean()),
        "e_max_s": float(maxes.mean()),
        "bound": float(sums.mean() / maxes.mean()),
        "part_mean_s": {p: float(draws[:, j].mean()) for j, p in enumerate(names)},
        "slowest_part": names[int(np.argmax(draws.mean(axis=0)))],
    }


def fault_summary(
    gens: pd.DataFrame,
    *,
    max_retries: int,
    by: Sequence[str] = ("fault_kind", "fault_rate"),
) -> pd.DataFrame:
    """Per fault kind and rate: fraction of parts delivered, complete generations (``n_complete`` of ``n``),
    retries per generation, wall median/p95 and the prediction ``1 - p**(retries+1)`` for retryable kinds
    (NaN otherwise). Explicitly over *all* generations, incomplete ones included (``wall_over == "all"``):
    what faults cost in wall time is part of what this table measures."""
    g = _measured(gens)
    n_parts = len(ALL_PARTS)
    rows = []
    for key, df in g.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        kind = str(row.get("fault_kind", ""))
        rate = float(row.get("fault_rate", 0.0))
        row.update(
            n=len(df),
            n_complete=int(is_complete(df).sum()),
            parts_delivered=float(df["n_ok"].sum() / (n_parts * len(df))),
            complete=float(is_complete(df).mean()),
            retries_per_gen=float((df["n_calls"] - n_parts).clip(lower=0).mean()),
            wall_median_s=float(df["wall_s"].median()),
            wall_p95_s=float(np.percentile(df["wall_s"], 95)),
            predicted=predicted_delivery(rate, max_retries, kind)
            if kind in RETRYABLE_KINDS
            else float("nan"),
            retryable=kind in RETRYABLE_KINDS,
            wall_over="all",
        )
        rows.append(row)
    return pd.DataFrame(rows)

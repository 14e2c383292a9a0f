"""Three ways to send N terms x 6 calls into a rate-limited endpoint, measured at the endpoint.

(a) ``naive``: every term started at once (``asyncio.gather`` of everything); the only brake is the
    connection pool (1,000, the openai SDK default) and the generator's retries.
(b) ``semaphore``: a fixed cap of ``semaphore_k`` calls in flight, the usual first fix.
(c) ``adaptive``: the batch gate: the rate limiter (told the limit) plus AIMD concurrency.
(d) ``untold``: the same gate *not* told the limit: AIMD on 429s, plus pauses from ``retry-after`` and from
    ``x-ratelimit-remaining-requests: 0`` (the endpoint's own headers).

Each strategy gets a fresh simulator process (a full bucket, zeroed counters) with the same limits and seed,
and the figures come from the simulator's own counters where they can: the requests it accepted (their
times give the throughput over time) and the 429s it sent. Notebook 04 is a thin layer over this module.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voorbeelden.backend import PLACEHOLDER_KEY
from voorbeelden.batch.adaptive import AdaptiveConcurrency
from voorbeelden.batch.limiter import RateLimiter
from voorbeelden.batch.runner import BatchSummary, generate_many
from voorbeelden.batch.transport import GatedTransport
from voorbeelden.bench.data import distinct_requests

__all__ = [
    "STRATEGY_NAMES",
    "ScaleParams",
    "StrategyResult",
    "plot_results",
    "run_comparison",
    "validate_params",
]

STRATEGY_NAMES = ("naive", "semaphore", "adaptive", "untold")


@dataclass(frozen=True)
class ScaleParams:
    """The notebook's parameters, validated (times are simulated; ``time_scale`` maps them to real time)."""

    n_terms: int = 12
    profile: str = "definitie-app"
    time_scale: float = 0.01
    rpm: float = 300.0
    tpm: float | None = 400_000.0
    semaphore_k: int = 64
    max_in_flight: int = 256
    strategies: tuple[str, ...] = STRATEGY_NAMES
    seed: int = 0
    out_dir: str = ""

    @property
    def window_s(self) -> float:
        """The real length of the simulator's one-minute window."""
        return 60.0 * self.time_scale

    @property
    def limit_calls_per_s(self) -> float:
        return self.rpm / self.window_s


def validate_params(**raw: Any) -> ScaleParams:
    """Check types and ranges with notebook 04's model before any work (papermill does not check them)."""
    from voorbeelden.bench.params import ScaleParams as Model
    from voorbeelden.bench.params import default_out_dir, problems_of

    problems = problems_of(Model, raw)
    if problems:
        raise ValueError("invalid parameters for 04_scale_and_rate_limits:\n  - " + "\n  - ".join(problems))
    m = Model.model_validate(raw)
    return ScaleParams(
        n_terms=m.n_terms,
        profile=m.profile,
        time_scale=m.time_scale,
        rpm=m.rpm,
        tpm=m.tpm,
        semaphore_k=m.semaphore_k,
        max_in_flight=m.max_in_flight,
        strategies=tuple(m.strategies),
        seed=m.seed,
        out_dir=m.out_dir or str(default_out_dir()),
    )


@dataclass
class StrategyResult:
    """One strategy's run, with the simulator's view (accepted times, 429s) and the batch's."""

    strategy: str
    terms: int
    wall_s: float
    accepted: int
    sent_429: int
    requests_total: int
    retries: int
    parts_lost: int
    terms_incomplete: int
    p95_term_s: float | None
    share_of_limit: float
    share_while_sending: float
    peak_in_flight: int
    accepted_offsets_s: list[float] = field(repr=False, default_factory=list)
    limit_history: list[tuple[float, float]] = field(repr=False, default_factory=list)

    def row(self, time_scale: float) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("accepted_offsets_s", "limit_history")}
        d["p95_term_sim_s"] = None if self.p95_term_s is None else self.p95_term_s / time_scale
        return d


def _transport(strategy: str, p: ScaleParams) -> GatedTransport:
    if strategy == "naive":
        # A pass-through (no limits, no pauses) that only counts; 1,000 connections like the openai default.
        from voorbeelden.transport import AiohttpTransport

        return GatedTransport(AiohttpTransport(limit=1000), learn_from_headers=False)
    if strategy == "semaphore":
        fixed = AdaptiveConcurrency(initial=p.semaphore_k, max_limit=p.semaphore_k, adaptive=False)
        return GatedTransport(concurrency=fixed, learn_from_headers=False)
    if strategy == "untold":
        return GatedTransport(concurrency=AdaptiveConcurrency(initial=16, max_limit=p.max_in_flight))
    return GatedTransport(
        limiter=RateLimiter(p.rpm, p.tpm, period=p.window_s),
        concurrency=AdaptiveConcurrency(initial=16, max_limit=p.max_in_flight),
    )


def run_strategy(strategy: str, p: ScaleParams) -> StrategyResult:
    """One strategy against a fresh simulator process with the limits of ``p``."""
    from voorbeelden.sim import SimConfig, running_simulator
    from voorbeelden.syncrun import run_sync

    cfg = SimConfig(profile=p.profile, time_scale=p.time_scale, seed=p.seed, rpm=p.rpm, tpm=p.tpm)
    transport = _transport(strategy, p)
    with running_simulator(cfg, process=True) as sim:
        t0 = time.monotonic()
        summary: BatchSummary = run_sync(
            generate_many(
                distinct_requests(p.n_terms),
                base_url=sim.base_url,
                api_key=PLACEHOLDER_KEY,
                transport=transport,
                terms_in_flight=p.n_terms if strategy == "naive" else None,
                max_in_flight=p.semaphore_k if strategy == "semaphore" else p.max_in_flight,
                progress=False,
            )
        )
        counters = sim.counters()
    accepted = sorted(t - t0 for t in counters["accepted_times"])
    limit = p.limit_calls_per_s
    span = (accepted[-1] - accepted[0] + 1 / limit) if accepted else 0.0
    history = []
    if transport.concurrency is not None:
        history = [(h.t - t0, h.effective) for h in transport.concurrency.history]
    return StrategyResult(
        strategy=strategy,
        terms=p.n_terms,
        wall_s=summary.wall_s,
        accepted=len(accepted),
        sent_429=int(counters["sent_429"]),
        requests_total=int(counters["requests_total"]),
        retries=int(summary.gate.get("retries", 0)),
        parts_lost=summary.parts_lost,
        terms_incomplete=summary.failed,
        p95_term_s=summary.p95_term_s(),
        share_of_limit=len(accepted) / (limit * summary.wall_s) if summary.wall_s > 0 else 0.0,
        share_while_sending=len(accepted) / (limit * span) if span > 0 else 0.0,
        peak_in_flight=int(counters["peak_in_flight"]),
        accepted_offsets_s=accepted,
        limit_history=history,
    )


def run_comparison(p: ScaleParams) -> list[StrategyResult]:
    """Every strategy in ``p.strategies`` in turn; writes ``04_scale_summary.json`` to ``p.out_dir``."""
    results = [run_strategy(s, p) for s in p.strategies]
    if p.out_dir:
        out = Path(p.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = {
            "params": asdict(p),
            "limit_calls_per_s": p.limit_calls_per_s,
            "results": [r.row(p.time_scale) for r in results],
        }
        (out / "04_scale_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return results


def share_over_time(
    r: StrategyResult, p: ScaleParams, bin_s: float | None = None
) -> tuple[list[float], list[float]]:
    """Accepted requests per bin (one simulated minute by default) as a share of the limit."""
    bin_s = bin_s or p.window_s
    if not r.accepted_offsets_s:
        return [], []
    n_bins = max(1, math.ceil(max(r.wall_s, r.accepted_offsets_s[-1]) / bin_s))
    counts = [0] * n_bins
    for t in r.accepted_offsets_s:
        counts[min(n_bins - 1, max(0, int(t // bin_s)))] += 1
    per_bin = p.limit_calls_per_s * bin_s
    return [(i + 0.5) * bin_s for i in range(n_bins)], [c / per_bin for c in counts]


def plot_results(results: list[StrategyResult], p: ScaleParams) -> list[Path]:
    """Throughput over time, the cost bars and the adaptive limit; PNGs into ``p.out_dir`` (if set)."""
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    out = Path(p.out_dir) if p.out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9, 4))
    for r in results:
        xs, ys = share_over_time(r, p)
        ax.step(xs, ys, where="mid", label=f"{r.strategy} (overall {r.share_of_limit:.0%})")
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="limit")
    ax.set_xlabel("real seconds since start")
    ax.set_ylabel("accepted requests / limit (per simulated minute)")
    ax.set_title(
        f"{p.n_terms} terms x 6 calls, rpm {p.rpm:g}, profile {p.profile}, time_scale {p.time_scale:g}"
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    if out:
        paths.append(out / "04_scale_throughput.png")
        fig.savefig(paths[-1], dpi=110)

    fig2, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    metrics = [
        ("sent_429", "429s sent by the endpoint"),
        ("retries", "retries"),
        ("parts_lost", "parts lost"),
        ("p95_term_s", "p95 per term (real s)"),
    ]
    names = [r.strategy for r in results]
    for ax2, (key, title) in zip(axes, metrics, strict=True):
        values = [getattr(r, key) or 0 for r in results]
        ax2.bar(names, values, color=["#c44", "#e93", "#3a6", "#369"][: len(names)])
        ax2.set_title(title, fontsize=10)
        ax2.tick_params(axis="x", labelsize=8)
    fig2.tight_layout()
    if out:
        paths.append(out / "04_scale_costs.png")
        fig2.savefig(paths[-1], dpi=110)

    adaptive = [r for r in results if r.limit_history]
    if adaptive:
        fig3, ax3 = plt.subplots(figsize=(9, 3))
        for r in adaptive:
            xs = [t for t, _ in r.limit_history]
            ys = [v for _, v in r.limit_history]
            ax3.step(
                xs,
                ys,
                where="post",
                label=f"{r.strategy}: concurrency limit in force (AIMD, capped at rate x latency)",
            )
        ax3.set_xlabel("real seconds since start")
        ax3.set_ylabel("concurrency limit")
        ax3.legend()
        fig3.tight_layout()
        if out:
            paths.append(out / "04_scale_concurrency.png")
            fig3.savefig(paths[-1], dpi=110)
    plt.close("all")
    return paths

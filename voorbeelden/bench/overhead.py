"""How much does orchestration cost, and what does parallelism really buy?

Two questions, answered against the simulator in its own process (so server work does not compete with the
client for one GIL):

* overhead: parallel wall time / slowest call latency, per generation. 1.00 means the strategy adds nothing
  on top of the call it must wait for anyway; the goal is <= 1.02.
* paired speedup: sequential wall / parallel wall on the same draws (same ``sim_key``), beside the bound
  sum/max of the call latencies: parallelism can never beat waiting for the slowest part.

One client serves every generation, created inside the benchmark's event loop, and the first generations are
warm-up (connection set-up, lazy imports) and excluded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, StrictBool

from voorbeelden.backend import make_client
from voorbeelden.config import GeneratorConfig
from voorbeelden.experiments.params import Float, Int
from voorbeelden.generator import generate
from voorbeelden.syncrun import run_sync
from voorbeelden.types import Generation

REQUEST = {
    "begrip": "besluit",
    "definitie": "Een schriftelijke beslissing van een bestuursorgaan, inhoudende een publiekrechtelijke rechtshandeling.",
    "context": {"organisatorisch": ["Gemeente"], "juridisch": ["Bestuursrecht"], "wettelijk": []},
}


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        arr = np.asarray(values, dtype=float)
        return cls(
            len(arr), float(np.median(arr)), float(np.percentile(arr, 95)), float(arr.min()), float(arr.max())
        )


@dataclass(frozen=True)
class SpeedupResult:
    profile: str
    time_scale: float
    speedup: Summary
    bound: Summary
    efficiency: Summary  # speedup / bound: how much of the attainable speedup was realised
    parallel_wall_s: Summary
    sequential_wall_s: Summary


@dataclass(frozen=True)
class OverheadResult:
    profile: str
    time_scale: float
    overhead: Summary
    excess_ms: Summary  # wall minus slowest call, in milliseconds
    start_spread_ms: Summary  # last call start minus first: request building is serial on one thread
    parallel_wall_s: Summary
    slowest_call_s: Summary
    speedups: list[SpeedupResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _generations(
    base_url: str, plan: list[tuple[str, str]], config: GeneratorConfig
) -> list[Generation]:
    client = make_client(base_url, None)
    async with client:
        return [
            await generate(
                REQUEST,
                strategy,
                client=client,
                config=config,
                sim_key=key,
                simulator=True,  # its own simulator: no /health question per generation
                scenario="bench overhead",
            )
            for strategy, key in plan
        ]


def _overhead(base_url: str, n: int, warmup: int, config: GeneratorConfig) -> list[Generation]:
    plan = [("parallel", f"ovh-{i}") for i in range(warmup + n)]
    return run_sync(_generations(base_url, plan, config))[warmup:]


def _paired(
    base_url: str, pairs: int, warmup: int, config: GeneratorConfig
) -> list[tuple[Generation, Generation]]:
    # Alternate the order within pairs so neither strategy always runs on a just-warmed connection.
    plan: list[tuple[str, str]] = []
    for i in range(warmup + pairs):
        order = ("sequential", "parallel") if i % 2 == 0 else ("parallel", "sequential")
        plan += [(s, f"pair-{i}") for s in order]
    gens = run_sync(_generations(base_url, plan, config))[2 * warmup :]
    by_key: dict[str, dict[str, Generation]] = {}
    for g, (strategy, key) in zip(gens, plan[2 * warmup :], strict=True):
        by_key.setdefault(key, {})[strategy] = g
    return [(d["sequential"], d["parallel"]) for d in by_key.values()]


class OverheadParams(BaseModel):
    """The benchmark's settings, checked once (the CLI reports the problems of bad ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generations: Int(1) = 30  # parallel generations for the overhead
    time_scale: Float(gt=0.0) = 0.1  # of the overhead runs (uniform-2s)
    pairs: Int(1) = 8  # paired generations per profile for the speedups
    speedup_time_scale: Float(gt=0.0) = 0.05
    warmup: Int(0) = 2  # generations run first and excluded
    process: StrictBool = True  # the simulator in its own process (False: shares this one's GIL)


def run_benchmark(params: OverheadParams | None = None, /, **changes: Any) -> OverheadResult:
    """Run the benchmark with ``params`` (default :class:`OverheadParams`), any field changed by keyword."""
    from voorbeelden.sim import SimConfig, running_simulator

    P = OverheadParams.model_validate({**(params or OverheadParams()).model_dump(), **changes})

    config = GeneratorConfig(call_timeout_s=120.0)
    with running_simulator(
        SimConfig(profile="uniform-2s", time_scale=P.time_scale), process=P.process
    ) as sim:
        gens = _overhead(sim.base_url, P.generations, P.warmup, config)
        bad = [g for g in gens if not g.complete]
        if bad:
            raise RuntimeError(f"{len(bad)} overhead generations failed: {bad[0].errors}")
        speedups = []
        for profile in ("uniform-2s", "definitie-app"):
            sim.configure(profile=profile, time_scale=P.speedup_time_scale)
            paired = _paired(sim.base_url, P.pairs, 1, config)
            speed = [s.wall_s / p.wall_s for s, p in paired]
            bound = [s.sum_latency_s / s.max_latency_s for s, _ in paired]
            speedups.append(
                SpeedupResult(
                    profile=profile,
                    time_scale=P.speedup_time_scale,
                    speedup=Summary.of(speed),
                    bound=Summary.of(bound),
                    efficiency=Summary.of([a / b for a, b in zip(speed, bound, strict=True)]),
                    parallel_wall_s=Summary.of([p.wall_s for _, p in paired]),
                    sequential_wall_s=Summary.of([s.wall_s for s, _ in paired]),
                )
            )
    return OverheadResult(
        profile="uniform-2s",
        time_scale=P.time_scale,
        overhead=Summary.of([g.wall_s / g.max_latency_s for g in gens]),
        excess_ms=Summary.of([(g.wall_s - g.max_latency_s) * 1000 for g in gens]),
        start_spread_ms=Summary.of([_start_spread_s(g) * 1000 for g in gens]),
        parallel_wall_s=Summary.of([g.wall_s for g in gens]),
        slowest_call_s=Summary.of([g.max_latency_s for g in gens]),
        speedups=speedups,
    )


def _start_spread_s(gen: Generation) -> float:
    starts = [r.t_start for r in gen.records]
    return max(starts) - min(starts)


def render(result: OverheadResult) -> str:
    o = result.overhead
    lines = [
        f"orchestration overhead (parallel wall / slowest call), {result.profile} at time_scale "
        f"{result.time_scale:g}, {o.n} generations, simulator in its own process:",
        f"  median {o.median:.4f}  p95 {o.p95:.4f}  max {o.max:.4f}  (goal <= 1.02)",
        f"  median wall {result.parallel_wall_s.median * 1000:.1f} ms, slowest call "
        f"{result.slowest_call_s.median * 1000:.1f} ms, excess {result.excess_ms.median:.1f} ms "
        f"(p95 {result.excess_ms.p95:.1f}), of which start spread {result.start_spread_ms.median:.1f} ms",
        "",
        "paired speedup sequential/parallel (same sim_key draws) beside the bound sum/max:",
        f"  {'profile':<15}{'scale':>7}{'pairs':>7}{'speedup med':>13}{'p95':>8}{'bound med':>11}{'efficiency':>12}",
    ]
    for s in result.speedups:
        lines.append(
            f"  {s.profile:<15}{s.time_scale:>7g}{s.speedup.n:>7}{s.speedup.median:>13.2f}{s.speedup.p95:>8.2f}"
            f"{s.bound.median:>11.2f}{s.efficiency.median:>12.3f}"
        )
    return "\n".join(lines)

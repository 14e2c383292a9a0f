"""Which HTTP layer should carry every call: aiohttp under the SDK (:mod:`voorbeelden.transport`) or the
SDK's own ``httpx2`` pool?

The package has one client factory (:func:`voorbeelden.backend.make_client`) over one transport; this
benchmark is how that one was chosen, and how to check the choice again after an upgrade of openai, httpx2
or aiohttp. Both candidates run the same two workloads against a simulator in its own process (so server
work does not compete with the client for one GIL), each candidate on a fresh simulator, in alternating
order over ``rounds`` rounds so neither always runs on a warmer machine:

* generations: ``parallel`` generations of six calls each (profile uniform-2s), measured as the
  generation's wall time over its slowest call (1.00: the client adds nothing to the call it must wait
  for), summarised at the median and p95 with the number of generations;
* a burst: ``calls`` chat completions sent at once over a warmed pool (the fidelity benchmark's
  measurement), summarised as the wall time of the burst and observed minus scheduled latency per call
  (median, p95, max).

The figures go into ``docs/TRANSPORT.md`` with the command, the date and the commit, never into code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, StrictBool

from voorbeelden.backend import PLACEHOLDER_KEY, make_client
from voorbeelden.bench.fidelity import measure
from voorbeelden.config import GeneratorConfig
from voorbeelden.experiments.params import Float, Int
from voorbeelden.generator import generate
from voorbeelden.sim import SimConfig, running_simulator
from voorbeelden.syncrun import run_sync

CANDIDATES: tuple[str, ...] = ("aiohttp", "httpx")
REQUEST = {"begrip": "besluit", "definitie": "Een schriftelijke beslissing van een bestuursorgaan."}


def candidate_http_client(name: str, limit: int) -> Any:
    """The ``http_client`` of one candidate, both sized to ``limit`` connections: ``aiohttp`` is this
    package's transport under the SDK's client, ``httpx`` the SDK's default client with its own pool."""
    import httpx2
    import openai

    from voorbeelden.transport import http_client

    if name == "aiohttp":
        return http_client(limit=limit)
    if name == "httpx":
        limits = httpx2.Limits(max_connections=limit, max_keepalive_connections=limit)
        return openai.DefaultAsyncHttpxClient(limits=limits)
    raise ValueError(f"transport must be one of {', '.join(CANDIDATES)}, got {name!r}")


@dataclass(frozen=True)
class Spread:
    """n values at their median, p95 and max (the figures docs/TRANSPORT.md quotes)."""

    n: int
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            nan = float("nan")
            return cls(0, nan, nan, nan)
        arr = np.asarray(values, dtype=float)
        return cls(len(arr), float(np.median(arr)), float(np.percentile(arr, 95)), float(arr.max()))


@dataclass
class CandidateResult:
    transport: str
    generations_ok: int = 0
    generations_failed: int = 0
    wall_over_slowest: list[float] = field(default_factory=list)
    excess_ms: list[float] = field(default_factory=list)  # wall minus slowest call
    burst_calls: int = 0
    burst_errors: int = 0
    burst_wall_s: list[float] = field(default_factory=list)  # one per round
    burst_error_ms: list[float] = field(default_factory=list)  # observed - scheduled, every call

    def summary(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "generations": {"ok": self.generations_ok, "failed": self.generations_failed},
            "wall_over_slowest": asdict(Spread.of(self.wall_over_slowest)),
            "excess_ms": asdict(Spread.of(self.excess_ms)),
            "burst": {
                "calls": self.burst_calls,
                "errors": self.burst_errors,
                "wall_s": asdict(Spread.of(self.burst_wall_s)),
                "observed_minus_scheduled_ms": asdict(Spread.of(self.burst_error_ms)),
            },
        }


class TransportParams(BaseModel):
    """The benchmark's settings, checked once (the CLI reports the problems of bad ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generations: Int(1, 10_000) = 30  # measured parallel generations per candidate and round
    time_scale: Float(gt=0.0, le=10.0) = 0.1  # of the generations (uniform-2s: a call of ~0.2 s)
    calls: Int(0, 5_000) = 1000  # the burst: this many calls at once (0: no burst)
    burst_time_scale: Float(gt=0.0, le=10.0) = 1.0  # of the burst (uniform-2s: every call ~2 s)
    rounds: Int(1, 20) = 2  # both candidates per round, in alternating order
    warmup: Int(0, 100) = 2  # generations run first and excluded
    process: StrictBool = True  # the simulator in its own process


async def _generations(base_url: str, transport: str, n: int, warmup: int) -> list[Any]:
    client = make_client(base_url, PLACEHOLDER_KEY, http_client=candidate_http_client(transport, 64))
    config = GeneratorConfig(call_timeout_s=120.0)
    async with client:
        gens = [
            await generate(
                REQUEST,
                "parallel",
                client=client,
                config=config,
                sim_key=f"tr-{i}",
                simulator=True,
                scenario="bench transport",
            )
            for i in range(warmup + n)
        ]
    return gens[warmup:]


def _one(P: TransportParams, transport: str, result: CandidateResult) -> None:
    sim_cfg = SimConfig(profile="uniform-2s", time_scale=P.time_scale)
    with running_simulator(sim_cfg, process=P.process) as sim:
        for gen in run_sync(_generations(sim.base_url, transport, P.generations, P.warmup)):
            if not gen.complete:
                result.generations_failed += 1
                continue
            result.generations_ok += 1
            slowest = gen.max_latency_s
            result.wall_over_slowest.append(gen.wall_s / slowest)
            result.excess_ms.append((gen.wall_s - slowest) * 1000)
    if not P.calls:
        return
    burst_cfg = SimConfig(profile="uniform-2s", time_scale=P.burst_time_scale)
    with running_simulator(burst_cfg, process=P.process) as sim:
        m = run_sync(measure(sim.base_url, P.calls, P.calls, transport=transport))
    result.burst_calls += P.calls
    result.burst_errors += m.errors
    result.burst_wall_s.append(m.wall_s)
    result.burst_error_ms += [o - s for o, s in zip(m.observed_ms, m.scheduled_ms, strict=True)]


def run_benchmark(params: TransportParams | None = None, /, **changes: Any) -> dict[str, Any]:
    """Both candidates, ``rounds`` times in alternating order; the summary per candidate."""
    P = TransportParams.model_validate({**(params or TransportParams()).model_dump(), **changes})
    results = {name: CandidateResult(name) for name in CANDIDATES}
    for r in range(P.rounds):
        for name in CANDIDATES if r % 2 == 0 else tuple(reversed(CANDIDATES)):
            _one(P, name, results[name])
    return {"params": P.model_dump(), "candidates": [results[n].summary() for n in CANDIDATES]}


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    lines = [
        f"transport benchmark: {p['rounds']} round(s); per round {p['generations']} parallel generations "
        f"(uniform-2s, time_scale {p['time_scale']:g}) and a burst of {p['calls']} calls at once "
        f"(time_scale {p['burst_time_scale']:g})",
        f"{'transport':<10} {'gens ok/failed':>14} {'wall/slowest p50':>17} {'p95':>7} "
        f"{'excess ms p50':>14} {'p95':>7} {'burst wall s p50':>17} {'burst err ms p50':>17} {'p95':>8} "
        f"{'max':>8} {'errors':>7}",
    ]
    for c in result["candidates"]:
        w, e, b = c["wall_over_slowest"], c["excess_ms"], c["burst"]
        lines.append(
            f"{c['transport']:<10} {c['generations']['ok']:>7}/{c['generations']['failed']:<6} "
            f"{w['median']:>17.3f} {w['p95']:>7.3f} {e['median']:>14.1f} {e['p95']:>7.1f} "
            f"{b['wall_s']['median']:>17.2f} {b['observed_minus_scheduled_ms']['median']:>17.1f} "
            f"{b['observed_minus_scheduled_ms']['p95']:>8.1f} {b['observed_minus_scheduled_ms']['max']:>8.1f} "
            f"{b['errors']:>7}"
        )
    return "\n".join(lines)

"""How faithfully does the simulator keep its own schedule under load?

Each response says when it was *meant* to finish (``x-sim-queue-ms`` + ``x-sim-service-ms``); the client
measures when it did. The difference is the overhead of the whole rig: simulator event-loop lag, HTTP on
both sides, and the client's own scheduling. If it is small next to the latencies being simulated,
benchmarks on the simulator measure the strategies, not the rig.

Choices, each to keep the *client* from dominating the figure (all reported in the result):
- the server runs in a subprocess, so it does not share the client's GIL;
- one ``AsyncOpenAI`` client sends every request; by default its HTTP goes through
  :mod:`voorbeelden.transport` (aiohttp), because httpx's pool costs O(connections) per request and
  at 1,000 in flight the client spends seconds there (``transport="httpx"`` measures that pool instead);
- the pool is warmed first (one ``GET /v1/models`` per connection): opening 1,000 TCP connections at once
  is a client cost, not a simulator one;
- ``ramp_s`` spreads the launches: each request costs the SDK ~1-2 ms of CPU, so a 1,000-request burst
  queues ~1-2 s of work in the client loop and every request "observes" that queue. With latencies longer
  than the ramp, all requests are still in flight at once (check ``peak_in_flight``);
- the client's cyclic GC is paused during the measured round (a full collection stalls the loop);
- a ticker measures the client's own loop lag, so a large error can be blamed on the right side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from voorbeelden.experiments.gcpause import gc_paused
from voorbeelden.sim.config import SimConfig
from voorbeelden.sim.server import running_simulator
from voorbeelden.syncrun import run_sync

MSG = [{"role": "user", "content": 'Geef precies 5 synoniemen voor het begrip "beschikking".'}]


@dataclass
class FidelityResult:
    requests: int
    concurrency: int
    profile: str
    time_scale: float
    transport: str
    ramp_s: float
    warmup: bool
    ok: int
    errors: int
    wall_s: float
    requests_per_s: float
    peak_in_flight: int
    scheduled_ms_p50: float
    observed_ms_p50: float
    error_ms_p50: float
    error_ms_p90: float
    error_ms_p99: float
    error_ms_max: float
    error_ms_min: float
    client_lag_ms_p99: float
    client_lag_ms_max: float
    server_lag_ms_p99: float
    server_lag_ms_max: float
    error_ms: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, with_samples: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_samples:
            d.pop("error_ms")
        return d


@dataclass
class _Measurement:
    scheduled_ms: list[float]
    observed_ms: list[float]
    errors: int
    wall_s: float
    lag_ms: list[float]


def _http_client(transport: str, concurrency: int) -> Any:
    import httpx2
    import openai

    from voorbeelden.transport import http_client

    if transport == "aiohttp":
        return http_client(limit=concurrency)
    if transport != "httpx":
        raise ValueError(f"transport must be 'aiohttp' or 'httpx', got {transport!r}")
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return openai.DefaultAsyncHttpxClient(limits=limits)


async def _ticker(stop: asyncio.Event, lags: list[float], period: float = 0.005) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(period)
        lags.append((time.perf_counter() - t - period) * 1000)


async def measure(
    base_url: str,
    n: int,
    concurrency: int,
    *,
    warmup: bool = True,
    transport: str = "aiohttp",
    ramp_s: float = 0.0,
    after_warmup: Callable[[], Any] | None = None,
) -> _Measurement:
    from voorbeelden.backend import PLACEHOLDER_KEY, make_client

    client = make_client(
        base_url, PLACEHOLDER_KEY, http_client=_http_client(transport, concurrency), timeout=600.0
    )
    scheduled: list[float] = []
    observed: list[float] = []
    lags: list[float] = []
    errors = 0
    try:
        if warmup:
            await asyncio.gather(*(client.models.list() for _ in range(concurrency)))
        if after_warmup is not None:
            await asyncio.to_thread(after_warmup)
        gate = asyncio.Semaphore(concurrency)
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(stop, lags))
        t_start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal errors
            if ramp_s > 0:
                await asyncio.sleep(max(0.0, t_start + ramp_s * i / n - time.perf_counter()))
            async with gate:
                t0 = time.perf_counter()
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="sim", messages=MSG, extra_headers={"x-sim-key": f"fidelity-{i}"}
                    )
                except Exception:
                    errors += 1
                    return
                t1 = time.perf_counter()
                scheduled.append(
                    float(raw.headers["x-sim-queue-ms"]) + float(raw.headers["x-sim-service-ms"])
                )
                observed.append((t1 - t0) * 1000)

        try:
            with gc_paused():  # a collector pause would show as client lag, not server lag
                await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            wall = time.perf_counter() - t_start
            stop.set()
            await ticker
        return _Measurement(scheduled, observed, errors, wall, lags)
    finally:
        await client.close()


def run_fidelity(
    requests: int = 1000,
    concurrency: int | None = None,
    profile: str = "uniform-2s",
    time_scale: float = 1.0,
    seed: int = 0,
    warmup: bool = True,
    transport: str = "aiohttp",
    ramp_s: float = 0.0,
) -> FidelityResult:
    """Start a simulator subprocess, send ``requests`` chat completions (``concurrency`` at a time, default
    all) and compare each one's scheduled latency with what the client observed."""
    concurrency = min(concurrency or requests, requests)
    cfg = SimConfig(profile=profile, time_scale=time_scale, seed=seed)
    with running_simulator(cfg, process=True) as sim:
        m = run_sync(
            measure(
                sim.base_url,
                requests,
                concurrency,
                warmup=warmup,
                transport=transport,
                ramp_s=ramp_s,
                after_warmup=sim.reset_counters,  # peak in-flight and loop lag of the measured round only
            )
        )
        counters = sim.counters()
    s = np.asarray(m.scheduled_ms)
    o = np.asarray(m.observed_ms)
    d = o - s if len(s) else np.asarray([float("nan")])
    lag = np.asarray(m.lag_ms or [float("nan")])
    nan = float("nan")
    return FidelityResult(
        requests=requests,
        concurrency=concurrency,
        profile=profile,
        time_scale=time_scale,
        transport=transport,
        ramp_s=ramp_s,
        warmup=warmup,
        ok=len(s),
        errors=m.errors,
        wall_s=m.wall_s,
        requests_per_s=requests / m.wall_s if m.wall_s > 0 else nan,
        peak_in_flight=int(counters["peak_in_flight"]),
        scheduled_ms_p50=float(np.median(s)) if len(s) else nan,
        observed_ms_p50=float(np.median(o)) if len(o) else nan,
        error_ms_p50=float(np.percentile(d, 50)),
        error_ms_p90=float(np.percentile(d, 90)),
        error_ms_p99=float(np.percentile(d, 99)),
        error_ms_max=float(np.max(d)),
        error_ms_min=float(np.min(d)),
        client_lag_ms_p99=float(np.percentile(lag, 99)),
        client_lag_ms_max=float(np.max(lag)),
        server_lag_ms_p99=float(counters["loop_lag_ms_p99"]),
        server_lag_ms_max=float(counters["loop_lag_ms_max"]),
        error_ms=[float(x) for x in d],
    )

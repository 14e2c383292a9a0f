"""Many users at once: a load sweep per strategy, task-level goodput and the knee.

    settings = LoadSettings(strategies=("sequential", "parallel"), users=(1, 2, 4, 8), slo_s=15)
    with open_backend("sim", profile="uniform-2s", time_scale=0.05, capacity=8) as be:
        result = sweep(be, settings)
    print(result.knees["parallel"].describe("users"))

Why per *generation*: a user waits for all six parts, so the figure an operator needs is how many users get a
whole generation within the SLO, not how fast one request is. Parallel fan-out shortens one user's wait but
puts six calls in flight per user; on a server with finite capacity that edge shrinks as load rises.

Two ways to load a backend, one level at a time, each level on the same warm client:

* **closed loop** (``users``): each user starts its next generation when the last one ends (plus ``think_s``);
  users start staggered over the warm-up so they do not move in lock-step;
* **open loop** (``rates``, generations per minute): Poisson arrivals drawn from ``seed`` (the same arrivals
  for every strategy at a rate), each arrival a generation of its own, however many are still running.

A level runs a warm-up, then ``duration_s`` of measurement (split into ``windows`` for the knee's
uncertainty); no generation starts after that, and the running ones get ``drain_s`` to end before they are
cut (and counted as failed, with their elapsed time as a lower bound). Generation ``n`` of a level sends the
simulator the key ``load:<seed>:<n>`` whatever the strategy, so strategies are compared on the same draws.
All times are model seconds: real seconds divided by the backend's ``clock_scale`` (the simulator's
``time_scale``; 1 for a real endpoint). The counting rules are in :mod:`voorbeelden.experiments.load_stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from voorbeelden.experiments.load_stats import (
    FAR_PAST_KNEE,
    GenRow,
    Knee,
    find_knee,
    level_figures,
    parallel_stops_paying,
    saturated,
)

__all__ = ["LoadSettings", "SweepResult", "arun_sweep", "sweep"]


@dataclass(frozen=True)
class LoadSettings:
    """One sweep. Times are model seconds (see the module docstring); ``rates`` are generations per minute."""

    strategies: tuple[str, ...] = ("sequential", "parallel")
    users: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    think_s: float = 0.0
    slo_s: float = 10.0
    duration_s: float = 60.0
    warmup_s: float = 10.0
    windows: int = 3
    k: int = 3
    seed: int = 0
    call_timeout_s: float | None = None  # None: VOORBEELDEN_CALL_TIMEOUT_S, else 60 s (model seconds)
    max_retries: int = 2
    drain_s: float | None = None  # None: 3x the SLO, at least 30 s
    max_generations_in_flight: int = 1000  # open loop: arrivals beyond this are dropped (and counted)
    stop_when_saturated: bool = True

    def __post_init__(self) -> None:
        if bool(self.users) == bool(self.rates):
            raise ValueError("give exactly one of users (closed loop) or rates (open loop)")
        if not self.strategies:
            raise ValueError("strategies is empty")
        for name, values in (("users", self.users), ("rates", self.rates)):
            if any(v <= 0 for v in values):
                raise ValueError(f"{name} must all be > 0, got {list(values)}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has repeated values: {list(values)}")
        positive = {
            "slo_s": self.slo_s,
            "duration_s": self.duration_s,
            "call_timeout_s": self.call_timeout_s or 1,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if self.think_s < 0 or self.warmup_s < 0 or self.windows < 1 or self.k < 1:
            raise ValueError("think_s and warmup_s must be >= 0, windows and k >= 1")

    @property
    def mode(self) -> str:
        return "closed" if self.users else "open"

    @property
    def load_key(self) -> str:
        """The level's key in the JSON: ``users`` or ``rate``; and the knee's unit."""
        return "users" if self.users else "rate"

    @property
    def unit(self) -> str:
        return "users" if self.users else "generations/min"

    @property
    def levels(self) -> list[float]:
        return sorted(self.users or self.rates)

    @property
    def drain(self) -> float:
        return self.drain_s if self.drain_s is not None else max(3.0 * self.slo_s, 30.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mode": self.mode, "drain_s": self.drain}


@dataclass
class SweepResult:
    settings: LoadSettings
    levels: list[dict[str, Any]] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def knees(self) -> dict[str, Knee]:
        key, slo = self.settings.load_key, self.settings.slo_s
        return {
            s: find_knee([lv for lv in self.levels if lv["strategy"] == s], key, slo)
            for s in self.settings.strategies
            if any(lv["strategy"] == s for lv in self.levels)
        }

    @property
    def parallel_stops_paying(self) -> float | None:
        return parallel_stops_paying(self.levels, self.settings.load_key)

    @property
    def generations(self) -> dict[str, int]:
        """Over every level's measured generations (those overlapping its measurement): how many, complete,
        incomplete (parts missing or cut), cut."""
        measured = sum(lv["generations_measured"] for lv in self.levels)
        complete = sum(lv["generations_complete"] for lv in self.levels)
        cut = sum(lv["generations_cut"] for lv in self.levels)
        return {"measured": measured, "complete": complete, "incomplete": measured - complete, "cut": cut}

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.settings.mode,
            "settings": self.settings.to_dict(),
            "levels": self.levels,
            "knee": {s: {"unit": self.settings.unit, **k.to_dict()} for s, k in self.knees.items()},
            "parallel_stops_paying_at": self.parallel_stops_paying,
            "stopped": self.stopped,
            "generations": self.generations,
            "seconds": self.seconds,
        }


def _row(gen: Any, t0: float, started: float, scale: float, calls: list[tuple[float, float, bool]]) -> GenRow:
    return GenRow(
        t_start=(started - t0) / scale,
        t_end=(started + gen.wall_s - t0) / scale,
        parts_delivered=gen.n_ok,
        first_visible_s=None if gen.first_visible_s is None else gen.first_visible_s / scale,
        calls=calls,
    )


class _Level:
    """One level's run: the generations it started, as rows, what it dropped, and where its measurement began.

    The measurement starts after ``warmup_s`` and, in a closed loop, not before every user has finished one
    generation: until then the users' first generations (all started within the warm-up) are a transient, not
    the steady state, and under load a generation can outlast any fixed warm-up."""

    def __init__(self, client: Any, config: Any, strategy: str, s: LoadSettings, scale: float) -> None:
        self.client, self.config, self.strategy, self.s, self.scale = client, config, strategy, s, scale
        self.rows: list[GenRow] = []
        self.dropped = 0
        self.in_flight = 0
        self.numbers = itertools.count()
        from voorbeelden.begrippen import load_begrippen

        self.requests = load_begrippen()
        self.t0 = time.monotonic()
        self.end: float | None = None  # monotonic time the measurement ends; no generation starts after it
        self.lo = s.warmup_s  # model seconds since t0 where the measurement began
        self.first_done: set[int] = set()
        self.all_warm = asyncio.Event()

    def model_now(self) -> float:
        return (time.monotonic() - self.t0) / self.scale

    def measuring(self) -> bool:
        return self.end is None or time.monotonic() < self.end

    async def one(self) -> None:
        """One generation; a cut one (the drain ran out) is recorded as such with the calls that ended."""
        from voorbeelden.generator import generate

        n = next(self.numbers)
        calls: list[tuple[float, float, bool]] = []
        started = time.monotonic()

        def on_record(r: Any) -> None:
            limited = r.status == "rate_limited" or r.http_status == 429
            a = (started + r.t_start - self.t0) / self.scale
            calls.append((a, (started + r.t_end - self.t0) / self.scale, limited))

        self.in_flight += 1
        try:
            gen = await generate(
                self.requests[n % len(self.requests)],
                self.strategy,
                client=self.client,
                config=self.config,
                sim_key=f"load:{self.s.seed}:{n}",
                scenario="load",
                trial=n,
                on_record=on_record,
            )
        except asyncio.CancelledError:
            t = (started - self.t0) / self.scale
            self.rows.append(GenRow(t, self.model_now(), parts_delivered=0, censored=True, calls=calls))
            raise
        finally:
            self.in_flight -= 1
        self.rows.append(_row(gen, self.t0, started, self.scale, calls))

    async def user(self, u: int, users: int) -> None:
        await asyncio.sleep(self.s.warmup_s * self.scale * u / users)  # staggered over the warm-up
        while self.measuring():
            await self.one()
            self.first_done.add(u)
            if len(self.first_done) == users:
                self.all_warm.set()
            if self.s.think_s and self.measuring():
                await asyncio.sleep(self.s.think_s * self.scale)

    async def arrivals(self, rate: float, tg: asyncio.TaskGroup) -> None:
        import numpy as np

        rng = np.random.default_rng([self.s.seed, round(rate * 1000)])  # same arrivals for every strategy
        at = self.t0
        while True:
            at += float(rng.exponential(60.0 / rate)) * self.scale
            if self.end is not None and at >= self.end:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if self.in_flight >= self.s.max_generations_in_flight:
                self.dropped += 1
                continue
            tg.create_task(self.one())

    async def clock(self, cut: asyncio.Timeout) -> None:
        """Start the measurement (after the warm-up, and in a closed loop once every user is warm, waiting at
        most the drain time for that), then set when it ends and when running generations are cut."""
        await asyncio.sleep(self.s.warmup_s * self.scale)
        if self.s.users:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.s.drain * self.scale):
                    await self.all_warm.wait()
        self.lo = self.model_now()
        self.end = time.monotonic() + self.s.duration_s * self.scale
        cut.reschedule(asyncio.get_running_loop().time() + (self.s.duration_s + self.s.drain) * self.scale)

    async def run(self, load: float) -> list[GenRow]:
        try:
            async with asyncio.timeout(None) as timeout:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.clock(timeout))
                    if self.s.users:
                        for u in range(int(load)):
                            tg.create_task(self.user(u, int(load)))
                    else:
                        tg.create_task(self.arrivals(load, tg))
        except TimeoutError:
            pass  # the drain ran out: the TaskGroup cancelled what still ran, each recorded as cut
        return self.rows


async def arun_sweep(
    base_url: str,
    api_key: str,
    settings: LoadSettings,
    *,
    clock_scale: float = 1.0,
    on_level: Callable[[dict[str, Any]], None] | None = None,
    result: SweepResult | None = None,
) -> SweepResult:
    """Every strategy over every level (rising), stopping a strategy's sweep past saturation. ``on_level``
    sees each level as it ends; pass ``result`` to keep the levels done so far when the sweep is interrupted."""
    from voorbeelden.backend import make_client
    from voorbeelden.experiments.retries import bench_config

    s = settings
    result = result if result is not None else SweepResult(s)
    timeout = None if s.call_timeout_s is None else s.call_timeout_s * clock_scale
    config = bench_config(clock_scale, max_retries=s.max_retries, call_timeout_s=timeout).replace(k=s.k)
    t_start = time.monotonic()
    client = make_client(base_url, api_key)
    try:
        await _warm(client, config, s.strategies[0])
        for strategy in s.strategies:
            prev: dict[str, Any] | None = None
            for load in s.levels:
                level = _Level(client, config, strategy, s, clock_scale)
                rows = await level.run(load)
                fig = {"strategy": strategy, s.load_key: load}
                fig |= level_figures(rows, level.lo, s.duration_s, s.windows, s.slo_s)
                fig["warmup_used_s"] = level.lo
                fig["dropped_arrivals"] = level.dropped
                # What the client and server did per real second: on a shared machine, beyond some rate the
                # client's own CPU, not the server modelled, sets the limit (said in the notebook).
                fig["calls_per_s_real"] = fig["calls_per_min"] / 60.0 / clock_scale
                result.levels.append(fig)
                if on_level is not None:
                    on_level(fig)
                why = _stop_reason(prev, fig, load, s) if s.stop_when_saturated else None
                if why is not None:
                    result.stopped[strategy] = why
                    break
                prev = fig
    finally:
        await client.close()
        result.seconds = time.monotonic() - t_start
    return result


def _stop_reason(
    prev: dict[str, Any] | None, fig: dict[str, Any], load: float, s: LoadSettings
) -> str | None:
    """Why a strategy's sweep ends at this level: past saturation, or far past the knee (p95 over
    FAR_PAST_KNEE x the SLO: higher loads only queue longer, and cost the most time to run)."""
    p95 = fig["wall_p95_s"]
    if prev is not None and saturated(prev, fig, s.slo_s):
        return (
            f"past saturation at {load:g} {s.unit}: p95 wall {p95:.1f} s (was {prev['wall_p95_s']:.1f} s) while "
            f"generations/min stayed at {fig['generations_per_min']:.1f} (was {prev['generations_per_min']:.1f})"
        )
    if p95 is not None and p95 > FAR_PAST_KNEE * s.slo_s:
        return (
            f"far past the knee at {load:g} {s.unit}: p95 wall {p95:.1f} s, over {FAR_PAST_KNEE:g}x the SLO"
        )
    return None


async def _warm(client: Any, config: Any, strategy: str) -> None:
    """One untimed generation first: the connections, imports and the server's caches warm up here, not in
    the first level's figures."""
    from voorbeelden.begrippen import load_begrippen
    from voorbeelden.generator import generate

    await generate(load_begrippen(1)[0], strategy, client=client, config=config, sim_key="load:warm-up")


def sweep(backend: Any, settings: LoadSettings, **kwargs: Any) -> SweepResult:
    """:func:`arun_sweep` on an open :class:`~voorbeelden.backend.Backend`, from sync code or a notebook."""
    from voorbeelden.syncrun import run_sync

    return run_sync(
        arun_sweep(backend.base_url, backend.api_key, settings, clock_scale=backend.clock_scale, **kwargs)
    )

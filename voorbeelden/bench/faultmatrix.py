"""Fault matrix: every simulator fault kind x fault rate x strategy, N generations each, under a deadline.

For every cell it counts what must never happen -- exceptions escaping :func:`generate` ("crashes") and
generations that return later than the deadline plus a 50 ms grace -- and compares the share of parts
delivered with the independent-retries prediction ``1 - p ** (retries + 1)`` (each attempt fails with
probability ``p`` independently; see :func:`predicted_delivery` for the kinds that are not retried by
design; the prediction ignores the deadline, so cells whose retries do not fit in
the deadline -- slow faults such as ``hang`` at high rates under ``sequential`` -- deliver less).

Generations within a (kind, rate) cell run concurrently against one in-process simulator; both strategies
see the same ``sim_key`` per generation, so they meet the same fault draws (paired).
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voorbeelden.experiments.retries import bench_config, predicted_delivery
from voorbeelden.sim.config import FAULT_KINDS
from voorbeelden.types import ALL_PARTS

RATES: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.9)
STRATEGIES: tuple[str, ...] = ("sequential", "parallel")
REDUCED_RATES: tuple[float, ...] = (0.0, 0.5)
GRACE_S = 0.05
PARTS_PER_GENERATION = len(ALL_PARTS)


@dataclass(frozen=True)
class Outcome:
    """One generation of a cell, as the caller saw it."""

    wall_s: float
    late: bool  # returned after the deadline plus GRACE_S (must never happen)
    crash: str | None  # the exception generate() raised (must never happen)
    parts_ok: int
    retries: int  # attempts after the first, hedges not counted


@dataclass
class Cell:
    """One fault kind x rate x strategy: its generations' outcomes, and the counts derived from them."""

    fault_kind: str
    fault_rate: float
    strategy: str
    predicted: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def generations(self) -> int:
        return len(self.outcomes)

    @property
    def crashes(self) -> int:
        return sum(o.crash is not None for o in self.outcomes)

    @property
    def past_deadline(self) -> int:
        return sum(o.late for o in self.outcomes)

    @property
    def parts_delivered(self) -> int:
        return sum(o.parts_ok for o in self.outcomes)

    @property
    def parts_total(self) -> int:
        return PARTS_PER_GENERATION * len(self.outcomes)

    @property
    def retries(self) -> int:
        return sum(o.retries for o in self.outcomes)

    @property
    def max_wall_s(self) -> float:
        return max((o.wall_s for o in self.outcomes), default=0.0)

    @property
    def crash_examples(self) -> list[str]:
        return [o.crash for o in self.outcomes if o.crash is not None][:3]

    @property
    def delivered(self) -> float:
        return self.parts_delivered / self.parts_total if self.parts_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: getattr(self, name) for name in _CELL_KEYS}
        for name in ("max_wall_s", "predicted", "delivered"):
            d[name] = round(d[name], 4)
        return d


# What a cell reports (--json), in this order.
_CELL_KEYS = (
    "fault_kind",
    "fault_rate",
    "strategy",
    "generations",
    "crashes",
    "past_deadline",
    "parts_delivered",
    "parts_total",
    "retries",
    "max_wall_s",
    "predicted",
    "crash_examples",
    "delivered",
)


@dataclass
class MatrixSettings:
    """One matrix run: ``n`` generations per cell on ``profile`` at ``time_scale``; each generation has
    ``deadline_s`` (wall seconds) and each call ``call_timeout_s``, with up to ``max_retries`` retries."""

    n: int = 5
    time_scale: float = 0.01
    deadline_s: float = 1.0
    call_timeout_s: float = 0.15
    max_retries: int = 2
    profile: str = "uniform-2s"
    seed: int = 0


def _config(s: MatrixSettings) -> Any:
    # Backoff and honoured retry-after shrunk to the simulator's time scale, so retries fit in the deadline.
    return bench_config(
        s.time_scale,
        max_retries=s.max_retries,
        call_timeout_s=s.call_timeout_s,
        deadline_s=s.deadline_s,
        retry_after_cap_s=max(2.0 * s.time_scale, 0.01),
    )


async def _one(cell: Cell, client: Any, cfg: Any, sim_key: str, deadline_s: float) -> None:
    from voorbeelden.generator import generate

    t0 = time.monotonic()
    try:
        gen = await generate(
            {"begrip": "besluit", "definitie": "Een schriftelijke beslissing van een bestuursorgaan."},
            cell.strategy,
            client=client,
            config=cfg,
            sim_key=sim_key,
            simulator=True,  # its own simulator: no /health question inside the measured wall
            scenario=f"bench faults {cell.fault_kind} {cell.fault_rate}",
        )
    except Exception as exc:  # the point of the matrix: count these (must be 0)
        crash: str | None = "".join(traceback.format_exception_only(exc)).strip()
        gen = None
    else:
        crash = None
    wall = time.monotonic() - t0
    cell.outcomes.append(
        Outcome(
            wall_s=wall,
            late=wall > deadline_s + GRACE_S,
            crash=crash,
            parts_ok=0 if gen is None else gen.n_ok,
            retries=0 if gen is None else sum(1 for r in gen.records if r.attempt > 1 and not r.hedge),
        )
    )


async def _run_async(
    kinds: Sequence[str], rates: Sequence[float], strategies: Sequence[str], s: MatrixSettings
) -> list[Cell]:
    from voorbeelden.backend import PLACEHOLDER_KEY, make_client
    from voorbeelden.sim import SimConfig, running_simulator

    cfg = _config(s)
    cells: list[Cell] = []
    # The simulator runs as its own process and all generations share one warm client: what is measured is
    # the generator under faults, not the harness building a client per generation on the same two cores.
    sim_config = SimConfig(profile=s.profile, time_scale=s.time_scale, seed=s.seed)
    with running_simulator(sim_config, process=True) as sim:
        client = make_client(sim.base_url, PLACEHOLDER_KEY)
        warm = Cell("none", 0.0, strategies[0])
        await _one(warm, client, cfg, "fm-warmup", s.deadline_s)
        for kind in kinds:
            for rate in rates:
                await asyncio.to_thread(sim.configure, fault_rate=rate, faults=(kind,))
                row = [
                    Cell(kind, rate, st, predicted=predicted_delivery(rate, s.max_retries, kind))
                    for st in strategies
                ]
                await asyncio.gather(
                    *(
                        _one(cell, client, cfg, f"fm-{kind}-{rate}-{i}", s.deadline_s)
                        for cell in row
                        for i in range(s.n)
                    )
                )
                cells.extend(row)
        await client.close()
    return cells


def run_matrix(
    kinds: Sequence[str] = FAULT_KINDS,
    rates: Sequence[float] = RATES,
    strategies: Sequence[str] = STRATEGIES,
    settings: MatrixSettings | None = None,
) -> list[Cell]:
    from voorbeelden.syncrun import run_sync

    return run_sync(_run_async(kinds, rates, strategies, settings or MatrixSettings()))


def render_table(cells: Sequence[Cell]) -> str:
    header = (
        "fault",
        "rate",
        "strategy",
        "n",
        "crashes",
        "late",
        "delivered",
        "predicted",
        "retries",
        "max wall",
    )
    rows = [
        (
            c.fault_kind,
            f"{c.fault_rate:g}",
            c.strategy,
            str(c.generations),
            str(c.crashes),
            str(c.past_deadline),
            f"{c.delivered:.2f}",
            f"{c.predicted:.2f}",
            str(c.retries),
            f"{c.max_wall_s:.3f} s",
        )
        for c in cells
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)

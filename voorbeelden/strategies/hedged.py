"""``hedged``: when a part has not answered after the hedge delay, one backup request (``hedge=True``,
attempt offset 100); the first good answer wins and the other call is cancelled.

Options: ``hedge_delay_s`` (fixed delay, also the fallback while too few latencies are known),
``hedge_percentile`` (e.g. 95: the delay is that percentile of the part's latencies observed in
``run.latencies``, the :class:`~voorbeelden.strategies.context.LatencyHistory` the caller of ``generate``
passes in as ``hedge_history``), ``hedge_min_samples`` (default 10). Without a usable delay no backup is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from voorbeelden.caller import PartOutcome
from voorbeelden.strategies.context import LatencyHistory, RunContext, fan_out
from voorbeelden.types import Part


def hedge_delay(part: Part, options: Any, history: LatencyHistory) -> float | None:
    """The delay before a backup for ``part``, or None for no backup."""
    fixed = options.get("hedge_delay_s")
    pct = options.get("hedge_percentile")
    if pct is not None:
        learnt = history.percentile(part, float(pct), int(options.get("hedge_min_samples", 10)))
        if learnt is not None:
            return learnt
    return float(fixed) if fixed is not None else None


async def _cancel(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    except Exception:  # call_part never raises; a failed loser has nothing left to say
        pass


async def _first_good(tasks: list[asyncio.Task[PartOutcome]]) -> PartOutcome:
    """The first good outcome of ``tasks``; if none is good, the first one to end."""
    pending = set(tasks)
    outcome = None
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        results = [t.result() for t in done]
        good = [o for o in results if not o.error]
        outcome = good[0] if good else (outcome or results[0])
        if good:
            break  # the first good answer wins; a failed one waits for the other call
    assert outcome is not None
    return outcome


async def hedged_part(run: RunContext, part: Part) -> PartOutcome:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    primary = asyncio.create_task(run.caller.call_part(run.part_call(part)), name=f"voorbeelden:{part}")
    tasks = [primary]
    try:
        delay = hedge_delay(part, run.options, run.latencies)
        if delay is not None:
            await asyncio.wait({primary}, timeout=max(0.0, delay))
        if primary.done() or delay is None:
            outcome = await primary
        else:
            backup = asyncio.create_task(
                run.caller.call_part(run.part_call(part, hedge=True, attempt_offset=100)),
                name=f"voorbeelden:{part}:hedge",
            )
            tasks.append(backup)
            outcome = await _first_good(tasks)
        if not outcome.error:
            run.latencies.observe(part, loop.time() - t0)
        return outcome
    finally:
        for task in tasks:
            await _cancel(task)


async def hedged(run: RunContext, parts: Sequence[Part]) -> None:
    async def one(part: Part) -> None:
        run.store(part, await hedged_part(run, part))

    await fan_out(parts, one)

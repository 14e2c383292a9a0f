"""The three baselines: ``sequential``, ``parallel`` and ``bounded`` (at most ``k`` calls in flight).

The ``sequential`` baseline awaits each call before starting the next. Creating six tasks and awaiting them
one by one would still run them concurrently, which is the classic way to fake a sequential baseline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from voorbeelden.strategies.context import RunContext, fan_out
from voorbeelden.types import Part


async def sequential(run: RunContext, parts: Sequence[Part]) -> None:
    for part in parts:
        await run.run_part(part)


async def parallel(run: RunContext, parts: Sequence[Part]) -> None:
    await fan_out(parts, run.run_part)


async def bounded(run: RunContext, parts: Sequence[Part]) -> None:
    """At most ``run.k`` calls in flight. The semaphore covers a whole part, retries and backoff included,
    so ``k`` also bounds the load a struggling server sees."""
    limit = asyncio.Semaphore(max(1, run.k))

    async def one(part: Part) -> None:
        async with limit:
            await run.run_part(part)

    await fan_out(parts, one)

"""``streaming``: all six calls in parallel with ``stream=True`` (usage included).

Each record carries ``ttft_s``, and ``RunState.first_visible_s`` is marked when the first complete item of
any part arrives: what a user of a streaming UI would see first.
"""

from __future__ import annotations

from collections.abc import Sequence

from voorbeelden.strategies.context import RunContext, fan_out
from voorbeelden.types import Part


async def streaming(run: RunContext, parts: Sequence[Part]) -> None:
    async def one(part: Part) -> None:
        outcome = await run.caller.call_part(run.part_call(part, stream=True))
        run.store(part, outcome)

    await fan_out(parts, one)

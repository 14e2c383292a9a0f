"""What a strategy is handed (:class:`RunContext`), the one TaskGroup fan-out every strategy uses, and the
latency history that ``hedged`` learns its delay from.

A strategy decides *when* calls happen; it never builds prompts, retries, records or degrades: those belong
to :meth:`RunContext.run_part` (one part, retries included, outcome stored in ``run.outcomes``) and to the
generator. Because outcomes are stored as they complete, a strategy cut off by the deadline or cancelled
still leaves every finished part behind, and ``generate()`` never needs to know which strategy ran.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from voorbeelden.caller import Call, Caller, PartOutcome
from voorbeelden.config import GeneratorConfig
from voorbeelden.types import Part, Request

if TYPE_CHECKING:
    import openai

T = TypeVar("T")
R = TypeVar("R")

LATENCY_WINDOW = 200  # the last this many good latencies per part


class LatencyHistory:
    """Observed latencies per part, for ``hedged``'s percentile delay. Passed in by whoever owns a run (one
    per profile in notebook 05; one per generation by default), never module state: two runs side by side
    must not learn from each other's latencies."""

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self._window = window
        self._seen: dict[str, deque[float]] = {}

    def observe(self, part: Part | str, seconds: float) -> None:
        self._seen.setdefault(str(part), deque(maxlen=self._window)).append(seconds)

    def latencies(self, part: Part | str) -> list[float]:
        return list(self._seen.get(str(part), ()))

    def percentile(self, part: Part | str, pct: float, min_samples: int) -> float | None:
        """The ``pct`` percentile of the part's latencies, or None while fewer than ``min_samples`` are known."""
        seen = self.latencies(part)
        if len(seen) < min_samples:
            return None
        import numpy as np  # only a hedged run with a percentile pays for numpy

        return float(np.percentile(seen, float(pct)))


@dataclass
class RunContext:
    """Everything one generation's strategy may use."""

    request: Request
    config: GeneratorConfig
    caller: Caller
    k: int = 3
    options: Mapping[str, Any] = field(default_factory=dict)
    outcomes: dict[Part, PartOutcome] = field(default_factory=dict)
    latencies: LatencyHistory = field(default_factory=LatencyHistory)

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.caller.client

    def store(self, part: Part, outcome: PartOutcome) -> None:
        self.outcomes[part] = outcome

    def part_call(self, part: Part, **options: Any) -> Call:
        """The call for ``part`` of this run's request, with its configured settings (``options`` as
        :class:`~voorbeelden.caller.Call` takes them: ``stream``, ``hedge``, ``messages``...)."""
        return Call.for_part(
            self.request, part, options.pop("settings", None) or self.config.settings(part), **options
        )

    async def run_part(self, part: Part) -> PartOutcome:
        outcome = await self.caller.call_part(self.part_call(part))
        self.store(part, outcome)
        return outcome


async def fan_out(
    items: Iterable[T], one: Callable[[T], Awaitable[R]], name: Callable[[T], str] = str
) -> list[R]:
    """``one(item)`` for every item at once; their results in item order.

    TaskGroup, not gather: cancelling the generation (deadline, Ctrl-C) cancels and awaits every child, so
    no task outlives it. Tasks are named ``voorbeelden:<name>`` so a leak would say whose it is.
    """
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(item), name=f"voorbeelden:{name(item)}") for item in items]
    return [task.result() for task in tasks]

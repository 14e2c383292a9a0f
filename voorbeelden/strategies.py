"""How the six calls of one generation are scheduled.

Signature (every strategy)::

    async def strategy(run: RunContext, parts: Sequence[Part]) -> None

A strategy decides *when* calls happen; it never builds prompts, retries, records or degrades: those belong
to :meth:`RunContext.run_part` (one part, retries included, outcome stored in ``run.outcomes``) and to the
generator. Because outcomes are stored as they complete, a strategy cut off by the deadline or cancelled
still leaves every finished part behind, and ``generate()`` never needs to know which strategy ran.

Adding a strategy: write the coroutine and decorate it with ``@register("name")``. What a new strategy needs
is already on the context: ``run.k`` and ``run.options`` (free-form strategy options), ``run.caller`` for a
call with custom messages (``combined``, ``split``), ``hedge=True`` / ``attempt_offset=100`` for backup calls
(``hedged``), ``run.store(part, outcome)`` to publish a part it computed itself, and ``run.client`` for
streaming. ``generate()`` stays unchanged.

The ``sequential`` baseline awaits each call before starting the next. Creating six tasks and awaiting them
one by one would still run them concurrently, which is the classic way to fake a sequential baseline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from voorbeelden.caller import Caller, PartOutcome
from voorbeelden.config import GeneratorConfig
from voorbeelden.types import Part, Request


@dataclass
class RunContext:
    """Everything one generation's strategy may use."""

    request: Request
    config: GeneratorConfig
    caller: Caller
    k: int = 3
    options: Mapping[str, Any] = field(default_factory=dict)
    outcomes: dict[Part, PartOutcome] = field(default_factory=dict)

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.caller.client

    def store(self, part: Part, outcome: PartOutcome) -> None:
        self.outcomes[part] = outcome

    async def run_part(self, part: Part) -> PartOutcome:
        outcome = await self.caller.call_part(self.request, part, self.config.settings(part))
        self.store(part, outcome)
        return outcome


Strategy = Callable[[RunContext, Sequence[Part]], Awaitable[None]]
STRATEGIES: dict[str, Strategy] = {}


def register(name: str) -> Callable[[Strategy], Strategy]:
    def add(fn: Strategy) -> Strategy:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is already registered")
        STRATEGIES[name] = fn
        return fn

    return add


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}"
        ) from None


@register("sequential")
async def sequential(run: RunContext, parts: Sequence[Part]) -> None:
    for part in parts:
        await run.run_part(part)


@register("parallel")
async def parallel(run: RunContext, parts: Sequence[Part]) -> None:
    # TaskGroup, not gather: cancelling the generation cancels and awaits every child, so no task outlives it.
    async with asyncio.TaskGroup() as tg:
        for part in parts:
            tg.create_task(run.run_part(part), name=f"voorbeelden:{part}")


@register("bounded")
async def bounded(run: RunContext, parts: Sequence[Part]) -> None:
    """At most ``run.k`` calls in flight. The semaphore covers a whole part, retries and backoff included,
    so ``k`` also bounds the load a struggling server sees."""
    limit = asyncio.Semaphore(max(1, run.k))

    async def one(part: Part) -> None:
        async with limit:
            await run.run_part(part)

    async with asyncio.TaskGroup() as tg:
        for part in parts:
            tg.create_task(one(part), name=f"voorbeelden:{part}")


import voorbeelden.strategies_extra  # noqa: E402,F401  (fills STRATEGIES with the extra strategies)

"""``split``: a list part is asked as single-item calls (the same part prompt with count 1), merged and
de-duplicated to the count, topped up with extra calls while duplicates leave it short.

Options: ``split_parts`` (part names; default praktijkvoorbeelden, tegenvoorbeelden), ``split_max_calls``
(per part, default 3 x count). Parts not split are one call each, as in ``parallel``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Sequence
from typing import Any

from voorbeelden.caller import PartOutcome
from voorbeelden.config import PartSettings
from voorbeelden.prompts import build_messages
from voorbeelden.strategies.context import RunContext, fan_out
from voorbeelden.strategies.registry import DEFAULT_SPLIT_PARTS
from voorbeelden.types import Part

__all__ = ["DEFAULT_SPLIT_PARTS", "split", "split_part"]


def _split_parts(options: Any) -> set[Part]:
    names = options.get("split_parts", DEFAULT_SPLIT_PARTS)
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    return {Part(str(n).strip()) for n in names}


async def split_part(run: RunContext, part: Part) -> PartOutcome:
    """``count`` one-item calls in parallel; duplicates (case-insensitive) are dropped and replaced by further
    rounds of calls, up to ``split_max_calls``. Each call has its own draw: its ``x-sim-key`` gets an item
    suffix. A real model at temperature 0 answers identical prompts identically, so from the second call on
    the prompt names the variant it asks for (and a seed, when set, is offset by the call's index): without
    that every one-item call returned the same item and the part stayed one item short of its count."""
    settings = run.config.settings(part)
    count = settings.count
    one = dataclasses.replace(settings, count=1)
    messages = build_messages(run.request, part, one)
    max_calls = int(run.options.get("split_max_calls", 3 * count))
    items: list[str] = []
    errors: list[PartOutcome] = []
    calls = 0
    while len(items) < count and calls < max_calls:
        n = min(count - len(items), max_calls - calls)
        outcomes = await fan_out(
            range(calls, calls + n),
            lambda i: _one_item(run, part, one, messages, i),
            name=lambda i: f"{part}:{i}",
        )
        calls += n
        errors += [o for o in outcomes if o.error]
        if _merge(items, outcomes, count) == 0 and errors:
            break  # a round that only failed: more rounds would likely fail the same way
    if not items:
        first = errors[0] if errors else None
        return PartOutcome(
            part=part,
            value=part.empty(),
            error=first.error if first else "split: no items",
            error_kind=first.error_kind if first else "no_items",
            shortfall=count,
            attempts=calls,
        )
    return PartOutcome(part=part, value=items, shortfall=max(0, count - len(items)), attempts=calls)


def _one_item(
    run: RunContext, part: Part, one: PartSettings, messages: list[dict[str, str]], i: int
) -> Awaitable[PartOutcome]:
    """One-item call number ``i``: its own simulator draw, its own seed, its own variant line."""
    key = run.caller.state.sim_key
    headers = {"x-sim-key": f"{key}#item{i}"} if key else None
    settings_i = one if one.seed is None else dataclasses.replace(one, seed=one.seed + i)
    return run.caller.call_part(
        run.part_call(part, settings=settings_i, messages=_variant(messages, i), extra_headers=headers)
    )


def _merge(items: list[str], outcomes: Sequence[PartOutcome], count: int) -> int:
    """Add the new items of a round's good answers to ``items`` (up to ``count``); how many were added."""
    seen = {item.casefold() for item in items}
    before = len(items)
    for outcome in outcomes:
        if outcome.error:
            continue
        for item in outcome.value if isinstance(outcome.value, list) else [outcome.value]:
            if item.casefold() not in seen and len(items) < count:
                seen.add(item.casefold())
                items.append(item)
    return len(items) - before


def _variant(messages: list[dict[str, str]], i: int) -> list[dict[str, str]]:
    """The one-item prompt for call ``i``: unchanged for the first, with a variant line after that (the
    first line, which the simulator reads, stays as it is)."""
    if i == 0:
        return messages
    last = dict(messages[-1])
    last["content"] = (
        f"{last['content']}\nVariant {i + 1}: kies een ander voorbeeld dan de voor de hand liggende."
    )
    return [*messages[:-1], last]


async def split(run: RunContext, parts: Sequence[Part]) -> None:
    chosen = _split_parts(run.options)

    async def one(part: Part) -> None:
        if part in chosen and part.is_list:
            run.store(part, await split_part(run, part))
        else:
            await run.run_part(part)

    await fan_out(parts, one)

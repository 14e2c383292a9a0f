"""Strategies beyond the three baselines: ``streaming``, ``split``, ``combined`` and ``hedged``.

Same signature and the same CallRecords as the baselines; every call goes through
:meth:`voorbeelden.caller.Caller.call_part`, so retries, cancellation and records behave identically.

- ``streaming``: all six in parallel with ``stream=True`` (usage included); records ``ttft_s`` per call and
  marks ``RunState.first_visible_s`` when the first complete item of any part arrives.
- ``split``: a list part is asked as single-item calls (same part prompt with count 1), merged and
  de-duplicated to the count, topped up with extra calls while duplicates leave it short.
  Options: ``split_parts`` (part names; default praktijkvoorbeelden, tegenvoorbeelden), ``split_max_calls``
  (per part, default 3 x count).
- ``combined``: one JSON-schema call for all six parts; parts missing or invalid in the answer (or all six,
  when the call fails) are fetched with per-part calls. Options: ``combined_max_tokens``,
  ``combined_format``: ``"auto"`` (default: OpenAI's ``json_schema``; when the server rejects that format,
  llama.cpp's ``{"type": "json_object", "schema": ...}``), ``"json_schema"`` or ``"json_object_schema"``.
  Each combined record notes the format it used (``response_format:...``).
- ``hedged``: when a part has not answered after the hedge delay, one backup request (``hedge=True``, attempt
  offset 100); the first good answer wins and the other call is cancelled. Options: ``hedge_delay_s`` (fixed
  delay, also the fallback while too few latencies are known), ``hedge_percentile`` (e.g. 95: the delay is
  that percentile of the part's observed latencies in this process), ``hedge_min_samples`` (default 10).
  Without a usable delay no backup is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from voorbeelden.caller import UNSUPPORTED_FORMAT, PartOutcome
from voorbeelden.parsing import ParseResult, parse_part
from voorbeelden.prompts import build_combined_messages, build_messages
from voorbeelden.strategies import RunContext, register
from voorbeelden.types import ALL_PARTS, Part

# ---- streaming -------------------------------------------------------------------------------------------


@register("streaming")
async def streaming(run: RunContext, parts: Sequence[Part]) -> None:
    async def one(part: Part) -> None:
        outcome = await run.caller.call_part(run.request, part, run.config.settings(part), stream=True)
        run.store(part, outcome)

    async with asyncio.TaskGroup() as tg:
        for part in parts:
            tg.create_task(one(part), name=f"voorbeelden:{part}")


# ---- split -----------------------------------------------------------------------------------------------

DEFAULT_SPLIT_PARTS = (Part.PRAKTIJKVOORBEELDEN, Part.TEGENVOORBEELDEN)


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
    key = run.caller.state.sim_key
    items: list[str] = []
    seen: set[str] = set()
    errors: list[PartOutcome] = []
    calls = 0
    while len(items) < count and calls < max_calls:
        n = min(count - len(items), max_calls - calls)
        base = calls
        calls += n

        def call(i: int) -> Any:
            headers = {"x-sim-key": f"{key}#item{i}"} if key else None
            settings_i = one if one.seed is None else dataclasses.replace(one, seed=one.seed + i)
            return run.caller.call_part(
                run.request, part, settings_i, messages=_variant(messages, i), extra_headers=headers
            )

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(call(base + j), name=f"voorbeelden:{part}:{base + j}") for j in range(n)]
        round_added = 0
        for task in tasks:
            outcome = task.result()
            if outcome.error:
                errors.append(outcome)
                continue
            for item in outcome.value if isinstance(outcome.value, list) else [outcome.value]:
                if item.casefold() not in seen and len(items) < count:
                    seen.add(item.casefold())
                    items.append(item)
                    round_added += 1
        if round_added == 0 and errors:
            break  # a round that only failed: more rounds would likely fail the same way
    attempts = calls
    if not items:
        first = errors[0] if errors else None
        return PartOutcome(
            part=part,
            value=part.empty(),
            error=first.error if first else "split: no items",
            error_kind=first.error_kind if first else "no_items",
            shortfall=count,
            attempts=attempts,
        )
    return PartOutcome(part=part, value=items, shortfall=max(0, count - len(items)), attempts=attempts)


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


@register("split")
async def split(run: RunContext, parts: Sequence[Part]) -> None:
    chosen = _split_parts(run.options)

    async def one(part: Part) -> None:
        if part in chosen and part.is_list:
            run.store(part, await split_part(run, part))
        else:
            await run.run_part(part)

    async with asyncio.TaskGroup() as tg:
        for part in parts:
            tg.create_task(one(part), name=f"voorbeelden:{part}")


# ---- combined --------------------------------------------------------------------------------------------


class CombinedAnswer(BaseModel):
    """The JSON object the combined call asks for (sent as the ``json_schema``)."""

    model_config = ConfigDict(extra="forbid")

    voorbeeldzinnen: list[str]
    praktijkvoorbeelden: list[str]
    tegenvoorbeelden: list[str]
    synoniemen: list[str]
    antoniemen: list[str]
    toelichting: str


_FIELD_ADAPTERS: dict[Part, TypeAdapter[Any]] = {
    part: TypeAdapter(str if part is Part.TOELICHTING else list[str]) for part in ALL_PARTS
}


COMBINED_FORMATS: dict[str, tuple[str, ...]] = {
    "auto": ("json_schema", "json_object_schema"),
    "json_schema": ("json_schema",),
    "json_object_schema": ("json_object_schema",),
}
_FORMAT_NOTES = {
    "json_schema": "response_format:json_schema",
    "json_object_schema": "response_format:json_object+schema",
}


# Longest string the grammar lets the model write per item: a small model in a grammar tends to loop inside
# one string until max_tokens, so the llama.cpp form bounds every string and list (OpenAI's strict
# json_schema mode does not take these keywords; its models do not need them).
_MAX_CHARS: dict[Part, int] = {
    Part.VOORBEELDZINNEN: 240,
    Part.PRAKTIJKVOORBEELDEN: 400,
    Part.TEGENVOORBEELDEN: 300,
    Part.SYNONIEMEN: 40,
    Part.ANTONIEMEN: 40,
    Part.TOELICHTING: 600,
}


def bounded_combined_schema(counts: dict[Part, int]) -> dict[str, Any]:
    """The combined schema with ``maxItems`` (the count asked) and ``maxLength`` per string."""
    schema = CombinedAnswer.model_json_schema()
    props = schema["properties"]
    for part in ALL_PARTS:
        if part is Part.TOELICHTING:
            props[part.value] = {**props[part.value], "maxLength": _MAX_CHARS[part]}
        else:
            items = {**props[part.value].get("items", {"type": "string"}), "maxLength": _MAX_CHARS[part]}
            props[part.value] = {**props[part.value], "items": items, "maxItems": max(1, counts[part])}
    return schema


def combined_response_format(
    kind: str = "json_schema", counts: dict[Part, int] | None = None
) -> dict[str, Any]:
    """OpenAI's structured output (``json_schema``), or the form llama-cpp-python's server takes
    (``json_object`` with a ``schema``, enforced by a grammar; it answers ``json_schema`` with a 500)."""
    if kind == "json_object_schema":
        counts = counts or {p: 5 for p in ALL_PARTS}
        return {"type": "json_object", "schema": bounded_combined_schema(counts)}
    schema = CombinedAnswer.model_json_schema()
    return {"type": "json_schema", "json_schema": {"name": "voorbeelden", "strict": True, "schema": schema}}


def parse_combined(text: str | None, counts: dict[Part, int]) -> tuple[dict[Part, ParseResult], str | None]:
    """Per-part results from a combined answer: only parts whose value validates (pydantic, per field) and
    parses to at least one item are returned, so one bad field costs one fallback call, not six.
    The second value is an error when the whole answer is unusable (not a JSON object)."""
    try:
        data = json.loads(text or "")
    except ValueError as err:
        return {}, f"combined answer is not valid JSON: {err}"
    if not isinstance(data, dict):
        return {}, f"combined answer is a JSON {type(data).__name__}, not an object"
    good: dict[Part, ParseResult] = {}
    for part in ALL_PARTS:
        if part.value not in data:
            continue
        try:
            value = _FIELD_ADAPTERS[part].validate_python(data[part.value], strict=True)
        except ValidationError:
            continue
        result = parse_part(json.dumps(value, ensure_ascii=False), part, counts[part])
        if result.ok:
            good[part] = result
    return good, None


@register("combined")
async def combined(run: RunContext, parts: Sequence[Part]) -> None:
    counts = {p: run.config.settings(p).count for p in ALL_PARTS}
    base = run.config.settings(Part.VOORBEELDZINNEN)
    max_tokens = int(
        run.options.get("combined_max_tokens", sum(run.config.settings(p).max_tokens for p in parts))
    )
    settings = dataclasses.replace(base, max_tokens=max_tokens, count=1)
    fmt = str(run.options.get("combined_format", "auto"))
    if fmt not in COMBINED_FORMATS:
        raise ValueError(f"combined_format {fmt!r} is unknown; use one of {', '.join(COMBINED_FORMATS)}")
    found: dict[Part, ParseResult] = {}

    def parse(text: str | None) -> ParseResult:
        good, error = parse_combined(text, counts)
        found.update(good)
        if error is not None:
            return ParseResult(value="", found=0, error=error, error_kind="parse")
        return ParseResult(value="", found=len(good))

    attempts = 0
    for kind in COMBINED_FORMATS[fmt]:
        outcome = await run.caller.call_part(
            run.request,
            Part.VOORBEELDZINNEN,  # unused for the prompt and parse; the record is labelled "combined"
            settings,
            messages=build_combined_messages(run.request, counts),
            extra_body={"response_format": combined_response_format(kind, counts)},
            parse=parse,
            label="combined",
            note=_FORMAT_NOTES[kind],
            attempt_offset=attempts,
        )
        attempts += outcome.attempts
        if outcome.error_kind != UNSUPPORTED_FORMAT:
            break  # answered, or failed for a reason another format would not fix
    if outcome.error:
        found.clear()  # a failed or cut-off answer is not trusted part by part
    for part in parts:
        if part in found:
            result = found[part]
            run.store(part, PartOutcome(part=part, value=result.value, shortfall=result.shortfall))

    missing = [p for p in parts if p not in found]
    if missing:
        async with asyncio.TaskGroup() as tg:
            for part in missing:
                tg.create_task(run.run_part(part), name=f"voorbeelden:{part}:fallback")


# ---- hedged ----------------------------------------------------------------------------------------------

_LATENCIES: dict[str, deque[float]] = {}
_LATENCY_WINDOW = 200


def observe_latency(part: Part | str, seconds: float) -> None:
    _LATENCIES.setdefault(str(part), deque(maxlen=_LATENCY_WINDOW)).append(seconds)


def observed_latencies(part: Part | str) -> list[float]:
    return list(_LATENCIES.get(str(part), ()))


def reset_latencies() -> None:
    _LATENCIES.clear()


def hedge_delay(part: Part, options: Any) -> float | None:
    """The delay before a backup for ``part``, or None for no backup."""
    fixed = options.get("hedge_delay_s")
    pct = options.get("hedge_percentile")
    if pct is not None:
        seen = observed_latencies(part)
        if len(seen) >= int(options.get("hedge_min_samples", 10)):
            return float(np.percentile(seen, float(pct)))
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


async def hedged_part(run: RunContext, part: Part) -> PartOutcome:
    settings = run.config.settings(part)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    primary = asyncio.create_task(
        run.caller.call_part(run.request, part, settings), name=f"voorbeelden:{part}"
    )
    tasks = [primary]
    try:
        delay = hedge_delay(part, run.options)
        if delay is not None:
            await asyncio.wait({primary}, timeout=max(0.0, delay))
        if primary.done() or delay is None:
            outcome = await primary
        else:
            backup = asyncio.create_task(
                run.caller.call_part(run.request, part, settings, hedge=True, attempt_offset=100),
                name=f"voorbeelden:{part}:hedge",
            )
            tasks.append(backup)
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
        if not outcome.error:
            observe_latency(part, loop.time() - t0)
        return outcome
    finally:
        for task in tasks:
            await _cancel(task)


@register("hedged")
async def hedged(run: RunContext, parts: Sequence[Part]) -> None:
    async def one(part: Part) -> None:
        run.store(part, await hedged_part(run, part))

    async with asyncio.TaskGroup() as tg:
        for part in parts:
            tg.create_task(one(part), name=f"voorbeelden:{part}")

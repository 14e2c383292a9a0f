"""``combined``: one JSON-schema call for all six parts; parts missing or invalid in the answer (or all six,
when the call fails) are fetched with per-part calls.

Options: ``combined_max_tokens``, ``combined_format``: ``"auto"`` (default: OpenAI's ``json_schema``; when
the server rejects that format, llama.cpp's ``{"type": "json_object", "schema": ...}``), ``"json_schema"`` or
``"json_object_schema"``. Each combined record notes the format it used (``response_format:...``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from voorbeelden.caller import Call, PartOutcome
from voorbeelden.parsing import ParseResult, parse_part
from voorbeelden.prompts import build_combined_messages
from voorbeelden.strategies.context import RunContext, fan_out
from voorbeelden.strategies.registry import COMBINED_LABEL
from voorbeelden.types import ALL_PARTS, Part
from voorbeelden.wire import UNSUPPORTED_FORMAT


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


async def _ask_combined(
    run: RunContext, counts: dict[Part, int], parts: Sequence[Part]
) -> dict[Part, ParseResult]:
    """The combined call, in each format ``combined_format`` allows until one is not rejected; the parts
    its answer delivered (none when the call failed or was cut off: such an answer is not trusted part by
    part)."""
    max_tokens = int(
        run.options.get("combined_max_tokens", sum(run.config.settings(p).max_tokens for p in parts))
    )
    # The combined call runs with the first part's model, temperature and seed; its budget is all parts'.
    settings = dataclasses.replace(run.config.settings(Part.VOORBEELDZINNEN), max_tokens=max_tokens, count=1)
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
        call = Call(
            settings=settings,
            messages=build_combined_messages(run.request, counts),
            label=COMBINED_LABEL,
            parse=parse,
            extra_body={"response_format": combined_response_format(kind, counts)},
            note=_FORMAT_NOTES[kind],
            attempt_offset=attempts,
        )
        outcome = await run.caller.call_part(call)
        attempts += outcome.attempts
        if outcome.error_kind != UNSUPPORTED_FORMAT:
            break  # answered, or failed for a reason another format would not fix
    return {} if outcome.error else found


async def combined(run: RunContext, parts: Sequence[Part]) -> None:
    counts = {p: run.config.settings(p).count for p in ALL_PARTS}
    found = await _ask_combined(run, counts, parts)
    for part in parts:
        if part in found:
            result = found[part]
            run.store(part, PartOutcome(part=part, value=result.value, shortfall=result.shortfall))
    missing = [p for p in parts if p not in found]
    if missing:
        await fan_out(missing, run.run_part, name=lambda p: f"{p}:fallback")

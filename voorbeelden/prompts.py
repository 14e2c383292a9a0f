"""Dutch prompts, one user message per part (no system prompt, as in the field tool).

The first line is a contract with the simulator (and a plain instruction to a real model): ``Geef precies N
<part> ...`` or ``Geef een korte toelichting ...``. The simulator recognises the part and the item count from
that line alone, so it must stay first and keep this wording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from voorbeelden.config import PartSettings
from voorbeelden.types import CONTEXT_KEYS, Part, Request

_CONTEXT_LABELS = {"organisatorisch": "Organisatorisch", "juridisch": "Juridisch", "wettelijk": "Wettelijk"}

# What each part is for, in the words a Dutch domain expert would use.
_TASKS: dict[Part, str] = {
    Part.VOORBEELDZINNEN: "Elke zin gebruikt het begrip op een natuurlijke manier, passend bij de definitie.",
    Part.PRAKTIJKVOORBEELDEN: (
        "Elk praktijkvoorbeeld beschrijft in twee of drie zinnen een concrete situatie uit de praktijk "
        "waarin het begrip van toepassing is."
    ),
    Part.TEGENVOORBEELDEN: (
        "Elk tegenvoorbeeld beschrijft kort een situatie die op het begrip lijkt maar er volgens de "
        "definitie niet onder valt, met de reden waarom niet."
    ),
    Part.SYNONIEMEN: "Geef alleen woorden of korte woordgroepen met (vrijwel) dezelfde betekenis.",
    Part.ANTONIEMEN: "Geef alleen woorden of korte woordgroepen met een tegengestelde betekenis.",
    Part.TOELICHTING: (
        "Leg in één alinea van hooguit vijf zinnen uit wat de definitie betekent en waar het begrip "
        "in de praktijk voor wordt gebruikt."
    ),
}


def render_context(context: Mapping[str, Sequence[str]]) -> str:
    """``Organisatorisch: a, b / Juridisch: geen / Wettelijk: c``: every key always shown, "geen" when empty,
    so the model never guesses whether a missing key means "none" or "unknown"."""
    return " / ".join(
        f"{_CONTEXT_LABELS[key]}: {', '.join(context.get(key, ())) or 'geen'}" for key in CONTEXT_KEYS
    )


def first_line(part: Part, begrip: str, count: int) -> str:
    if part is Part.TOELICHTING:
        return f'Geef een korte toelichting bij het begrip "{begrip}".'
    return f'Geef precies {count} {part.value} voor het begrip "{begrip}".'


def user_prompt(request: Request, part: Part, settings: PartSettings) -> str:
    lines = [
        first_line(part, request.begrip, settings.count),
        "",
        f"Definitie: {request.definitie or '(geen definitie opgegeven)'}",
        f"Context: {render_context(request.context)}",
        "",
        _TASKS[part],
    ]
    if part is Part.TOELICHTING:
        lines.append("Antwoord met alleen de toelichting, zonder kop of inleiding.")
    else:
        lines.append(
            f"Antwoord met precies {settings.count} regels, één {_item_noun(part)} per regel, "
            "zonder nummering, kopjes of inleiding."
        )
    return "\n".join(lines)


def _item_noun(part: Part) -> str:
    return {
        Part.VOORBEELDZINNEN: "zin",
        Part.PRAKTIJKVOORBEELDEN: "voorbeeld",
        Part.TEGENVOORBEELDEN: "tegenvoorbeeld",
        Part.SYNONIEMEN: "synoniem",
        Part.ANTONIEMEN: "antoniem",
    }[part]


def build_messages(request: Request, part: Part, settings: PartSettings) -> list[dict[str, str]]:
    return [{"role": "user", "content": user_prompt(request, part, settings)}]


def combined_prompt(request: Request, counts: Mapping[Part, int]) -> str:
    """One message asking for all six parts as one JSON object (the ``combined`` strategy).

    The first line deliberately does not start with ``Geef precies N <part>`` or ``Geef een toelichting``:
    the simulator treats a JSON-mode message that names several parts, without such a first line, as a
    combined request, and reads the ``N <part>`` pairs below as the per-part counts.
    """
    lines = [
        f'Maak voor het begrip "{request.begrip}" alle zes onderdelen in één JSON-object.',
        "",
        f"Definitie: {request.definitie or '(geen definitie opgegeven)'}",
        f"Context: {render_context(request.context)}",
        "",
        "Het object heeft precies deze sleutels:",
    ]
    for part in Part:
        if part is Part.TOELICHTING:
            lines.append(f"- {part.value}: één alinea (tekst). {_TASKS[part]}")
        else:
            lines.append(f"- {part.value}: een lijst van {counts[part]} {part.value}. {_TASKS[part]}")
    lines.append("Antwoord met alleen het JSON-object, zonder uitleg of codeblok.")
    return "\n".join(lines)


def build_combined_messages(request: Request, counts: Mapping[Part, int]) -> list[dict[str, str]]:
    return [{"role": "user", "content": combined_prompt(request, counts)}]

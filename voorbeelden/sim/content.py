"""Plausible Dutch answers with the right shape, so that parsing is exercised as with a real model.

Recognition rule (which part a request asks for; the same rule is in docs/CONTRACTS.md):

1. the first line of the last user message matches
   ``Geef precies (\\d+) (voorbeeldzinnen|praktijkvoorbeelden|tegenvoorbeelden|synoniemen|antoniemen)`` or
   ``Geef een (korte )?toelichting`` (case-insensitive);
2. else the first of the six part names, or their stems (``voorbeeldzin``, ``praktijkvoorbeeld``,
   ``tegenvoorbeeld``, ``synoniem``, ``antoniem``, ``toelicht``), found anywhere in the last user message;
3. else a generic answer (part ``generic``).

The item count is the ``precies N`` number, else the part's default (3, 3, 3, 5, 5, 1). The begrip is the
text between quotes after the word "begrip" (``begrip "X"``, ``begrip: 'X'``, ``begrip „X"``), else the rest
of a ``Begrip: X`` line, else "dit begrip".

With ``response_format`` ``json_object`` or ``json_schema``: a message that names two or more parts and has
no rule-1 first line gets one JSON object with all six parts (part ``combined``; ``N partname`` pairs in
the message override the default counts); otherwise a JSON list of the items (toelichting: a list of one).

Lists are one item per line without numbering or bullets; toelichting is one paragraph. The wording is a
deterministic choice from templates, keyed by the request's content draw.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from voorbeelden.types import ALL_PARTS

DEFAULT_COUNTS: dict[str, int] = {
    "voorbeeldzinnen": 3,
    "praktijkvoorbeelden": 3,
    "tegenvoorbeelden": 3,
    "synoniemen": 5,
    "antoniemen": 5,
    "toelichting": 1,
}
_STEMS: dict[str, str] = {
    "voorbeeldzin": "voorbeeldzinnen",
    "praktijkvoorbeeld": "praktijkvoorbeelden",
    "tegenvoorbeeld": "tegenvoorbeelden",
    "synoniem": "synoniemen",
    "antoniem": "antoniemen",
    "toelicht": "toelichting",
}
_HEAD_LIST = re.compile(
    r"geef\s+precies\s+(\d+)\s+(voorbeeldzinnen|praktijkvoorbeelden|tegenvoorbeelden|synoniemen|antoniemen)",
    re.IGNORECASE,
)
_HEAD_TOELICHTING = re.compile(r"geef\s+een\s+(korte\s+)?toelichting", re.IGNORECASE)
_ANY_STEM = re.compile("|".join(_STEMS), re.IGNORECASE)
_COUNT_PAIRS = re.compile(r"(\d+)\s+(" + "|".join(DEFAULT_COUNTS) + r")", re.IGNORECASE)
_BEGRIP_QUOTED = re.compile(r"begrip\w*\s*:?\s*[\"'“”„‘’«]([^\"'“”„‘’«»\n]{1,200})[\"'“”’»]", re.IGNORECASE)
_BEGRIP_LINE = re.compile(r"^\s*begrip\s*:\s*(.{1,200}?)\s*$", re.IGNORECASE | re.MULTILINE)
MAX_ITEMS = 50


@dataclass(frozen=True)
class Ask:
    """What a request asks for, as far as the simulator understands it."""

    part: str  # one of the six, "combined" or "generic"
    count: int
    begrip: str
    json_mode: bool
    counts: dict[str, int] | None = None  # per part, for "combined"


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
                return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def find_begrip(text: str) -> str:
    m = _BEGRIP_QUOTED.search(text)
    if m and m.group(1).strip():
        return m.group(1).strip()
    m = _BEGRIP_LINE.search(text)
    if m and m.group(1).strip():
        return m.group(1).strip().strip("\"'“”„‘’")
    return "dit begrip"


def recognise(messages: list[dict[str, Any]], json_mode: bool) -> Ask:
    text = last_user_text(messages)
    begrip = find_begrip(text)
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    m = _HEAD_LIST.search(first_line)
    if m:
        part = m.group(2).lower()
        return Ask(part, min(MAX_ITEMS, max(1, int(m.group(1)))), begrip, json_mode)
    if _HEAD_TOELICHTING.search(first_line):
        return Ask("toelichting", 1, begrip, json_mode)
    found = [_STEMS[s.group(0).lower()] for s in _ANY_STEM.finditer(text)]
    if json_mode and len(set(found)) >= 2:
        counts = dict(DEFAULT_COUNTS)
        for n, name in _COUNT_PAIRS.findall(text):
            counts[name.lower()] = min(MAX_ITEMS, max(1, int(n)))
        counts["toelichting"] = 1
        return Ask("combined", sum(counts.values()), begrip, json_mode, counts)
    if found:
        part = found[0]
        return Ask(part, DEFAULT_COUNTS[part], begrip, json_mode)
    return Ask("generic", 1, begrip, json_mode)


# ---- templates ---------------------------------------------------------------------------------------
_VOORBEELDZINNEN = [
    "De gemeente heeft {b} vorige week officieel vastgesteld.",
    "In het dossier staat precies beschreven hoe {b} tot stand is gekomen.",
    "Zonder een geldige vaststelling van {b} kan de aanvraag niet in behandeling worden genomen.",
    "De medewerker legde uit waarom {b} in dit geval van toepassing is.",
    "Het begrip {b} werd tijdens de vergadering uitgebreid besproken.",
    "Volgens de beleidsregel moet {b} binnen zes weken worden afgerond.",
    "Bij twijfel over {b} kan de burger contact opnemen met het klantcontactcentrum.",
    "Het team controleert elke toepassing van {b} voordat het in het register wordt opgenomen.",
]
_PRAKTIJK_OPENINGS = [
    "Een inwoner van Utrecht dient via het digitale loket een aanvraag in waarbij {b} centraal staat.",
    "Bij de Belastingdienst komt een dossier binnen waarin {b} een doorslaggevende rol speelt.",
    "Een ondernemer in Zwolle krijgt bij een controle te maken met {b}.",
    "Een medewerker van de uitvoeringsorganisatie beoordeelt een bezwaarschrift waarin {b} ter discussie staat.",
    "Tijdens een ketenoverleg tussen gemeente, politie en reclassering wordt {b} voor een casus uitgewerkt.",
    "Een student die studiefinanciering ontvangt, merkt dat {b} gevolgen heeft voor zijn uitkering.",
]
_PRAKTIJK_MIDDLES = [
    "De behandelaar verzamelt eerst alle relevante stukken en toetst of aan de voorwaarden uit de regeling is"
    " voldaan, waarbij zij let op termijnen, bevoegdheden en de gegevens die in de basisregistraties staan.",
    "Daarbij blijkt dat niet alle gegevens volledig zijn, zodat de organisatie aanvullende informatie opvraagt"
    " en de beslistermijn opschort totdat de ontbrekende stukken zijn ontvangen.",
    "Omdat de situatie afwijkt van het standaardproces, overlegt de behandelaar met een jurist en legt zij de"
    " afweging vast in het dossier, zodat later te controleren is waarom deze keuze is gemaakt.",
    "De organisatie gebruikt een vaste werkinstructie, maar moet in dit geval de algemene beginselen van"
    " behoorlijk bestuur meewegen, met name het zorgvuldigheidsbeginsel en het motiveringsbeginsel.",
]
_PRAKTIJK_ENDINGS = [
    "Uiteindelijk wordt een besluit genomen dat met redenen omkleed aan de betrokkene wordt toegestuurd,"
    " inclusief de mogelijkheid om binnen zes weken bezwaar te maken.",
    "Het resultaat wordt vastgelegd in het zaaksysteem, zodat collega's en toezichthouders later kunnen nagaan"
    " hoe {b} in deze zaak is toegepast.",
    "Het voorbeeld laat zien dat {b} in de praktijk vooral draait om zorgvuldige vastlegging en een"
    " heldere communicatie met de burger.",
    "Na afronding evalueert het team de casus, omdat vergelijkbare situaties vaker voorkomen en een eenduidige"
    " toepassing van {b} de rechtszekerheid vergroot.",
]
_TEGENVOORBEELDEN = [
    "Een mondelinge toezegging aan de balie is geen {b}, omdat er geen formeel besluit aan ten grondslag ligt.",
    "Een interne notitie tussen twee afdelingen valt niet onder {b}, want zij is niet naar buiten gericht.",
    "Een algemene voorlichtingsfolder is geen {b}: er worden geen rechten of plichten in vastgelegd.",
    "Een conceptversie die nooit is vastgesteld, kan niet als {b} worden aangemerkt.",
    "Een privéafspraak tussen twee burgers is geen {b}, omdat er geen bestuursorgaan bij betrokken is.",
    "Een verlopen registratie geldt niet langer als {b}, ook al staat zij nog in het archief.",
]
_SYNONIEMEN = [
    "verwante term voor {b}",
    "{b} in ruime zin",
    "gelijkwaardige aanduiding",
    "vakterm voor {b}",
    "alternatieve benaming",
    "synonieme omschrijving",
    "{b} (spreektaal)",
    "formele aanduiding van {b}",
]
_ANTONIEMEN = [
    "het ontbreken van {b}",
    "tegenhanger van {b}",
    "niet-{b}",
    "afwijzing",
    "intrekking",
    "opheffing van {b}",
    "weigering",
    "afwezigheid van {b}",
]
_TOELICHTING = [
    "Het begrip {b} wordt gebruikt om aan te geven wanneer een situatie onder de regeling valt.",
    "De definitie legt vast welke kenmerken doorslaggevend zijn en welke omstandigheden buiten beschouwing blijven.",
    "In de praktijk is vooral van belang dat {b} eenduidig wordt toegepast, zodat burgers weten waar zij aan"
    " toe zijn.",
    "De afbakening sluit aan bij de bestaande wet- en regelgeving en voorkomt dat verschillende organisaties het"
    " begrip op uiteenlopende wijze uitleggen.",
    "Waar twijfel bestaat, geeft de context van de organisatie de doorslag.",
]
_GENERIC = [
    "Het begrip {b} wordt in de context van de Nederlandse overheid regelmatig gebruikt.",
    "Bij het toepassen ervan is het belangrijk om de definitie en de juridische context in samenhang te lezen.",
]


def _pick(rng: np.random.Generator, pool: list[str], n: int) -> list[str]:
    order = list(rng.permutation(len(pool)))
    out = [pool[i] for i in order[:n]]
    k = 2
    while len(out) < n:  # more asked than templates: vary instead of repeating verbatim
        out.extend(f"{pool[i].rstrip('.')} (variant {k})." for i in order[: n - len(out)])
        k += 1
    return out


def _fill(items: list[str], begrip: str) -> list[str]:
    return [t.replace("{b}", begrip) for t in items]


def items_for(part: str, n: int, begrip: str, rng: np.random.Generator) -> list[str] | str:
    """The full (uncut) answer for one part: a list of ``n`` items, or a paragraph for toelichting."""
    if part == "voorbeeldzinnen":
        return _fill(_pick(rng, _VOORBEELDZINNEN, n), begrip)
    if part == "praktijkvoorbeelden":
        opens = _pick(rng, _PRAKTIJK_OPENINGS, n)
        mids = _pick(rng, _PRAKTIJK_MIDDLES, n)
        ends = _pick(rng, _PRAKTIJK_ENDINGS, n)
        return _fill([f"{a} {m} {e}" for a, m, e in zip(opens, mids, ends, strict=True)], begrip)
    if part == "tegenvoorbeelden":
        return _fill(_pick(rng, _TEGENVOORBEELDEN, n), begrip)
    if part == "synoniemen":
        return _fill(_pick(rng, _SYNONIEMEN, n), begrip)
    if part == "antoniemen":
        return _fill(_pick(rng, _ANTONIEMEN, n), begrip)
    if part == "toelichting":
        first = _TOELICHTING[0]
        rest = [_TOELICHTING[1 + i] for i in rng.permutation(len(_TOELICHTING) - 1)[:3]]
        return " ".join(_fill([first, *rest], begrip))
    return " ".join(_fill(_GENERIC, begrip))


def render(ask: Ask, rng: np.random.Generator) -> str:
    """The complete message content the model would produce if nothing were cut."""
    if ask.part == "combined":
        counts = ask.counts or DEFAULT_COUNTS
        obj = {p.value: items_for(p.value, counts[p.value], ask.begrip, rng) for p in ALL_PARTS}
        return json.dumps(obj, ensure_ascii=False)
    answer = items_for(ask.part, ask.count, ask.begrip, rng)
    if ask.json_mode:
        return json.dumps(answer if isinstance(answer, list) else [answer], ensure_ascii=False)
    return "\n".join(answer) if isinstance(answer, list) else answer


def cut(text: str, tokens_out: int, tokens_needed: int) -> str:
    """Cut proportionally, as a model stopped by ``max_tokens`` would: fewer complete items, and the
    last one broken off mid-sentence (for JSON this leaves invalid JSON, as it does for real)."""
    if tokens_out >= tokens_needed:
        return text
    keep = max(1, int(len(text) * tokens_out / tokens_needed))
    return text[:keep].rstrip()

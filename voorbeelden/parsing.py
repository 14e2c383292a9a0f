"""Model text -> items.

Lenient about form (numbering, bullets, markdown, a preamble, a JSON list in a fence, comma-separated words),
strict about substance: text without a usable item (empty, only punctuation, a refusal) is a parse error that
the caller records, never an exception, so one odd answer cannot take down a generation.

Given the prompt (``prompt=``), it also drops what a small real model echoes back instead of answering: lines
that repeat the prompt's instructions ("Geef precies 3 voorbeeldzinnen ...", "Antwoord met precies 5
regels, ..."), the term itself offered as its own synonym or antonym, and ``Term: "X"`` wrappers around a
word. Duplicate items count once. What is left may be fewer items than asked: that shortfall is reported,
never padded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from voorbeelden.types import Part

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*+•·–—]\s+|\(?\d{1,2}[.):]\s*|\(?[a-zA-Z][.)]\s+)")
_HEADING = re.compile(r"^\s*#{1,6}\s*")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_QUOTES = "\"'“”„‘’«»"
_REFUSAL = re.compile(
    r"^\s*(het spijt me|sorry|helaas kan ik|ik kan (hier )?(geen|niet)|ik ben niet in staat|"
    r"i'?m sorry|i can(no|')t|i am unable|as an ai)",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^(hier (zijn|is|volgen)|zeker|natuurlijk|graag|prima|uiteraard|oké|ok)\b", re.IGNORECASE
)
_WORD_PARTS = (Part.SYNONIEMEN, Part.ANTONIEMEN)
_DATA_LABEL = re.compile(r"^\s*(definitie|context)\s*:", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"^\s*(antwoord|answer)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ParseResult:
    """``value`` is what the part shows; ``error`` is set only when nothing usable was found."""

    value: list[str] | str
    found: int
    shortfall: int = 0
    error: str | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Echo:
    """What the model might parrot from its prompt: the instruction lines and the term."""

    instructions: tuple[tuple[str, ...], ...] = ()
    begrip: str = ""

    @classmethod
    def from_prompt(cls, prompt: str | None) -> _Echo:
        if not prompt:
            return cls()
        lines = [ln for ln in prompt.splitlines() if ln.strip()]
        # Definitie and Context lines are data the model may legitimately reuse; the rest is instruction.
        instructions = tuple(_words(ln) for ln in lines if not _DATA_LABEL.match(ln))
        m = re.search(r'begrip "([^"]+)"', prompt)
        return cls(instructions, m.group(1).casefold() if m else "")

    def is_instruction(self, line: str) -> bool:
        """The line repeats an instruction: it starts with the same three words as one, or is a run of at
        least three words inside one (after an optional ``Label:``), or it repeats the prompt's labelled data
        (``Definitie: ...``, ``Context: ...``)."""
        if not self.instructions:
            return False
        if _DATA_LABEL.match(_BULLET.sub("", _strip_markdown(line))):
            return True
        candidates = [_words(line)]
        if ":" in line:
            candidates.append(_words(line.split(":", 1)[1]))
        for words in candidates:
            if len(words) < 3:
                continue
            for instr in self.instructions:
                if words[:3] == instr[:3] or _contains(instr, words):
                    return True
        return False


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", text.casefold()))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def parse_part(text: str | None, part: Part | str, count: int, prompt: str | None = None) -> ParseResult:
    """``prompt`` (the user message the text answers) lets the parser drop echoed instructions."""
    part = Part(part)
    text = (text or "").strip()
    if not text:
        return _fail(part, "empty", "the model returned no text")
    echo = _Echo.from_prompt(prompt)
    if part is Part.TOELICHTING:
        return _parse_paragraph(text, echo)
    items = _from_json(text)
    if items is None:
        items = _from_lines(text, part, echo)
    items = [i for i in (_clean_item(x, part, echo) for x in items) if i]
    items = _dedupe(items)
    if not items:
        if _REFUSAL.search(text):
            return _fail(part, "refusal", f"the model declined: {text[:80]!r}")
        return _fail(part, "no_items", f"no usable item in {text[:80]!r}")
    kept = items[:count]
    return ParseResult(value=kept, found=len(items), shortfall=max(0, count - len(kept)))


def _fail(part: Part, kind: str, message: str) -> ParseResult:
    return ParseResult(value=part.empty(), found=0, error=message, error_kind=kind)


def _unfence(text: str) -> str:
    m = _FENCE.search(text)
    return m.group(1).strip() if m else text


def _from_json(text: str) -> list[str] | None:
    """A JSON list (maybe fenced), or an object holding one list; anything else is left to line parsing."""
    candidate = _unfence(text)
    if not candidate.startswith(("[", "{")):
        return None
    try:
        data = json.loads(candidate)
    except ValueError:
        return None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            return None
        data = lists[0]
    if not isinstance(data, list):
        return None
    return [x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in data]


def _strip_markdown(line: str) -> str:
    line = _HEADING.sub("", line)
    return _EMPHASIS.sub(lambda m: m.group(2) or m.group(3) or "", line)


def _from_lines(text: str, part: Part, echo: _Echo) -> list[str]:
    lines = [ln.strip() for ln in _unfence(text).splitlines()]
    lines = [ln for ln in lines if ln and not _REFUSAL.match(ln) and not echo.is_instruction(ln)]
    items: list[str] = []
    for raw in lines:
        is_heading = bool(_HEADING.match(raw))
        line = _strip_markdown(raw).strip()
        bulleted = bool(_BULLET.match(line))
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        # A heading or a lead-in ("Hier zijn 3 synoniemen:") announces items; it is not one.
        if is_heading and not bulleted:
            continue
        if not bulleted and (line.endswith(":") or _PREAMBLE.match(line)) and len(lines) > 1:
            continue
        items.append(line)
    if part in _WORD_PARTS:
        return [w for item in items for w in re.split(r"[,;]\s*|\s+/\s+", item)]
    return items


def _clean_item(item: str, part: Part, echo: _Echo) -> str:
    item = _strip_markdown(item).strip()
    item = _BULLET.sub("", item).strip()
    item = _ANSWER_LABEL.sub("", item)  # "Antwoord: ..." announces the answer; it is not part of it
    if part in _WORD_PARTS:
        # 'besluit: "beschikking"' (the term, then the answer): the word is the part after.
        head, sep, tail = item.partition(": ")
        if sep and echo.begrip and head.strip().strip(_QUOTES).casefold() == echo.begrip:
            item = tail
        if echo.begrip and item.strip().strip(_QUOTES).rstrip(".!").casefold() == echo.begrip:
            return ""  # the bare term offered as its own synonym or antonym
        # "beschikking: een besluit over ..." or "beschikking - uitleg": the word is the part before.
        item = re.split(r"\s[-–—]\s|:\s|\s\(", item, maxsplit=1)[0]
        item = item.strip().rstrip(".!")
    item = item.strip().strip(_QUOTES).strip()
    if not any(ch.isalnum() for ch in item):
        return ""
    return item


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in items:
        if i.casefold() not in seen:
            seen.add(i.casefold())
            out.append(i)
    return out


def _parse_paragraph(text: str, echo: _Echo) -> ParseResult:
    data = _from_json(text)
    if data is not None:
        body = " ".join(data)
    else:
        candidate = _unfence(text)
        if candidate.startswith('"') and candidate.endswith('"'):
            try:
                candidate = str(json.loads(candidate))
            except ValueError:
                pass
        lines = []
        for raw in candidate.splitlines():
            if _HEADING.match(raw) or _REFUSAL.match(raw) or echo.is_instruction(raw):
                continue
            line = _strip_markdown(raw).strip()
            line = re.sub(r"^toelichting\s*:\s*", "", line, flags=re.IGNORECASE)
            if line and not (len(lines) == 0 and line.endswith(":")):
                lines.append(line)
        body = " ".join(lines)
    body = re.sub(r"\s+", " ", body).strip().strip(_QUOTES).strip()
    if not any(ch.isalnum() for ch in body):
        if _REFUSAL.search(text):
            return _fail(Part.TOELICHTING, "refusal", f"the model declined: {text[:80]!r}")
        return _fail(Part.TOELICHTING, "no_items", f"no usable explanation in {text[:80]!r}")
    return ParseResult(value=body, found=1)

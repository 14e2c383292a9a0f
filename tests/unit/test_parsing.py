"""Parsing: lenient about form, strict about substance, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voorbeelden.parsing import parse_part
from voorbeelden.types import ALL_PARTS, Part

V = Part.VOORBEELDZINNEN


@pytest.mark.parametrize(
    "text",
    [
        "Zin een.\nZin twee.\nZin drie.",
        "1. Zin een.\n2. Zin twee.\n3. Zin drie.",
        "1) Zin een.\n2) Zin twee.\n3) Zin drie.",
        "- Zin een.\n- Zin twee.\n- Zin drie.",
        "* Zin een.\n* Zin twee.\n* Zin drie.",
        "• Zin een.\n\n• Zin twee.\n\n• Zin drie.",
        "Hier zijn 3 voorbeeldzinnen:\n1. Zin een.\n2. Zin twee.\n3. Zin drie.",
        "## Voorbeeldzinnen\n1. **Zin een.**\n2. Zin twee.\n3. Zin drie.",
        '["Zin een.", "Zin twee.", "Zin drie."]',
        '```json\n["Zin een.", "Zin twee.", "Zin drie."]\n```',
        '{"voorbeeldzinnen": ["Zin een.", "Zin twee.", "Zin drie."]}',
        '1. "Zin een."\n2. "Zin twee."\n3. "Zin drie."',
    ],
)
def test_list_forms(text: str) -> None:
    r = parse_part(text, V, 3)
    assert r.ok and r.value == ["Zin een.", "Zin twee.", "Zin drie."]
    assert r.shortfall == 0


def test_bold_inside_sentence_kept_as_text() -> None:
    r = parse_part("1. Het **besluit** is genomen.", V, 1)
    assert r.value == ["Het besluit is genomen."]


def test_extra_items_trimmed_and_shortfall_recorded() -> None:
    r = parse_part("\n".join(f"{i}. Zin {i}." for i in range(1, 6)), V, 3)
    assert r.value == ["Zin 1.", "Zin 2.", "Zin 3."] and r.found == 5 and r.shortfall == 0
    r = parse_part("1. Zin 1.", V, 3)
    assert r.ok and r.value == ["Zin 1."] and r.shortfall == 2


@pytest.mark.parametrize(
    "text",
    [
        "beschikking, beslissing, uitspraak",
        "beschikking; beslissing; uitspraak",
        "1. beschikking\n2. beslissing\n3. uitspraak",
        "- **Beschikking**: een besluit voor één geval\n- beslissing\n- uitspraak",
        "Synoniemen:\nbeschikking, beslissing, uitspraak.",
        '```\n["beschikking", "beslissing", "uitspraak"]\n```',
    ],
)
def test_word_parts(text: str) -> None:
    r = parse_part(text, Part.SYNONIEMEN, 5)
    assert [w.lower() for w in r.value] == ["beschikking", "beslissing", "uitspraak"]
    assert r.shortfall == 2


def test_word_duplicates_removed() -> None:
    assert parse_part("a, A, b", Part.ANTONIEMEN, 5).value == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ("...\n---\n!!!", "no_items"),
        ("Het spijt me, maar daar kan ik niet mee helpen.", "refusal"),
        ("I'm sorry, I can't help with that.", "refusal"),
        ("[]", "no_items"),
    ],
)
@pytest.mark.parametrize("part", ALL_PARTS, ids=str)
def test_garbage_is_an_empty_part_with_an_error(text: str, kind: str, part: Part) -> None:
    r = parse_part(text, part, 3)
    assert not r.ok
    assert r.value == part.empty()
    if kind != "no_items" or part is not Part.TOELICHTING:
        assert r.error_kind == kind
    assert r.error


@pytest.mark.parametrize(
    "text",
    [
        "Een besluit is een beslissing.\nHet wordt gebruikt in het bestuursrecht.",
        "## Toelichting\nEen besluit is een beslissing. Het wordt gebruikt in het bestuursrecht.",
        "Toelichting: Een besluit is een beslissing. Het wordt gebruikt in het bestuursrecht.",
        '"Een besluit is een beslissing. Het wordt gebruikt in het bestuursrecht."',
        '```json\n["Een besluit is een beslissing.", "Het wordt gebruikt in het bestuursrecht."]\n```',
    ],
)
def test_toelichting_is_one_paragraph(text: str) -> None:
    r = parse_part(text, Part.TOELICHTING, 1)
    assert r.value == "Een besluit is een beslissing. Het wordt gebruikt in het bestuursrecht."


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.sampled_from(ALL_PARTS), st.integers(1, 6))
def test_never_raises(text: str, part: Part, count: int) -> None:
    r = parse_part(text, part, count)
    if part.is_list:
        assert isinstance(r.value, list) and len(r.value) <= count
        assert all(isinstance(i, str) and i.strip() for i in r.value)
    else:
        assert isinstance(r.value, str)
    assert r.ok == (r.error is None)

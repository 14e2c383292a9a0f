"""Prompts and per-part config: the first line is a contract with the simulator, the settings one place."""

from __future__ import annotations

import re

import pytest

from voorbeelden.config import GeneratorConfig, PartSettings, RetryPolicy, default_part_settings
from voorbeelden.prompts import build_messages, render_context
from voorbeelden.types import ALL_PARTS, Part, Request

SIM_LINE = re.compile(
    r"Geef precies (\d+) (voorbeeldzinnen|praktijkvoorbeelden|tegenvoorbeelden|synoniemen|antoniemen)"
    r"|Geef een (korte )?toelichting",
    re.IGNORECASE,
)

REQ = Request(
    begrip="besluit",
    definitie="Een schriftelijke beslissing van een bestuursorgaan.",
    context={"organisatorisch": ["Gemeente", "Provincie"], "juridisch": [], "wettelijk": ["Awb"]},
)


@pytest.mark.parametrize("part", ALL_PARTS, ids=str)
def test_first_line_names_part_and_count(part: Part) -> None:
    cfg = GeneratorConfig()
    msgs = build_messages(REQ, part, cfg.settings(part))
    assert [m["role"] for m in msgs] == ["user"]
    first = msgs[-1]["content"].splitlines()[0]
    m = SIM_LINE.match(first)
    assert m, first
    if part is Part.TOELICHTING:
        assert first.startswith("Geef een korte toelichting")
    else:
        assert m.group(2) == part.value
        assert int(m.group(1)) == cfg.settings(part).count
    assert '"besluit"' in first


def test_example_line_exact() -> None:
    msgs = build_messages(REQ, Part.SYNONIEMEN, default_part_settings("m")[Part.SYNONIEMEN])
    assert msgs[0]["content"].splitlines()[0] == 'Geef precies 5 synoniemen voor het begrip "besluit".'


def test_prompt_carries_definition_and_context() -> None:
    text = build_messages(REQ, Part.VOORBEELDZINNEN, GeneratorConfig().settings("voorbeeldzinnen"))[0][
        "content"
    ]
    assert REQ.definitie in text
    assert "Organisatorisch: Gemeente, Provincie / Juridisch: geen / Wettelijk: Awb" in text
    assert "één zin per regel" in text


def test_render_context_missing_keys_are_geen() -> None:
    assert render_context({}) == "Organisatorisch: geen / Juridisch: geen / Wettelijk: geen"


def test_count_in_prompt_follows_settings() -> None:
    s = PartSettings(model="m", temperature=0.1, max_tokens=10, count=7)
    assert build_messages(REQ, Part.ANTONIEMEN, s)[0]["content"].startswith("Geef precies 7 antoniemen")


def test_default_settings_match_the_field() -> None:
    cfg = GeneratorConfig()
    order = [
        Part.VOORBEELDZINNEN,
        Part.PRAKTIJKVOORBEELDEN,
        Part.TEGENVOORBEELDEN,
        Part.SYNONIEMEN,
        Part.ANTONIEMEN,
        Part.TOELICHTING,
    ]
    assert [cfg.settings(p).count for p in order] == [3, 3, 3, 5, 5, 1]
    assert [cfg.settings(p).temperature for p in order] == [0.5, 0.6, 0.6, 0.2, 0.2, 0.3]
    assert cfg.settings(Part.PRAKTIJKVOORBEELDEN).max_tokens == 1500
    assert all(cfg.settings(p).max_tokens >= 300 for p in order)


def test_model_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "my-model")
    assert {s.model for s in GeneratorConfig().parts.values()} == {"my-model"}
    monkeypatch.delenv("OPENAI_MODEL")
    assert {s.model for s in GeneratorConfig().parts.values()} == {"gpt-4.1"}
    assert {s.model for s in GeneratorConfig().with_model("x").parts.values()} == {"x"}


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="lacks"):
        GeneratorConfig(parts={Part.SYNONIEMEN: PartSettings("m", 0.2, 10, 5)})
    with pytest.raises(ValueError):
        PartSettings("m", 3.0, 10, 5)
    with pytest.raises(ValueError):
        GeneratorConfig(k=0)
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    assert GeneratorConfig().to_dict()["parts"]["synoniemen"]["count"] == 5

"""Every key a run uses is redacted, whatever its length: a short one (``ollama``) as a word of its own and
after ``Bearer``, never inside other words; the simulator's placeholder key is no secret. Failed on 487172d
(keys under 8 characters were never redacted, not even after ``Bearer``)."""

from __future__ import annotations

import pytest

from voorbeelden.redact import MASK, redact, redact_obj


def test_a_short_key_from_the_environment_is_redacted_as_a_word(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "ollama")
    assert redact("Authorization: Bearer ollama") == f"Authorization: Bearer {MASK}"
    assert redact('{"api-key-used": "ollama"}') == f'{{"api-key-used": "{MASK}"}}'
    assert redact("ollamas and my-ollama stay") == "ollamas and my-ollama stay"  # not inside other words
    assert redact_obj({"error": "key ollama refused"}) == {"error": f"key {MASK} refused"}


def test_a_short_key_the_caller_names_is_redacted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert redact("Bearer k3y", ["k3y"]) == f"Bearer {MASK}"
    assert redact_obj(["x k3y y"], ["k3y"]) == [f"x {MASK} y"]


def test_the_simulators_placeholder_key_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from voorbeelden.backend import PLACEHOLDER_KEY

    monkeypatch.setenv("OPENAI_API_KEY", PLACEHOLDER_KEY)
    assert redact(f"key {PLACEHOLDER_KEY}") == f"key {PLACEHOLDER_KEY}"

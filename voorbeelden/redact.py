"""The one redaction step: API keys and key-like strings out of anything printed, stored or rendered.

An upstream server may echo the key it was sent (in an error body, a header dump, a URL with ``api_key=``),
and that text flows into CallRecords, JSON results, notebooks and reports. Rather than trusting every path
to be careful, error text is redacted where it enters a record (:mod:`voorbeelden.caller`) and again at every
output boundary (``generate --json``, batch result lines, the notebooks' JSON/JSONL side files, executed
notebooks, ``summary.json`` and ``index.html``).

What is replaced by :data:`MASK`:

* the exact value of every environment variable named in :data:`KEY_ENV_VARS` (read at call time, so a key
  set after import is covered too), and of every key the caller names (``extra_secrets``: the key a run was
  given), whatever its length: a key of 8 characters or more wherever it appears, a shorter one (``ollama``)
  where it stands as a word of its own (``Bearer ollama``, ``"key": "ollama"``), so that a short key does
  not mask the same letters inside other words. The placeholder key the embedded simulator gets is no
  secret and is left alone;
* ``sk-...`` style keys (OpenAI, Anthropic-style ``sk-ant-...``, project keys ``sk-proj-...``);
* ``Bearer <token>`` (an ``Authorization`` header written out);
* ``api_key=...``, ``api-key=...``, ``apikey=...``, ``key=...``, ``access_token=...``, ``token=...`` in URLs
  and query strings, and ``"api_key": "..."``-style JSON fields;
* the password of ``scheme://user:password@host`` URLs.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"
KEY_ENV_VARS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY")
_MIN_SECRET_LEN = 8

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # sk-..., sk-proj-..., sk-ant-...: at least 16 key characters after the prefix.
    (re.compile(r"\bsk-(?:[A-Za-z]+-)?[A-Za-z0-9_\-]{16,}"), MASK),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"), rf"\1 {MASK}"),
    (
        re.compile(r"(?i)([?&;]|\b)((?:api[_-]?key|key|access[_-]?token|token|secret)=)[^&\s\"'#;]+"),
        rf"\1\2{MASK}",
    ),
    (
        re.compile(
            r"(?i)([\"']?(?:api[_-]?key|access[_-]?token|authorization|secret)[\"']?\s*:\s*[\"'])[^\"']+"
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@"), rf"\1{MASK}@"),
)


# Cheap test run before the patterns: a string with none of these cannot match any of them.
_MAYBE = re.compile(r"(?i)sk-|bearer|key|token|secret|authoriz|://")


def _keys(values: Iterable[str]) -> list[str]:
    """Keys worth hiding, longest first: not empty, not the simulator's placeholder."""
    from voorbeelden.backend import PLACEHOLDER_KEY

    found = {v.strip() for v in values if v and v.strip()} - {PLACEHOLDER_KEY, MASK}
    return sorted(found, key=len, reverse=True)


def secrets_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The key values to hide: every value of :data:`KEY_ENV_VARS`, longest first."""
    env = os.environ if environ is None else environ
    return _keys(env.get(name, "") for name in KEY_ENV_VARS)


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """``text`` with the environment's API keys, ``extra_secrets`` and key-like patterns masked."""
    if not text:
        return text
    return _redact(text, _keys([*secrets_from_env(), *extra_secrets]))


@functools.lru_cache(maxsize=64)
def _as_word(secret: str) -> re.Pattern[str]:
    """A short key where it stands alone: not inside a longer run of key characters."""
    return re.compile(rf"(?<![A-Za-z0-9_\-]){re.escape(secret)}(?![A-Za-z0-9_\-])")


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            if len(secret) >= _MIN_SECRET_LEN:
                text = text.replace(secret, MASK)
            else:
                text = _as_word(secret).sub(MASK, text)
    if _MAYBE.search(text):
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    return text


def redact_obj(value: Any, extra_secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like structure with every string redacted, keys too (tuples become lists, as in JSON)."""
    return _walk(value, _keys([*secrets_from_env(), *extra_secrets]))


def _walk(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _redact(value, secrets) if value else value
    if isinstance(value, Mapping):
        # Field names ("tokens_in", "api_key") are identifiers, never secrets: only other keys are checked.
        return {
            (_redact(k, secrets) if isinstance(k, str) and not k.isidentifier() else k): _walk(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_walk(v, secrets) for v in value]
    return value

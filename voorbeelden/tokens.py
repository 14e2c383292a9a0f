"""The one token estimate: prompt characters / 4, rounded up, plus the completion cap.

A client has to guess what a call will cost before it is sent (the batch's tokens-per-minute budget), a
server charges that same guess against its limit at admission (OpenAI does; so does the simulator), and a
plan shown before consent quotes it. All three use these two functions, so a call is counted the same way
on both sides of the wire. Standard library only: the simulator subprocess imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "DEFAULT_COMPLETION_TOKENS", "estimate_call_tokens", "estimate_prompt_tokens"]

CHARS_PER_TOKEN = 4
# What a call without max_tokens is assumed to cost: OpenAI reserves the model's maximum; 1,000 is the
# order of one voorbeelden part and keeps an unknown call from blocking a small token budget.
DEFAULT_COMPLETION_TOKENS = 1000


def estimate_prompt_tokens(messages: Iterable[Any] | None) -> int:
    """Prompt tokens of chat ``messages`` (string or text-part contents), at least 1."""
    chars = 0
    for m in messages or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return max(1, -(-chars // CHARS_PER_TOKEN))


def estimate_call_tokens(body: dict[str, Any] | None) -> int:
    """What a chat-completion request body will be charged at admission: prompt plus the completion cap."""
    if not body:
        return DEFAULT_COMPLETION_TOKENS
    cap = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_COMPLETION_TOKENS
    return estimate_prompt_tokens(body.get("messages")) + int(cap)

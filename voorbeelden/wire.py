"""One chat completion on the wire: the body a call sends, and how an answer or an error answer is read.

Apart from :mod:`voorbeelden.caller` (which runs the attempts) because the Batch API path
(:mod:`voorbeelden.batch.provider`) builds the same bodies and reads the same answers without a caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from voorbeelden.config import PartSettings

if TYPE_CHECKING:
    import openai

RETRYABLE_STATUS = frozenset({408, 409, 429})
_ERROR_KINDS = {400: "bad_request", 401: "auth", 403: "forbidden", 404: "not_found", 422: "bad_request"}
# A server that rejects the request's response_format rejects it again on a retry, whatever the status it
# uses for that (llama-cpp-python answers "json_schema" with a 500 validation error): not retryable.
UNSUPPORTED_FORMAT = "unsupported_response_format"


def error_kind_for_status(status: int) -> str:
    if status == 429:
        return "rate_limited"
    return _ERROR_KINDS.get(status, f"http_{status}")


def chat_body(
    settings: PartSettings, messages: list[dict[str, str]], extra_body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON body of one chat completion. One function because the Batch API path
    (``voorbeelden.batch.provider``) must put exactly what an online call sends into its request lines."""
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
    }
    if settings.seed is not None:
        body["seed"] = settings.seed
    if extra_body:
        body.update(extra_body)
    return body


def rejects_response_format(code: int, message: str, body: Mapping[str, Any]) -> bool:
    """True when an error answer says the server does not take this request's ``response_format``."""
    if "response_format" not in body or code not in (400, 422, 500, 501):
        return False
    text = message.lower()
    return any(word in text for word in ("response_format", "json_schema", "json schema"))


def read_completion(data: Any) -> tuple[str | None, str | None, dict[str, Any]]:
    """The three things a record needs from a chat-completion body; anything else shaped is malformed."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    choice = data["choices"][0]
    text = choice["message"].get("content")
    if text is not None and not isinstance(text, str):
        raise TypeError(f"message.content is {type(text).__name__}, not text")
    usage = data.get("usage")
    return text, choice.get("finish_reason"), usage if isinstance(usage, dict) else {}


def safe_base_url(client: openai.AsyncOpenAI) -> str:
    """The client's base URL as scheme://host[:port]/path: no user, password, query or fragment."""
    url = client.base_url
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path.rstrip('/')}"


def endpoint_host(client: openai.AsyncOpenAI) -> str:
    """Host and port of the endpoint, for error messages (never the key, which is a header, not the URL)."""
    url = client.base_url
    return f"{url.host}:{url.port}" if url.port else str(url.host)


def missing_v1_hint(client: openai.AsyncOpenAI) -> str:
    """For a 404: OpenAI-compatible servers serve ``/v1/chat/completions``; a base URL without ``/v1`` is
    the usual cause (``http://localhost:11434`` instead of ``http://localhost:11434/v1``)."""
    base = safe_base_url(client)
    if "/v1" in client.base_url.path:
        return ""
    return f" (the base URL {base} has no /v1; OpenAI-compatible servers answer under /v1: try {base}/v1)"


def short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

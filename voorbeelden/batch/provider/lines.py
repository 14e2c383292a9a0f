"""The Batch API's line formats, both ways: a term's request lines out, a provider's output lines back in.

The request line carries exactly the body an online call sends (:func:`voorbeelden.wire.chat_body` over
:func:`voorbeelden.prompts.build_messages`), so a term costs and reads the same either way; an output line
is parsed by the online path's parser (:func:`voorbeelden.parsing.parse_part`) with the online path's rules
for a cut-off answer and a short list, and a finished term becomes the same compact result line as an
online batch writes (:func:`voorbeelden.batch.records.compact_result`).

Formats (OpenAI's API reference; ``vllm run-batch`` reads and writes the same):
request ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``;
output ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.
``custom_id`` is ``<term key>:<part>``, the term key being the resume key of the online batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from voorbeelden.config import GeneratorConfig
from voorbeelden.parsing import parse_part
from voorbeelden.prompts import build_messages
from voorbeelden.strategies.registry import info
from voorbeelden.types import ALL_PARTS, CallRecord, Generation, Part, Request
from voorbeelden.wire import RETRYABLE_STATUS, chat_body, error_kind_for_status

__all__ = [
    "ENDPOINT",
    "LineResult",
    "assemble",
    "check_strategy",
    "custom_id",
    "read_output_line",
    "request_line",
    "split_custom_id",
    "split_into_files",
]

ENDPOINT = "/v1/chat/completions"
# Errors a provider reports for a line it did not run (window passed, batch cancelled or failed): worth
# sending again, unlike a 400 for the request itself.
RETRYABLE_CODES = frozenset({"batch_expired", "batch_cancelled", "batch_failed", "not_run"})


def check_strategy(strategy: str) -> None:
    """Refuse (ValueError) a strategy whose calls cannot be written down before the first answer: a batch
    line cannot stream, cannot be hedged, and split/combined decide their later calls from earlier answers."""
    entry = info(strategy)
    if entry.streams or strategy == "hedged":
        raise ValueError(
            f"--strategy {strategy} cannot go through the Batch API: a batch answers whole requests hours later, "
            "so there is nothing to stream or to hedge. Use sequential, parallel or bounded (the same six "
            "requests per term)"
        )
    if entry.calls != "per_part":
        raise ValueError(
            f"--strategy {strategy} is not supported through the Batch API here: its calls depend on earlier "
            "answers (fallbacks, split items). Use sequential, parallel or bounded (the same six requests per "
            "term)"
        )


def custom_id(key: str, part: Part) -> str:
    return f"{key}:{part.value}"


def split_custom_id(cid: str) -> tuple[str, Part] | None:
    """``(term key, part)`` of one of our custom_ids, None for anything else."""
    key, sep, name = cid.rpartition(":")
    if not sep or not key:
        return None
    try:
        return key, Part(name)
    except ValueError:
        return None


def messages_for(request: Request, part: Part, config: GeneratorConfig) -> list[dict[str, str]]:
    return build_messages(request, part, config.settings(part))


def request_line(key: str, request: Request, part: Part, config: GeneratorConfig) -> dict[str, Any]:
    """One input line: the body an online call of this part would send."""
    settings = config.settings(part)
    return {
        "custom_id": custom_id(key, part),
        "method": "POST",
        "url": ENDPOINT,
        "body": chat_body(settings, messages_for(request, part, config)),
    }


def dumps(line: Mapping[str, Any]) -> bytes:
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def split_into_files(
    terms: Iterable[tuple[str, list[bytes]]], max_lines: int, max_bytes: int
) -> Iterator[list[tuple[str, list[bytes]]]]:
    """Group terms (each its encoded lines) into files within ``max_lines`` and ``max_bytes``; a term's lines
    stay in one file, so a term is finished when one batch is. A term that alone exceeds a limit is a
    ValueError (it could never be sent)."""
    group: list[tuple[str, list[bytes]]] = []
    n_lines = n_bytes = 0
    for key, lines in terms:
        size = sum(len(x) for x in lines)
        if len(lines) > max_lines or size > max_bytes:
            raise ValueError(f"the requests of term {key} alone exceed one batch file's limits")
        if group and (n_lines + len(lines) > max_lines or n_bytes + size > max_bytes):
            yield group
            group, n_lines, n_bytes = [], 0, 0
        group.append((key, lines))
        n_lines += len(lines)
        n_bytes += size
    if group:
        yield group


@dataclass(frozen=True)
class LineResult:
    """What became of one request line: the part's value, or why not and whether sending it again may help."""

    part: Part
    value: list[str] | str
    ok: bool
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    http_status: int | None = None
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    shortfall: int = 0
    source: str = ""  # the batch id (or "online", or the imported file) that answered it

    def record(self, strategy: str, begrip: str, attempt: int, t_end: float) -> CallRecord:
        kind = self.error_kind
        short = f"{len(self.value)} of {len(self.value) + self.shortfall} items" if self.shortfall else None
        return CallRecord(
            part=self.part.value,
            attempt=attempt,
            t_start=0.0,
            t_end=t_end,
            latency_s=t_end,
            status=_status(self),
            strategy=strategy,
            scenario="openai-batch",
            begrip=begrip,
            error_kind=kind,
            error=self.error if not self.ok else short,
            http_status=self.http_status,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            finish_reason=self.finish_reason,
            note=f"batch:{self.source}" if self.source else None,
        )


def _status(result: LineResult) -> Any:
    if result.ok:
        return "ok"
    if result.error_kind in ("parse", "truncated"):
        return "parse_error"
    if result.http_status == 429:
        return "rate_limited"
    return "error"


def _failed(part: Part, kind: str, error: str, retryable: bool, **extra: Any) -> LineResult:
    return LineResult(part, part.empty(), False, error, kind, retryable, **extra)


def read_output_line(
    row: Mapping[str, Any], request: Request, part: Part, config: GeneratorConfig, source: str = ""
) -> LineResult:
    """One output (or error-file) line read as the online path reads an answer: an ``error`` (a line the
    provider did not run) or a non-200 response fails the part, retryable as online (408/409/429/5xx); a 200
    body is parsed with the online parser, a cut-off last item dropped, a short list marked."""
    error = row.get("error")
    if error:
        code = str(error.get("code") or "error") if isinstance(error, Mapping) else "error"
        message = str(error.get("message") or code) if isinstance(error, Mapping) else str(error)
        return _failed(part, code, f"{code}: {message}", code in RETRYABLE_CODES, source=source)
    response = row.get("response")
    if not isinstance(response, Mapping):
        return _failed(part, "malformed", "output line without a response", False, source=source)
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        code = status if isinstance(status, int) else 0
        message = body.get("error", {}).get("message") if isinstance(body, Mapping) else None
        retryable = code in RETRYABLE_STATUS or code >= 500
        kind = error_kind_for_status(code)
        return _failed(
            part, kind, f"HTTP {code}: {message or 'no message'}", retryable, http_status=code, source=source
        )
    try:
        choice = body["choices"][0]  # type: ignore[index]
        text = choice["message"].get("content")
        finish = choice.get("finish_reason")
        usage = body.get("usage") or {}  # type: ignore[union-attr]
    except (KeyError, IndexError, TypeError, AttributeError):
        return _failed(
            part, "malformed", "response body is not a chat completion", False, http_status=200, source=source
        )
    settings = config.settings(part)
    common = {
        "http_status": 200,
        "finish_reason": finish,
        "tokens_in": usage.get("prompt_tokens"),
        "tokens_out": usage.get("completion_tokens"),
        "source": source,
    }
    prompt = messages_for(request, part, config)[-1]["content"]
    result = parse_part(text if isinstance(text, str) else None, part, settings.count, prompt=prompt)
    truncated = finish == "length"
    if not result.ok:  # as online: an unusable answer is asked again (a fresh sample), a cut-off one is not
        kind = "truncated" if truncated else "parse"
        return _failed(part, kind, str(result.error), not truncated, **common)
    value = result.value
    if truncated and isinstance(value, list) and result.found > 1 and len(value) == result.found:
        value = value[:-1]  # as online: the last item was being written when the token budget ran out
    shortfall = max(0, settings.count - len(value)) if isinstance(value, list) else 0
    kind = "truncated" if truncated else ("shortfall" if shortfall else None)
    return LineResult(part, value, True, None, kind, False, shortfall=shortfall, **common)  # type: ignore[arg-type]


def assemble(
    request: Request,
    strategy: str,
    results: Mapping[Part, LineResult],
    attempts: Mapping[Part, int],
    wall_s: float,
    config: GeneratorConfig,
) -> Generation:
    """A term's :class:`Generation` from its six line results (a part without one failed as ``not_run``)."""
    parts: dict[Part, list[str] | str] = {}
    errors: dict[Part, str] = {}
    shortfalls: dict[Part, int] = {}
    records: list[CallRecord] = []
    for part in ALL_PARTS:
        res = results.get(part) or _failed(part, "not_run", "not answered by any batch", True)
        n = attempts.get(part, 1)
        parts[part] = res.value
        if not res.ok:
            errors[part] = f"{res.error_kind}: {res.error} (after {n} attempt{'s' if n != 1 else ''})"
        if res.shortfall or not res.ok:  # as online: a failed part is short of all its items
            shortfalls[part] = res.shortfall if res.ok else config.settings(part).count
        records.append(res.record(strategy, request.begrip, n, wall_s))
    return Generation(
        request=request,
        strategy=strategy,
        parts=parts,
        records=records,
        wall_s=wall_s,
        errors=errors,
        shortfalls=shortfalls,
        scenario="openai-batch",
        first_visible_s=wall_s if any(r.status == "ok" for r in records) else None,
    )

"""The OpenAI wire format on the way in: request validation and error bodies.

A client under test must be able to trust that every failure it sees was one the simulator *chose*
(a fault, a limit), so a malformed request gets an OpenAI-style 400/413 body and a bug in the simulator a
500 with the same shape, never a dropped connection or a traceback page.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("voorbeelden.sim")


def error_response(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as e:
        resp = error_response(e.status, str(e), param=e.param, code=e.code)
        if e.status == 408:  # the rest of the body may never come: answer, then close (no lingering read)
            resp.force_close()
            await resp.prepare(request)
            await resp.write_eof()
            if request.transport is not None:
                request.transport.close()
        return resp
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, e.reason or "error", type_="invalid_request_error", headers=None)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("simulator bug while handling %s %s", request.method, request.path)
        return error_response(500, "internal simulator error", type_="server_error")


# ---- request parsing -----------------------------------------------------------------------------------


async def read_json(request: web.Request, limit: int, timeout_s: float | None = None) -> dict[str, Any]:
    """The body as a JSON object, or :class:`BadRequest`: 413 over ``limit``, 408 when the announced body
    has not arrived within ``timeout_s`` (a half-sent request must not hold a connection forever), 400 when
    it is not JSON (nested too deeply included) or not an object."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(
            f"request body is {request.content_length} bytes; the limit is {limit}",
            status=413,
            code="request_too_large",
        )
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s):
            await _read_chunks(request, chunks, limit)
    except TimeoutError:
        raise BadRequest(
            f"request body not received within {timeout_s:g} s", status=408, code="request_timeout"
        ) from None
    try:
        body = json.loads(b"".join(chunks))
    except RecursionError:
        raise BadRequest("request body is JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


async def _read_chunks(request: web.Request, chunks: list[bytes], limit: int) -> None:
    size = 0
    try:
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise BadRequest(
                    f"request body is over the limit of {limit} bytes", status=413, code="request_too_large"
                )
            chunks.append(chunk)
    except (ConnectionResetError, HttpProcessingError):
        # The client went away (or half-closed) before sending Content-Length bytes: answer 400 when the
        # socket still takes it, instead of a "Error handling request" traceback in the server's log.
        raise BadRequest(f"request body ended after {size} bytes, before its Content-Length") from None


def _opt_int(body: dict[str, Any], name: str) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise BadRequest(f"{name} must be a positive integer, got {v!r}", param=name)
    return v


@dataclass
class ChatParams:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    json_mode: bool


def parse_chat(body: dict[str, Any]) -> ChatParams:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a string role", param=f"messages[{i}]")
        c = m.get("content")
        if c is not None and not isinstance(c, str | list):
            raise BadRequest(
                f"messages[{i}].content must be a string or a list", param=f"messages[{i}].content"
            )
        for j, piece in enumerate(c if isinstance(c, list) else ()):
            if not isinstance(piece, dict) or not isinstance(piece.get("text", ""), str):
                raise BadRequest(
                    f"messages[{i}].content[{j}] must be an object with a string text",
                    param=f"messages[{i}].content[{j}]",
                )
    model = body.get("model", "sim")
    if not isinstance(model, str):
        raise BadRequest("model must be a string", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", param="stream")
    so = body.get("stream_options") or {}
    if not isinstance(so, dict):
        raise BadRequest("stream_options must be an object", param="stream_options")
    max_tokens = _opt_int(body, "max_completion_tokens") or _opt_int(body, "max_tokens")
    rf = body.get("response_format") or {}
    if not isinstance(rf, dict):
        raise BadRequest("response_format must be an object", param="response_format")
    json_mode = rf.get("type") in ("json_object", "json_schema")
    return ChatParams(model, messages, stream, bool(so.get("include_usage")), max_tokens, json_mode)

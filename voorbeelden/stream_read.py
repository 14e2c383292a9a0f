"""One streamed chat completion read to its end, told apart from a stream that was cut off.

Apart from :mod:`voorbeelden.caller` (which runs the attempts and decides on retries) because reading SSE
is a job of its own: time to first token, the first visible item, usage or a count of chunks, and the two ways
a real server departs from the happy path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voorbeelden.types import CallRecord, Part
from voorbeelden.wire import read_completion

if TYPE_CHECKING:
    import openai

    from voorbeelden.caller import RunState


class StreamCut(Exception):
    """The stream ended (``[DONE]`` or end of body) without a finish_reason: cut off, not finished."""

    def __init__(self, chars: int, chunks: int) -> None:
        super().__init__(f"the server ended the stream without a finish_reason after {chars} characters")
        self.chars = chars
        self.chunks = chunks


async def read_stream(
    client: openai.AsyncOpenAI,
    state: RunState,
    part: Part | None,
    body: dict[str, Any],
    headers: dict[str, str],
    rec: CallRecord,
) -> tuple[str, str | None, dict[str, Any]]:
    """One streamed completion (``stream_options.include_usage``): sets ``rec.ttft_s`` at the first
    non-empty content delta and marks the run visible when a list part's first line is complete.

    Two ways a real server departs from the SSE happy path, both told apart here: a stream that ends
    without a finish_reason was cut off (raises :class:`StreamCut`, a retryable ``stream_cut``), and a
    server that answers ``stream: true`` with one plain JSON body is read as that body and noted as not
    streamed (``rec.note = "stream:plain_body"``; no TTFT). Without usage in the stream (llama.cpp sends
    none), ``tokens_out`` is the number of content chunks: such servers send one token per chunk."""
    call = client.chat.completions.with_streaming_response.create(
        **body, stream=True, stream_options={"include_usage": True}, extra_headers=headers
    )
    async with call as response:
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            data = await response.json()
            rec.note = "stream:plain_body"
            return read_completion(data)
        chunks = await response.parse()
        pieces: list[str] = []
        finish_reason: str | None = None
        usage: dict[str, Any] = {}
        line_done = False
        n_content = 0
        async for chunk in chunks:
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
                delta = choice.delta.content if choice.delta is not None else None
                if not delta:
                    continue
                n_content += 1
                if rec.ttft_s is None:
                    rec.ttft_s = state.now() - rec.t_start
                pieces.append(delta)
                if part is not None and part.is_list and not line_done and "\n" in delta:
                    head = "".join(pieces).split("\n", 1)[0]
                    if head.strip():
                        line_done = True
                        state.mark_visible()
    text = "".join(pieces)
    if finish_reason is None:
        rec.tokens_out = n_content or None
        raise StreamCut(len(text), n_content)
    if usage.get("completion_tokens") is None:
        usage = {**usage, "completion_tokens": n_content}
    return text, finish_reason, usage

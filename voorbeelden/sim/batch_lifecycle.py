"""A simulated batch from upload to result files: the phases on the simulator's clock, and each line answered.

Kept apart from the routes (:mod:`voorbeelden.sim.batches`) because this is the part with behaviour to
reason about: when a batch changes status, which lines reach the output or the error file when it completes,
expires or is cancelled, and how one line is answered by the same chat model as an online call (so a
batch's content is the same kind as an online run's, and ``max_tokens`` cuts it the same way).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from voorbeelden.sim.batches import MAX_INPUT_LINES, BatchSimSettings, BatchStore, SimBatch
from voorbeelden.sim.latency import keyed_rng
from voorbeelden.sim.protocol import BadRequest

_YIELD_EVERY = 500  # lines handled between yields to the loop, so online calls are not starved


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _phase(batch: SimBatch, seconds: float) -> bool:
    """Wait ``seconds`` (already scaled); True when the batch was cancelled meanwhile."""
    try:
        await asyncio.wait_for(batch.cancel.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return batch.cancel.is_set()
    return True


async def run_lifecycle(store: BatchStore, st: Any, batch: SimBatch) -> None:
    s, scale = store.settings, st.config.time_scale
    lines = await _validate(store, batch)
    if lines is None:
        return
    if await _phase(batch, s.validate_s * scale):
        return await _finish_cancelled(store, st, batch, lines, 0)
    batch.status = "in_progress"
    batch.times["in_progress_at"] = int(time.time())
    span = s.complete_s * scale
    expires = s.complete_s > s.window_s
    run_for = s.window_s * scale if expires else span
    start = _now()
    batch.progress = (start, span)
    if await _phase(batch, run_for):
        return await _finish_cancelled(store, st, batch, lines, batch.completed)  # frozen by the cancel
    done = batch.counts(_now())["completed"] if expires else len(lines)
    batch.progress = None
    batch.status = "finalizing"
    batch.times["finalizing_at"] = int(time.time())
    await _write_results(store, st, batch, lines, done, "batch_expired" if expires else None)
    await asyncio.sleep(s.finalize_s * scale)
    final = "expired" if expires else "completed"
    batch.status = final
    batch.times[f"{final}_at"] = int(time.time())


async def _validate(store: BatchStore, batch: SimBatch) -> list[dict[str, Any]] | None:
    """The input's lines, or None after failing the batch with OpenAI-style ``errors`` (line numbers)."""
    stored = store.files[batch.input_file_id]
    errors: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    with open(stored.path, "rb") as f:  # noqa: ASYNC230 (local temp file; yields every 500 lines)
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            problem = _line_problem(obj, batch.endpoint, seen)
            if problem:
                errors.append({"code": "invalid_request", "message": problem, "param": None, "line": n})
            else:
                seen.add(obj["custom_id"])  # type: ignore[index]
                lines.append(obj)  # type: ignore[arg-type]
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
    if len(lines) > MAX_INPUT_LINES:
        errors.append({"code": "too_many_requests", "message": f"more than {MAX_INPUT_LINES} requests"})
    models = {line["body"].get("model") for line in lines}
    if len(models) > 1:
        errors.append({"code": "mixed_models", "message": "all requests of a batch must use one model"})
    if not lines and not errors:
        errors.append({"code": "empty_file", "message": "the input file has no requests"})
    batch.total = len(lines)
    if errors:
        batch.errors = errors[:100]
        batch.status = "failed"
        batch.times["failed_at"] = int(time.time())
        return None
    batch.model = next(iter(models))
    return lines


def _line_problem(obj: Any, endpoint: str, seen: set[str]) -> str | None:
    if not isinstance(obj, dict):
        return "line is not a JSON object"
    cid = obj.get("custom_id")
    if not isinstance(cid, str) or not cid:
        return "custom_id must be a non-empty string"
    if cid in seen:
        return f"duplicate custom_id {cid!r}"
    if obj.get("method") != "POST" or obj.get("url") != endpoint:
        return f"method must be POST and url {endpoint}"
    if not isinstance(obj.get("body"), dict):
        return "body must be an object"
    return None


async def _finish_cancelled(
    store: BatchStore, st: Any, batch: SimBatch, lines: list[dict[str, Any]], done: int
) -> None:
    batch.progress = None
    await asyncio.sleep(store.settings.cancel_s * st.config.time_scale)
    await _write_results(store, st, batch, lines, done, None)
    batch.status = "cancelled"
    batch.times["cancelled_at"] = int(time.time())


async def _write_results(
    store: BatchStore, st: Any, batch: SimBatch, lines: list[dict[str, Any]], done: int, rest_code: str | None
) -> None:
    """Answer the first ``done`` lines into the output file (errors into the error file); the others get
    ``rest_code`` in the error file (expired), or nothing (cancelled)."""
    out_id, err_id = store.new_id("file"), store.new_id("file")
    n_out = n_err = 0
    with (
        open(store.path_for(out_id), "w", encoding="utf-8") as out,  # noqa: ASYNC230 (as above)
        open(store.path_for(err_id), "w", encoding="utf-8") as err,  # noqa: ASYNC230 (as above)
    ):
        for i, line in enumerate(lines):
            if i < done:
                attempt = store.line_attempts[line["custom_id"]] = (
                    store.line_attempts.get(line["custom_id"], 0) + 1
                )
                row, ok = answer_line(st, store.settings, line, attempt)
            elif rest_code is not None:
                row = _error_row(
                    line,
                    None,
                    {
                        "code": rest_code,
                        "message": "This request could not be executed before the completion window expired.",
                    },
                )
                ok = False
            else:
                continue
            (out if ok else err).write(json.dumps(row, ensure_ascii=False) + "\n")
            n_out, n_err = n_out + ok, n_err + (not ok)
            if i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
    batch.completed, batch.failed = n_out, n_err
    for file_id, n, attr in ((out_id, n_out, "output_file_id"), (err_id, n_err, "error_file_id")):
        path = store.path_for(file_id)
        if n:
            store.add_file(f"{batch.id}_{attr.split('_')[0]}.jsonl", "batch_output", path, file_id)
            setattr(batch, attr, file_id)
        else:
            path.unlink(missing_ok=True)


def _error_row(
    line: dict[str, Any], response: dict[str, Any] | None, error: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": f"batch_req_{line['custom_id']}",
        "custom_id": line["custom_id"],
        "response": response,
        "error": error,
    }


def answer_line(
    st: Any, settings: BatchSimSettings, line: dict[str, Any], attempt: int = 1
) -> tuple[dict[str, Any], bool]:
    """One output line (``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``)
    answered by the simulator's chat model, and whether it succeeded. Used for every batch line."""
    from voorbeelden.sim import content
    from voorbeelden.sim.app import _completion, _sample
    from voorbeelden.sim.protocol import parse_chat

    cid = line["custom_id"]
    cfg = st.config
    request_id = f"req_sim_{cid}"
    rate = float(settings.line_error_rate)
    if rate > 0 and keyed_rng(cfg.seed, cid, "batch", attempt, "line_error").random() < rate:
        status = settings.line_error_status
        body = {"error": {"message": f"simulated line error (HTTP {status})", "type": "server_error"}}
        resp = {"status_code": status, "request_id": request_id, "body": body}
        return _error_row(line, resp, None), False
    try:
        params = parse_chat(line["body"])
        ask = content.recognise(params.messages, params.json_mode)
    except (BadRequest, ValueError, TypeError) as e:
        body = {"error": {"message": str(e), "type": "invalid_request_error"}}
        return _error_row(line, {"status_code": 400, "request_id": request_id, "body": body}, None), False
    call = _LineCall(cfg, params, ask, cid, attempt)
    sample = _sample(call, cfg.resolved_profile(), None)  # type: ignore[arg-type]
    text = content.cut(content.render(ask, call.rng("content")), sample.tokens_out, sample.tokens_needed)
    usage = {"prompt_tokens": _prompt_tokens(params.messages), "completion_tokens": sample.tokens_out}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    body = _completion(call, text, "length" if sample.truncated else "stop", usage)  # type: ignore[arg-type]
    return _error_row(line, {"status_code": 200, "request_id": request_id, "body": body}, None), True


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    from voorbeelden.tokens import estimate_prompt_tokens

    return estimate_prompt_tokens(messages)


@dataclass
class _LineCall:
    """What :func:`voorbeelden.sim.app._sample` and ``_completion`` read of a call, for a batch line."""

    cfg: Any
    params: Any
    ask: Any
    key: str
    attempt: int = 1
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def id(self) -> str:
        return f"chatcmpl-simbatch-{self.key}"

    def rng(self, stream: str) -> Any:
        return keyed_rng(self.cfg.seed, self.key, self.ask.part, self.attempt, stream)


__all__ = ["answer_line", "run_lifecycle"]

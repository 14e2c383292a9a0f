"""OpenAI's Files and Batch API in the simulator: upload a JSONL file, run it as a batch, download the results.

Why it exists: the Batch API path (:mod:`voorbeelden.batch.provider`) must be tested end to end with the real
``openai`` SDK and without a key, and a notebook must show what a batch's completion time looks like beside an
online run. So this module serves the routes the SDK calls (``client.files.create/retrieve/content``,
``client.batches.create/retrieve/list/cancel``) with OpenAI's object shapes, and a batch goes through the
documented lifecycle on the simulator's clock (every duration is model seconds times ``time_scale``):

``validating`` (``validate_s``) -> ``in_progress`` (``complete_s``; ``request_counts.completed`` grows
evenly) -> ``finalizing`` (``finalize_s``) -> ``completed``; or ``failed`` (a file that is not batch input),
``expired`` (``complete_s`` beyond ``window_s``: the lines done by the window are in the output file, the
rest in the error file with code ``batch_expired``), ``cancelling`` (``cancel_s``) -> ``cancelled``
(the lines done by the cancel are in the output file).

Each line is answered by the simulator's own chat-completion model (:mod:`voorbeelden.sim.content` and the
latency profile's token draw, so ``max_tokens`` cuts an answer as it does online), with its draws keyed by the
line's ``custom_id``. ``line_error_rate`` makes that share of lines (a keyed draw, so the same lines every
time) fail with ``line_error_status``; they go to the error file. Files live in a temporary folder of the
app, removed when the server stops. Tune everything at run time with ``POST /admin/batches``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from voorbeelden.sim.protocol import BadRequest, read_json

MAX_INPUT_LINES = 50_000  # OpenAI's documented limits per batch input file
MAX_INPUT_BYTES = 200 * 1024 * 1024
ENDPOINTS = ("/v1/chat/completions",)
TERMINAL = ("completed", "failed", "expired", "cancelled")
_YIELD_EVERY = 500  # lines answered between yields to the loop, so online calls are not starved


@dataclass
class BatchSimSettings:
    """How long each phase takes (model seconds) and which lines fail."""

    validate_s: float = 2.0
    complete_s: float = 300.0
    finalize_s: float = 2.0
    cancel_s: float = 1.0
    window_s: float = 86_400.0  # completion_window "24h"
    line_error_rate: float = 0.0
    line_error_status: int = 500

    def __post_init__(self) -> None:
        for name in ("validate_s", "complete_s", "finalize_s", "cancel_s", "window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not 0.0 <= float(self.line_error_rate) <= 1.0:
            raise ValueError(f"line_error_rate must be between 0 and 1, got {self.line_error_rate!r}")
        if self.line_error_status not in (400, 408, 429, 500, 502, 503):
            raise ValueError("line_error_status must be one of 400, 408, 429, 500, 502, 503")


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    path: Path
    bytes: int
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass
class SimBatch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    created_at: int
    status: str = "validating"
    total: int = 0
    completed: int = 0
    failed: int = 0
    times: dict[str, int] = field(default_factory=dict)  # in_progress_at, finalizing_at, ...
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    model: str | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    progress: tuple[float, float] | None = None  # (loop time in_progress began, scaled seconds to complete)

    def counts(self, now: float) -> dict[str, int]:
        """``request_counts``: while in progress, the lines done so far on the simulated schedule."""
        if self.status == "in_progress" and self.progress is not None:
            start, span = self.progress
            frac = 1.0 if span <= 0 else min(1.0, max(0.0, (now - start) / span))
            return {"total": self.total, "completed": int(self.total * frac), "failed": 0}
        return {"total": self.total, "completed": self.completed, "failed": self.failed}

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + 86_400,
            **{k: self.times.get(k) for k in _TIME_FIELDS},
            "request_counts": self.counts(now),
            "metadata": self.metadata,
            "model": self.model,
        }


_TIME_FIELDS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


class BatchStore:
    """The files and batches of one running simulator (owned by its event loop)."""

    def __init__(self) -> None:
        self.settings = BatchSimSettings()
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, SimBatch] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        # times each custom_id was answered: a resent line is a new attempt with its own draws (an injected
        # line error is not repeated on every follow-up batch)
        self.line_attempts: dict[str, int] = {}
        self._dir = tempfile.TemporaryDirectory(prefix="voorbeelden-sim-files-")
        self._seq = 0

    def new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-sim{self._seq:06d}"

    def path_for(self, file_id: str) -> Path:
        return Path(self._dir.name) / f"{file_id}.jsonl"

    def add_file(self, filename: str, purpose: str, path: Path, file_id: str) -> StoredFile:
        stored = StoredFile(file_id, filename, purpose, path, path.stat().st_size, int(time.time()))
        self.files[file_id] = stored
        return stored

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self._dir.cleanup()


STORE_KEY: web.AppKey[BatchStore] = web.AppKey("sim_batches")


def _store(request: web.Request) -> BatchStore:
    return request.app[STORE_KEY]


# ---- files ---------------------------------------------------------------------------------------------


async def create_file(request: web.Request) -> web.Response:
    """``POST /v1/files`` (multipart: ``purpose``, ``file``), streamed to disk, at most MAX_INPUT_BYTES."""
    store = _store(request)
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("POST /v1/files takes multipart/form-data with 'purpose' and 'file'")
    reader = await request.multipart()
    purpose, filename, file_id, path = None, "upload.jsonl", store.new_id("file"), None
    async for part in reader:
        if part.name == "purpose":
            purpose = (await part.text()).strip()  # type: ignore[union-attr]
        elif part.name == "file":
            filename = part.filename or filename  # type: ignore[union-attr]
            path = store.path_for(file_id)
            size = 0
            with open(path, "wb") as f:  # noqa: ASYNC230 (the sim's own temp folder; chunks of 1 MiB)
                while chunk := await part.read_chunk(1 << 20):  # type: ignore[union-attr]
                    size += len(chunk)
                    if size > MAX_INPUT_BYTES:
                        f.close()
                        path.unlink(missing_ok=True)
                        raise BadRequest(f"file is larger than {MAX_INPUT_BYTES} bytes", param="file")
                    f.write(chunk)
    if path is None:
        raise BadRequest("missing 'file'", param="file")
    if purpose != "batch":
        path.unlink(missing_ok=True)
        raise BadRequest(f"purpose must be 'batch' here, got {purpose!r}", param="purpose")
    return web.json_response(store.add_file(filename, purpose, path, file_id).to_dict())


def _file(request: web.Request) -> StoredFile:
    stored = _store(request).files.get(request.match_info["file_id"])
    if stored is None:
        raise BadRequest(f"No such File object: {request.match_info['file_id']}", status=404)
    return stored


async def retrieve_file(request: web.Request) -> web.Response:
    return web.json_response(_file(request).to_dict())


async def file_content(request: web.Request) -> web.StreamResponse:
    stored = _file(request)
    return web.FileResponse(stored.path, headers={"content-type": "application/octet-stream"})


async def delete_file(request: web.Request) -> web.Response:
    stored = _file(request)
    del _store(request).files[stored.id]
    stored.path.unlink(missing_ok=True)
    return web.json_response({"id": stored.id, "object": "file", "deleted": True})


def _now() -> float:
    return asyncio.get_running_loop().time()


def _sim(request: web.Request) -> Any:
    from voorbeelden.sim.app import STATE_KEY

    return request.app[STATE_KEY]


# ---- batches -------------------------------------------------------------------------------------------


async def create_batch(request: web.Request) -> web.Response:
    store, st = _store(request), _sim(request)
    body = await read_json(request, st.config.max_body_bytes, st.config.read_timeout_s)
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or file_id not in store.files:
        raise BadRequest(f"input_file_id {file_id!r} is not an uploaded file", param="input_file_id")
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise BadRequest(f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint")
    if body.get("completion_window") != "24h":
        raise BadRequest("completion_window must be '24h'", param="completion_window")
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise BadRequest("metadata must be at most 16 string keys and values", param="metadata")
    batch = SimBatch(store.new_id("batch"), file_id, endpoint, metadata, int(time.time()))
    store.batches[batch.id] = batch
    from voorbeelden.sim.batch_lifecycle import run_lifecycle

    task = asyncio.get_running_loop().create_task(run_lifecycle(store, st, batch))
    store.tasks.add(task)
    task.add_done_callback(store.tasks.discard)
    return web.json_response(batch.to_dict(_now()))


def _batch(request: web.Request) -> SimBatch:
    batch = _store(request).batches.get(request.match_info["batch_id"])
    if batch is None:
        raise BadRequest(f"No batch found with id {request.match_info['batch_id']!r}", status=404)
    return batch


async def retrieve_batch(request: web.Request) -> web.Response:
    return web.json_response(_batch(request).to_dict(_now()))


async def list_batches(request: web.Request) -> web.Response:
    """Newest first, ``limit`` (1-100, default 20) after the ``after`` id, as OpenAI pages them."""
    store = _store(request)
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise BadRequest("limit must be an integer", param="limit") from None
    if not 1 <= limit <= 100:
        raise BadRequest("limit must be between 1 and 100", param="limit")
    ordered = list(reversed(store.batches.values()))
    after = request.query.get("after")
    if after:
        ids = [b.id for b in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    now = _now()
    return web.json_response(
        {
            "object": "list",
            "data": [b.to_dict(now) for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(ordered) > limit,
        }
    )


async def cancel_batch(request: web.Request) -> web.Response:
    batch = _batch(request)
    if batch.status in TERMINAL:
        raise BadRequest(f"Cannot cancel a batch with status '{batch.status}'.", status=409)
    if batch.status != "cancelling":
        batch.completed = batch.counts(_now())["completed"]  # the lines done by now are kept
        batch.progress = None
        batch.status = "cancelling"
        batch.times["cancelling_at"] = int(time.time())
        batch.cancel.set()
    return web.json_response(batch.to_dict(_now()))


async def admin_batches(request: web.Request) -> web.Response:
    """``GET``: the lifecycle settings and how many batches are in each status; ``POST``: change settings."""
    store = _store(request)
    if request.method == "POST":
        st = _sim(request)
        body = await read_json(request, st.config.max_body_bytes, st.config.read_timeout_s)
        try:
            store.settings = dataclasses.replace(store.settings, **body)
        except (TypeError, ValueError) as e:
            raise BadRequest(f"batch settings: {e}") from None
    by_status: dict[str, int] = {}
    for b in store.batches.values():
        by_status[b.status] = by_status.get(b.status, 0) + 1
    return web.json_response({**dataclasses.asdict(store.settings), "batches": by_status})


def add_batch_routes(app: web.Application) -> None:
    """Register the Files and Batch routes and the store on ``app`` (its files removed on cleanup)."""
    store = BatchStore()
    app[STORE_KEY] = store

    async def cleanup(_: web.Application) -> None:
        await store.close()

    app.on_cleanup.append(cleanup)
    app.router.add_post("/v1/files", create_file)
    app.router.add_get("/v1/files/{file_id}", retrieve_file)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", retrieve_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
    app.router.add_get("/admin/batches", admin_batches)
    app.router.add_post("/admin/batches", admin_batches)


__all__ = ["BatchSimSettings", "BatchStore", "SimBatch", "add_batch_routes"]

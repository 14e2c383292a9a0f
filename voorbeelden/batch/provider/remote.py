"""Talking to the provider's Files and Batch API through the openai SDK: upload, create, find, poll, download,
cancel, with the state file written around every step that creates something there.

Each function does one provider step and leaves :class:`~voorbeelden.batch.provider.state.BatchEntry`
saying how far it got, so a kill between any two steps is resumed by calling the same function again:
:func:`submit` skips what the entry already has (a file id, a batch id) and first looks for a batch created
with the entry's tag when the id never reached the state file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai

from voorbeelden.batch.provider.lines import ENDPOINT
from voorbeelden.batch.provider.state import BatchEntry, BatchState

if TYPE_CHECKING:
    from openai.types import Batch

__all__ = ["LostBatch", "cancel", "download", "poll", "submit"]

TAG_KEY = "voorbeelden_tag"
FIND_LIMIT = 500  # most recent batches searched for a tag (a run creates a handful; others may be yours)


class LostBatch(Exception):
    """The endpoint does not know a batch the state file names (an embedded simulator that was restarted)."""


async def submit(
    client: openai.AsyncOpenAI, state: BatchState, entry: BatchEntry, lines: bytes, folder: Path
) -> None:
    """Upload ``lines`` and create the batch for ``entry``, saving the state after each step."""
    if entry.batch_id is None and entry.input_file_id is not None:
        found = await _find_by_tag(client, entry.tag)
        if found is not None:
            _adopt(entry, found)
            state.save()
            return
    if entry.input_file_id is None:
        folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (one local mkdir per batch)
        upload = folder / f"input-{entry.tag}.jsonl"
        upload.write_bytes(lines)
        try:
            uploaded = await client.files.create(file=upload, purpose="batch")
        finally:
            upload.unlink(missing_ok=True)
        entry.input_file_id = uploaded.id
        state.save()
    batch = await client.batches.create(
        input_file_id=entry.input_file_id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata={TAG_KEY: entry.tag, "round": str(entry.round), "lines": str(len(entry.custom_ids))},
    )
    _adopt(entry, batch)
    state.save()


async def _find_by_tag(client: openai.AsyncOpenAI, tag: str) -> Batch | None:
    seen = 0
    async for batch in client.batches.list(limit=100):
        if (batch.metadata or {}).get(TAG_KEY) == tag:
            return batch
        seen += 1
        if seen >= FIND_LIMIT:
            break
    return None


def _adopt(entry: BatchEntry, batch: Batch) -> None:
    entry.batch_id = batch.id
    entry.input_file_id = batch.input_file_id
    _update(entry, batch)


def _update(entry: BatchEntry, batch: Batch) -> None:
    entry.status = batch.status
    entry.output_file_id = batch.output_file_id
    entry.error_file_id = batch.error_file_id
    counts = batch.request_counts
    entry.counts = (
        {"total": counts.total, "completed": counts.completed, "failed": counts.failed} if counts else {}
    )
    if batch.errors and batch.errors.data:
        first = batch.errors.data[0]
        entry.note = f"{first.code}: {first.message} (line {first.line})"


async def poll(client: openai.AsyncOpenAI, entry: BatchEntry) -> None:
    """Refresh ``entry`` from the provider (raises :class:`LostBatch` when it does not know the id)."""
    assert entry.batch_id is not None
    try:
        batch = await client.batches.retrieve(entry.batch_id)
    except openai.NotFoundError:
        raise LostBatch(entry.batch_id) from None
    _update(entry, batch)


async def download(client: openai.AsyncOpenAI, entry: BatchEntry, folder: Path) -> list[Path]:
    """The entry's output and error files, streamed to ``folder`` (each renamed into place when whole, so
    a kill mid-download leaves no file that looks complete); files already there are not fetched again."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (one local mkdir per batch)
    paths = []
    for kind, file_id in (("output", entry.output_file_id), ("errors", entry.error_file_id)):
        if not file_id:
            continue
        path = folder / f"{entry.batch_id}.{kind}.jsonl"
        if not path.exists():
            tmp = path.with_name(path.name + ".part")
            async with client.files.with_streaming_response.content(file_id) as response:
                with open(tmp, "wb") as f:  # noqa: ASYNC230 (a local file written chunk by chunk)
                    async for chunk in response.iter_bytes():
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        paths.append(path)
    return paths


def result_files(entry: BatchEntry, folder: Path) -> list[Path]:
    return [
        folder / f"{entry.batch_id}.{kind}.jsonl"
        for kind, file_id in (("output", entry.output_file_id), ("errors", entry.error_file_id))
        if file_id
    ]


async def cancel(client: openai.AsyncOpenAI, entry: BatchEntry) -> str:
    """Ask the provider to cancel; the entry's new status (a batch that already ended keeps its own)."""
    assert entry.batch_id is not None
    try:
        batch = await client.batches.cancel(entry.batch_id)
    except openai.ConflictError:
        await poll(client, entry)
        return entry.status
    _update(entry, batch)
    return entry.status


def describe_entry(entry: BatchEntry) -> dict[str, Any]:
    return {
        "batch_id": entry.batch_id,
        "status": entry.status,
        "round": entry.round,
        "lines": len(entry.custom_ids),
        "counts": entry.counts,
        **({"note": entry.note} if entry.note else {}),
    }

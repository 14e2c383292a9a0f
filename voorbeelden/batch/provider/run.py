"""``voorbeelden batch --via openai-batch``: many terms handed to the provider's Batch API, resumably.

One pass of :meth:`BatchApiRun.step` decides everything from what is on disk: the input, the results already
in ``--out``, the state file and the downloaded result files. A term whose six parts all have a final answer
is written to ``--out`` (the same result line as an online batch); a line never sent, or failed in a way
worth retrying (5xx, 429, expired, cancelled), goes into a new batch (a follow-up round, at most
``max_rounds`` sends per line) or, with ``retry_online``, through the online caller at once. Then the run
polls the live batches and steps again when one ends. Because every decision is recomputed from disk, a run
killed at any point resumes by running again: nothing in a live batch is sent again, and nothing in
``--out`` is written twice.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import openai

from voorbeelden.batch.inputs import BadLine, Item, RequestSource, iter_items
from voorbeelden.batch.output import OutputLog
from voorbeelden.batch.provider import remote
from voorbeelden.batch.provider.collect import Collected, collect, online_result
from voorbeelden.batch.provider.counts import TermCounts
from voorbeelden.batch.provider.lines import (
    assemble,
    check_strategy,
    custom_id,
    dumps,
    request_line,
    split_custom_id,
    split_into_files,
)
from voorbeelden.batch.provider.state import BatchState, downloads_dir, state_path
from voorbeelden.batch.records import RecordSink, compact_result
from voorbeelden.batch.runner import term_status
from voorbeelden.config import GeneratorConfig
from voorbeelden.redact import redact_obj
from voorbeelden.types import ALL_PARTS, Part

__all__ = ["BatchApiSettings", "BatchApiSummary", "run_batch_api"]

MAX_LINES = 50_000  # OpenAI's limits per batch input file
MAX_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class BatchApiSettings:
    """What a Batch API run is told. ``poll_s`` is real seconds between polls (the CLI scales it by the
    simulator's time_scale); ``max_rounds`` sends per line at most (1 = no follow-up batch);
    ``retry_online`` sends retryable failed lines through the online caller instead of a follow-up batch;
    ``retry_failed_terms`` reruns terms recorded as failed in ``out``. ``host``/``embedded`` say where the
    batches live (the state file refuses to be resumed elsewhere)."""

    out: Path
    host: str
    embedded: bool = False
    strategy: str = "parallel"
    config: GeneratorConfig = field(default_factory=GeneratorConfig)
    max_lines: int = MAX_LINES
    max_bytes: int = MAX_BYTES
    poll_s: float = 30.0
    max_rounds: int = 3
    retry_online: bool = False
    retry_failed_terms: bool = False
    online_in_flight: int = 16
    records: Path | None = None
    fsync: bool = False
    progress: bool | None = None
    on_result: Callable[[dict[str, Any]], None] | None = None
    announce: TextIO | None = None


@dataclass
class BatchApiSummary(TermCounts):
    """What the run did: every input line ends as complete, partial, failed (the words of the online batch's
    result lines), invalid, skipped or duplicate, or is still ``pending`` in a live batch (only after an
    interruption)."""

    invalid: int = 0
    skipped: int = 0
    duplicates: int = 0
    pending: int = 0
    files_uploaded: int = 0
    batches_created: int = 0
    follow_up_batches: int = 0
    lines_sent: int = 0
    lines_resent: int = 0  # of lines_sent, in follow-up batches
    lines_online: int = 0
    wall_s: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {"ok": self.complete, "failed": self.failed, **fields}


class BatchApiRun:
    """One run: the input's pending terms, the state, the results file, and the loop that ends them."""

    def __init__(self, client: openai.AsyncOpenAI, settings: BatchApiSettings, log: OutputLog) -> None:
        self.client, self.s, self.log = client, settings, log
        self.cfg = settings.config
        self.model = self.cfg.settings(Part.VOORBEELDZINNEN).model
        self.state = BatchState.open(
            state_path(settings.out),
            host=settings.host,
            embedded=settings.embedded,
            model=self.model,
            strategy=settings.strategy,
        )
        self.folder = downloads_dir(settings.out)
        self.summary = BatchApiSummary()
        self.pending: dict[str, Item] = {}
        self.sink = RecordSink(settings.records, fsync=settings.fsync).open() if settings.records else None
        self.bar: Any = None
        self.online: dict[str, Any] = {}  # custom_id -> LineResult answered online in this run
        self.cache: dict[str, Any] = {}  # batch id -> its parsed results (each file parsed once per run)

    def collect(self) -> Collected:
        return collect(
            self.state, self.folder, self.pending, self.cfg, self.s.max_rounds, self.online, self.cache
        )

    # ---- input ------------------------------------------------------------------------------------------

    def read_input(self, requests: RequestSource) -> None:
        seen: set[str] = set()
        for item in iter_items(requests):
            if item.key in seen:
                self.summary.duplicates += 1
                continue
            seen.add(item.key)
            rerun = self.s.retry_failed_terms and isinstance(item, Item)
            if not self.log.should_run(item.key, retry_failed=rerun):
                self.summary.skipped += 1
            elif isinstance(item, BadLine):
                self.summary.invalid += 1
                row = {
                    "key": item.key,
                    "status": "invalid",
                    "line": item.n,
                    "error": item.error,
                    "input": item.raw,
                }
                self.emit(row)
            else:
                self.pending[item.key] = item

    def emit(self, row: dict[str, Any]) -> None:
        """The output boundary, as online: no key (or key-like text) reaches the file or the callback."""
        row = redact_obj(row)
        self.log.append(row)
        if self.s.on_result is not None:
            self.s.on_result(row)

    # ---- one decision pass ------------------------------------------------------------------------------

    async def step(self) -> bool:
        """Write finished terms, send what must be sent; True while batches are live."""
        got = self.collect()
        if self.s.retry_online and got.retry:
            await self.retry_online(got.retry)
            got = self.collect()
        self.finish_terms(got)
        to_send = got.unsent + ([] if self.s.retry_online else got.retry)
        if to_send:
            await self.send(to_send, follow_up=bool(got.retry) and not got.unsent)
        if not self.state.live() and not self.pending and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
        return bool(self.state.live())

    def finish_terms(self, got: Collected) -> None:
        now = time.time()
        for key in got.done:
            item = self.pending.pop(key)
            results = {part: got.results[custom_id(key, part)] for part in ALL_PARTS}
            started = got.first_sent.get(key, now)
            ended = got.last_ended.get(key, now)
            gen = assemble(
                item.request,
                self.s.strategy,
                results,
                got.attempts_of(key),
                max(0.0, ended - started),
                self.cfg,
            )
            status = term_status(gen)
            self.summary.count(status)
            if self.sink is not None:
                self.sink.write(key, gen)
            self.emit({"key": key, "status": status, "line": item.n, **compact_result(gen)})

    async def send(self, cids: list[str], *, follow_up: bool) -> None:
        """New batches for ``cids`` (grouped by term, split within the file limits), one state entry each."""
        by_term: dict[str, list[bytes]] = {}
        for cid in cids:
            key, part = split_custom_id(cid)  # type: ignore[misc]
            by_term.setdefault(key, []).append(
                dumps(request_line(key, self.pending[key].request, part, self.cfg))
            )
        round_ = 1 + max((e.round for e in self.state.entries), default=0) if follow_up else 1
        for group in split_into_files(by_term.items(), self.s.max_lines, self.s.max_bytes):
            ids = [cid for key, lines in group for cid in _ids_of(key, lines)]
            entry = self.state.new_entry(ids, round_)
            self.state.save()
            await remote.submit(
                self.client, self.state, entry, b"".join(b"".join(ls) for _, ls in group), self.folder
            )
            self.summary.files_uploaded += 1
            self.summary.batches_created += 1
            self.summary.follow_up_batches += round_ > 1
            self.summary.lines_sent += len(ids)
            self.summary.lines_resent += len(ids) if round_ > 1 else 0
            self.say(f"batch {entry.batch_id}: {len(ids)} lines ({len(group)} terms), round {round_}")

    async def retry_online(self, cids: list[str]) -> None:
        """Retryable failed lines through the online caller (retries, timeouts and records as online)."""
        from voorbeelden.caller import Call, Caller, RunState

        gate = asyncio.Semaphore(self.s.online_in_flight)

        async def one(cid: str) -> None:
            key, part = split_custom_id(cid)  # type: ignore[misc]
            request = self.pending[key].request
            async with gate:
                state = RunState(
                    strategy=self.s.strategy, begrip=request.begrip, scenario="openai-batch-online"
                )
                caller = Caller(
                    self.client, state, retry=self.cfg.retry, call_timeout_s=self.cfg.call_timeout_s
                )
                outcome = await caller.call_part(Call.for_part(request, part, self.cfg.settings(part)))
            self.online[cid] = online_result(part, outcome, state.records)

        async with asyncio.TaskGroup() as tg:
            for cid in cids:
                tg.create_task(one(cid))
        self.summary.lines_online += len(cids)

    # ---- polling ----------------------------------------------------------------------------------------

    async def poll_until_done(self) -> None:
        while await self.step():
            await asyncio.sleep(max(0.005, self.s.poll_s))
            for entry in self.state.live():
                if entry.batch_id is None:  # created before a kill, not yet found: submit looks for it
                    continue
                before = entry.status
                try:
                    await remote.poll(self.client, entry)
                except remote.LostBatch:
                    if not self.state.embedded:
                        raise ValueError(
                            f"batch {entry.batch_id} in {self.state.path} is unknown to {self.state.host} "
                            "(another account or key?); nothing was sent again. Check it at the provider"
                        ) from None
                    entry.status, entry.note = "lost", "unknown to a restarted embedded simulator; sent again"
                if entry.finished:
                    entry.ended = time.time()
                    await remote.download(self.client, entry, self.folder)
                    entry.downloaded = True
                    self.say(
                        f"batch {entry.batch_id}: {entry.status} {entry.counts}"
                        + (f" ({entry.note})" if entry.note else "")
                    )
                if entry.status != before:  # counts alone are not worth rewriting a file of 60,000 ids
                    self.state.save()
            self.show_progress()

    async def resume_unsubmitted(self) -> None:
        """Entries a kill left without a batch id: find them by tag or create them now."""
        for entry in self.state.entries:
            if entry.status == "preparing":
                lines = b"".join(
                    self._line(cid) for cid in entry.custom_ids if split_custom_id(cid)[0] in self.pending
                )  # type: ignore[index]
                if not lines:
                    entry.status = "lost"
                    self.state.save()
                    continue
                await remote.submit(self.client, self.state, entry, lines, self.folder)
            carries = any(cid.rpartition(":")[0] in self.pending for cid in entry.custom_ids)
            missing = any(not p.exists() for p in remote.result_files(entry, self.folder))
            if entry.finished and carries and (not entry.downloaded or missing):
                await remote.download(self.client, entry, self.folder)
                entry.downloaded = True
                self.state.save()

    def _line(self, cid: str) -> bytes:
        key, part = split_custom_id(cid)  # type: ignore[misc]
        return dumps(request_line(key, self.pending[key].request, part, self.cfg))

    def show_progress(self) -> None:
        live = self.state.live()
        total = sum(e.counts.get("total") or len(e.custom_ids) for e in live)
        done = sum(e.counts.get("completed", 0) + e.counts.get("failed", 0) for e in live)
        if self.bar is None:
            enabled = self.s.progress if self.s.progress is not None else sys.stderr.isatty()
            if not enabled:
                return
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="line", file=sys.stderr, desc="batch lines")
        self.bar.total = max(total, 1)
        self.bar.n = done
        statuses: dict[str, int] = {}
        for e in live:
            statuses[e.status] = statuses.get(e.status, 0) + 1
        self.bar.set_postfix(statuses, refresh=True)

    def say(self, text: str) -> None:
        if self.s.announce is not None:
            print(f"voorbeelden batch: {text}", file=self.s.announce)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.sink is not None:
            self.sink.close()


def _ids_of(key: str, lines: list[bytes]) -> list[str]:
    import json

    return [json.loads(line)["custom_id"] for line in lines]


async def run_batch_api(
    requests: RequestSource, client: openai.AsyncOpenAI, settings: BatchApiSettings
) -> BatchApiSummary:
    """Run (or resume) every pending term of ``requests`` through the provider's Batch API until each is in
    ``settings.out``. Raises ValueError (a message) for a refused strategy, output or state file.
    Cancellation (Ctrl-C) leaves the batches running; the state file says how to resume."""
    check_strategy(settings.strategy)
    t0 = time.monotonic()
    with OutputLog(settings.out, fsync=settings.fsync) as log:
        run = BatchApiRun(client, settings, log)
        try:
            run.read_input(requests)
            await run.resume_unsubmitted()
            await run.poll_until_done()
        finally:
            run.close()
            run.summary.pending = len(run.pending)
            run.summary.state = run.state.describe()
            run.summary.wall_s = round(time.monotonic() - t0, 3)
    return run.summary


async def cancel_all(client: openai.AsyncOpenAI, out: Path) -> list[dict[str, Any]]:
    """Cancel every live batch named in ``out``'s state file; what each one is now."""
    path = state_path(out)
    if not path.exists():
        raise ValueError(f"no batch state file {path}: nothing to cancel for --out {out}")
    import json

    host = json.loads(path.read_text(encoding="utf-8")).get("host", "")
    with OutputLog(out):  # the lock: a run polling these batches must not write the state meanwhile
        data = json.loads(path.read_text(encoding="utf-8"))
        state = BatchState.open(
            path,
            host=host,
            embedded=data.get("embedded", False),
            model=data["model"],
            strategy=data["strategy"],
        )
        changed = []
        for entry in state.live():
            if entry.batch_id is not None:
                await remote.cancel(client, entry)
                changed.append(remote.describe_entry(entry))
        state.save()
    return changed

"""Many terms through one gate: streamed input, bounded work in progress, one JSONL line per finished term.

Input is read lazily and terms are admitted only while the gate has room for their calls (see
``admission.py``), so memory does not grow with the input and a term's six calls do not queue behind
thousands of others (which would inflate every term's wall time). All calls share one ``AsyncOpenAI`` client
whose transport is the :class:`~voorbeelden.batch.transport.GatedTransport`: the rate limit, the adaptive
concurrency limit and the cache hold for the whole batch, retries included.

The steps, in order: :func:`generate_many` checks its settings and opens what the batch writes to and calls
through (:func:`_open_gate`, :func:`_open_output`), each registered for closing as it opens; :class:`_BatchRun`
then admits the input's lines, runs each term in one TaskGroup and emits its result line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voorbeelden.backend import make_client
from voorbeelden.batch.adaptive import AdaptiveConcurrency
from voorbeelden.batch.admission import CALLS_PER_TERM, Admission, TermCalls
from voorbeelden.batch.cache import ResponseCache
from voorbeelden.batch.inputs import BadLine, Item, RequestSource, count_lines, iter_items
from voorbeelden.batch.keyset import KeySet
from voorbeelden.batch.limiter import RateLimiter
from voorbeelden.batch.memtrim import heap_trimmer
from voorbeelden.batch.output import OutputLog, OutputWriteError
from voorbeelden.batch.records import RecordSink, compact_result
from voorbeelden.batch.settings import BatchSettings
from voorbeelden.batch.sketch import LogHistogram
from voorbeelden.batch.transport import GatedTransport
from voorbeelden.redact import redact_obj

if TYPE_CHECKING:
    import openai

    from voorbeelden.types import Generation

__all__ = ["BatchSummary", "generate_many", "generate_many_sync", "peak_rss_mb"]

TRIM_EVERY = 1000  # finished terms between returns of freed heap memory to the OS


@dataclass
class BatchSummary:
    """What a batch did.

    Every input line ends as exactly one of ``ok``, ``failed`` (a part lost, or the generation raised),
    ``invalid`` (not a request), ``skipped`` (finished in ``out`` by an earlier run) or ``duplicates`` (again
    in this input), so ``lines`` is their sum and cannot disagree with them. ``term_wall`` is a fixed-size
    histogram of the generated terms' wall times (for percentiles), so ``generated`` is its count.

    The result lines' vocabulary (:func:`term_status`) is the summary's too: ``ok`` terms are ``complete``;
    ``failed`` ones are ``partial`` (some parts delivered, counted in ``partial``) or ``failed`` (none).
    ``retries`` and ``rate_limited`` are summed from the same call records as the lines' ``timing``, so the
    two cannot disagree. ``stopped`` says why the batch stopped before the end of its input (a 401/403, a
    full disk), ``records_problem`` why call records were lost.
    """

    # what became of each input line
    ok: int = 0
    failed: int = 0
    partial: int = 0  # of `failed`: some parts delivered
    invalid: int = 0
    skipped: int = 0
    duplicates: int = 0
    # what the generated terms took and lost
    term_wall: LogHistogram = field(default_factory=LogHistogram, repr=False)
    parts_lost: int = 0
    # the run as a whole
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    gate: dict[str, Any] = field(default_factory=dict)  # GatedTransport.describe()
    out: str | None = None
    records: str | None = None
    torn_bytes_cut: int = 0  # a torn last line of an earlier run, cut from `out` before resuming
    retries: int = 0
    rate_limited: int = 0
    stopped: str | None = None
    lines_unwritten: int = 0  # finished terms whose result line could not be written (see `stopped`)
    records_problem: str | None = None

    @property
    def lines(self) -> int:
        return self.ok + self.failed + self.invalid + self.skipped + self.duplicates

    @property
    def generated(self) -> int:
        return self.term_wall.count

    def p95_term_s(self) -> float | None:
        return self.term_wall.quantile(0.95)

    def add_term(self, gen: Generation) -> str:
        """Count a generated term; its status (:func:`term_status`)."""
        self.term_wall.add(gen.wall_s)
        self.parts_lost += gen.n_failed
        self.retries += sum(1 for r in gen.records if r.attempt > 1 and not r.hedge)
        self.rate_limited += sum(1 for r in gen.records if r.status == "rate_limited")
        status = term_status(gen)
        if status == "complete":
            self.ok += 1
        else:
            self.failed += 1
            self.partial += status == "partial"
        return status

    def to_dict(self) -> dict[str, Any]:
        calls = self.gate.get("sent", 0)
        p95 = self.p95_term_s()
        return {
            "lines": self.lines,
            "generated": self.generated,
            "ok": self.ok,
            "failed": self.failed,
            "complete": self.ok,
            "partial": self.partial,
            "no_part": self.failed - self.partial,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "stopped": self.stopped,
            "lines_unwritten": self.lines_unwritten,
            "records_problem": self.records_problem,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "parts_lost": self.parts_lost,
            "wall_s": round(self.wall_s, 3),
            "calls_per_s": round(calls / self.wall_s, 2) if self.wall_s > 0 else None,
            "p95_term_s": round(p95, 4) if p95 is not None else None,
            "gate": self.gate,
            "out": self.out,
            "records": self.records,
            "torn_bytes_cut": self.torn_bytes_cut,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def term_status(gen: Generation) -> str:
    """One word for a generated term, the same in result lines, ``--json`` and on stderr: ``complete`` (all
    six parts), ``partial`` (some) or ``failed`` (none)."""
    if gen.complete:
        return "complete"
    return "partial" if gen.n_failed < CALLS_PER_TERM else "failed"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` from ``/proc/self/status``, the peak of this process's own memory. Not ``ru_maxrss``:
    Linux keeps that across ``exec``, so a child started by a large parent reports at least the parent's
    size (a benchmark's workers all showed their orchestrator's 124 MB). Elsewhere ``ru_maxrss`` (KiB on
    Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class _Progress:
    """A tqdm bar on stderr (terms, calls/s, 429s, ETA) or nothing; the summary is the same either way."""

    def __init__(self, enabled: bool | None, total: int | None, transport: GatedTransport | None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar: Any = None
        self.transport = transport
        self.t0 = time.monotonic()
        self._last = 0.0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="term", file=sys.stderr, smoothing=0.1)

    def update(self, n: int = 1) -> None:
        if self.bar is None:
            return
        self.bar.update(n)
        now = time.monotonic()
        if self.transport is not None and now - self._last > 0.5:
            self._last = now
            s = self.transport.stats
            post = {"calls/s": f"{s.sent / max(now - self.t0, 1e-9):.1f}", "429s": s.answers.throttled}
            if s.cache_hits:
                post["cached"] = s.cache_hits
            if self.transport.concurrency is not None:
                post["limit"] = self.transport.concurrency.effective
            self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def generate_many(requests: RequestSource, **options: Any) -> BatchSummary:
    """Generate every request through one shared gate; write each finished term as a JSONL line to ``out``.

    ``requests`` is a JSONL path (read lazily) or an iterable of requests, dicts or raw JSON lines. A line
    that is not a valid request becomes a ``status: "invalid"`` record with the reason; the batch goes on.
    The keyword arguments are the fields of :class:`BatchSettings` (output, endpoint, limits, cache, how each
    term is generated), with its defaults; an unknown one is a ``TypeError`` before any work.

    Memory is bounded by the work in progress plus one key per input line (to skip duplicates and resume).
    Everything opened here is closed here, also when the batch fails or is cancelled.
    """
    settings = BatchSettings(**options)
    width = settings.check(requests)
    summary = BatchSummary(
        out=None if settings.out is None else str(settings.out),
        records=None if settings.records is None else str(settings.records),
    )
    t0 = time.monotonic()
    async with AsyncExitStack() as stack:
        client, transport = _open_gate(stack, settings)
        log, sink = _open_output(stack, settings)
        summary.torn_bytes_cut = log.torn_bytes if log is not None else 0
        show = settings.progress is not False and (settings.progress or sys.stderr.isatty())
        bar = _Progress(settings.progress, count_lines(requests) if show else None, transport)
        stack.callback(bar.close)
        admission = Admission(
            width,
            None if transport is None else transport.concurrency,
            terms_in_flight=settings.terms_in_flight,
            max_in_flight=settings.max_in_flight,
        )
        run = _BatchRun(summary, _term_generator(settings, client), admission, log, sink, bar, settings)
        run.transport = transport
        await run.run(requests)
        if sink is not None and sink.problem is not None:
            summary.records_problem = f"{sink.problem} ({sink.terms_lost} terms' records lost)"
    summary.wall_s = time.monotonic() - t0
    if transport is not None:
        summary.gate = transport.describe()
    summary.peak_rss_mb = peak_rss_mb()
    return summary


def _open_cache(
    stack: AsyncExitStack, cache: bool | str | os.PathLike[str] | ResponseCache
) -> ResponseCache | None:
    """The response cache the settings ask for, opened even when a caller's own client will bypass it. A
    :class:`ResponseCache` the caller passed stays open (it is theirs); one opened here closes with the batch."""
    if isinstance(cache, ResponseCache):
        return cache
    if not cache:
        return None
    store = ResponseCache() if cache is True else ResponseCache(Path(cache))
    stack.callback(store.close)
    return store


def _open_gate(
    stack: AsyncExitStack, settings: BatchSettings
) -> tuple[openai.AsyncOpenAI, GatedTransport | None]:
    """The client every call goes through, and its gate (None for a caller's own client: ungated)."""
    cache = _open_cache(stack, settings.cache)
    if settings.client is not None:
        return settings.client, settings.transport
    transport = settings.transport
    if transport is None:
        concurrency = AdaptiveConcurrency(
            initial=settings.initial_in_flight if settings.adaptive else settings.max_in_flight,
            max_limit=settings.max_in_flight,
            adaptive=settings.adaptive,
        )
        limiter = RateLimiter(settings.rpm, settings.tpm, period=settings.period_s, on_wait=_say)
        transport = GatedTransport(
            limiter=limiter, concurrency=concurrency, cache=cache, record_events=settings.record_events
        )
    client = make_client(settings.base_url, settings.api_key, transport=transport)
    stack.push_async_callback(client.close)
    return client, transport


def _say(text: str) -> None:
    """A word on stderr from a running batch (a long wait, a stop), above the progress bar if there is one."""
    print(f"voorbeelden batch: {text}", file=sys.stderr, flush=True)


def _open_output(
    stack: AsyncExitStack, settings: BatchSettings
) -> tuple[OutputLog | None, RecordSink | None]:
    """The results file (locked, resumed) and the records file, when asked for. A refusal (not our file,
    another batch holds it) is raised before anything in either file changes."""
    log = (
        stack.enter_context(OutputLog(settings.out, fsync=settings.fsync))
        if settings.out is not None
        else None
    )
    sink = None
    if settings.records is not None:
        sink = RecordSink(settings.records, fsync=settings.fsync).open()
        stack.callback(sink.close)
    return log, sink


GenerateTerm = Callable[..., Awaitable["Generation"]]


def _term_generator(settings: BatchSettings, client: openai.AsyncOpenAI) -> GenerateTerm:
    """:func:`voorbeelden.generate` with what every term of this batch shares already bound."""
    from voorbeelden.config import GeneratorConfig
    from voorbeelden.generator import generate

    return partial(
        generate,
        strategy=settings.strategy,
        client=client,
        config=(settings.term_config() or GeneratorConfig()).with_policy(
            call_timeout_s=settings.call_timeout_s, max_retries=settings.max_retries
        ),
        run_id=settings.run_id,
        scenario="batch",
    )


class _BatchRun:
    """One batch in progress: what it has seen, what runs, and where finished terms go.

    The steps share their state through this object (not through closures that change each other's
    variables), so each is a method that reads on its own: :meth:`fresh` passes over lines already done,
    :meth:`run` admits the rest into one TaskGroup, :meth:`run_term` generates one term, :meth:`emit`
    writes its line.
    """

    def __init__(
        self,
        summary: BatchSummary,
        generate_term: GenerateTerm,
        admission: Admission,
        log: OutputLog | None,
        sink: RecordSink | None,
        bar: _Progress,
        settings: BatchSettings,
    ) -> None:
        self.summary, self.generate_term, self.admission = summary, generate_term, admission
        self.log, self.sink, self.bar = log, sink, bar
        self.on_result, self.retry_failed = settings.on_result, settings.retry_failed
        self.in_run = KeySet()  # every key of this run (duplicates), in 16 bytes each
        self.trim = heap_trimmer()
        self.emitted = 0
        self.transport: GatedTransport | None = None
        self.secrets = [settings.api_key] if settings.api_key else []

    async def run(self, requests: RequestSource) -> None:
        """Structured concurrency: a failure that is not a term's own (a full disk, a bug) cancels the other
        terms and is raised here; the results written so far stay, and a rerun resumes after them."""
        async with asyncio.TaskGroup() as tg:
            async for item in self.fresh(requests):
                if self.stop_reason() is not None:
                    break  # the terms in flight finish; the rest of the input waits for a rerun
                if isinstance(item, BadLine):
                    self.reject(item)
                    continue
                await self.admission.wait()
                if self.stop_reason() is not None:
                    break
                tg.create_task(self.run_term(item, self.admission.enter()))

    def stop_reason(self) -> str | None:
        """Why no more terms should start: the endpoint refused the key, or results cannot be written."""
        if self.summary.stopped is None and self.transport is not None and self.transport.refused:
            self.summary.stopped = self.transport.refused
        return self.summary.stopped

    async def fresh(self, requests: RequestSource) -> AsyncIterator[Item | BadLine]:
        """The lines still to do: one seen before in this input, or finished in ``out``, is counted only."""
        for item in iter_items(requests):
            if item.key in self.in_run:
                self.summary.duplicates += 1
                self.bar.update()
                continue
            rerun_failed = self.retry_failed and isinstance(item, Item)  # a bad line is not rerun as is
            if self.log is not None and not self.log.should_run(item.key, retry_failed=rerun_failed):
                self.summary.skipped += 1
                self.bar.update()
                continue
            self.in_run.add(item.key)
            yield item
            if item.n % 256 == 0:
                await asyncio.sleep(0)  # let finished terms be written while a long input is skipped through

    def reject(self, item: BadLine) -> None:
        self.summary.invalid += 1
        row = {"key": item.key, "status": "invalid", "line": item.n, "error": item.error, "input": item.raw}
        self.emit(row)

    async def run_term(self, item: Item, calls: TermCalls) -> None:
        """Generate one term and emit its line; its place in the admission is given back whatever happens."""
        try:
            gen = await self.generate_term(item.request, sim_key=item.key, on_record=calls.on_record)
        except Exception as err:  # generate() degrades to data; anything else is a bug worth recording
            self.summary.failed += 1
            self.summary.parts_lost += CALLS_PER_TERM
            error = f"{type(err).__name__}: {err}"
            self.emit(
                {
                    "key": item.key,
                    "status": "failed",
                    "line": item.n,
                    "begrip": item.request.begrip,
                    "error": error,
                }
            )
        else:
            status = self.summary.add_term(gen)
            # the result line first: records are a side output and never cost a result its line
            self.emit({"key": item.key, "status": status, "line": item.n, **compact_result(gen)})
            if self.sink is not None:
                self.sink.write(item.key, gen, self.secrets)
        finally:
            calls.leave()

    def emit(self, row: dict[str, Any]) -> None:
        """The output boundary: no key (or key-like text) reaches the file or the caller's callback. A line
        that cannot be written (a full disk) stops the batch: the lines before it are whole and kept."""
        row = redact_obj(row, self.secrets)
        if self.log is not None:
            try:
                self.log.append(row)
            except OutputWriteError as err:
                self.summary.lines_unwritten += 1
                if self.summary.stopped is None:
                    self.summary.stopped = (
                        f"{err.strerror}; the batch stopped, a rerun resumes after the last line"
                    )
                return
        if self.on_result is not None:
            self.on_result(row)
        self.bar.update()
        self.emitted += 1
        if self.emitted % TRIM_EVERY == 0:
            self.trim()  # keeps RSS flat over a long batch (see memtrim.py)


def generate_many_sync(requests: RequestSource, **kwargs: Any) -> BatchSummary:
    """:func:`generate_many` from synchronous code, including a running Jupyter kernel (see ``syncrun``)."""
    from voorbeelden.syncrun import run_sync

    return run_sync(generate_many(requests, **kwargs))

"""Many terms through one gate: streamed input, bounded work in progress, one JSONL line per finished term.

Input is read lazily and terms are admitted only while the gate has room for their calls, so memory does
not grow with the input and a term's six calls do not queue behind thousands of others (which would
inflate every term's wall time). All calls share one ``AsyncOpenAI`` client whose transport is the
:class:`~voorbeelden.batch.transport.GatedTransport`: the rate limit, the adaptive concurrency limit and
the cache hold for the whole batch, retries included.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voorbeelden.backend import make_client
from voorbeelden.batch.adaptive import AdaptiveConcurrency
from voorbeelden.batch.cache import ResponseCache
from voorbeelden.batch.inputs import (
    BadLine,
    Item,
    RequestSource,
    check_source,
    count_lines,
    is_path,
    iter_items,
    same_file,
)
from voorbeelden.batch.keyset import KeySet
from voorbeelden.batch.limiter import RateLimiter
from voorbeelden.batch.memtrim import heap_trimmer
from voorbeelden.batch.output import OutputError, OutputLog
from voorbeelden.batch.records import RecordSink, compact_result
from voorbeelden.batch.sketch import LogHistogram
from voorbeelden.batch.transport import GatedTransport
from voorbeelden.redact import redact_obj
from voorbeelden.types import ALL_PARTS, CallRecord

if TYPE_CHECKING:
    import openai

    from voorbeelden.config import GeneratorConfig

__all__ = ["BatchSummary", "generate_many", "generate_many_sync", "peak_rss_mb"]

CALLS_PER_TERM = len(ALL_PARTS)
TRIM_EVERY = 1000  # finished terms between returns of freed heap memory to the OS


@dataclass
class BatchSummary:
    """What a batch did; ``term_wall`` is a fixed-size histogram of the terms' wall times (for percentiles)."""

    lines: int = 0
    generated: int = 0
    ok: int = 0
    failed: int = 0
    invalid: int = 0
    skipped: int = 0
    duplicates: int = 0
    parts_lost: int = 0
    wall_s: float = 0.0
    gate: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    torn_bytes_cut: int = 0
    peak_rss_mb: float = 0.0
    records: str | None = None
    term_wall: LogHistogram = field(default_factory=LogHistogram, repr=False)

    def p95_term_s(self) -> float | None:
        return self.term_wall.quantile(0.95)

    def to_dict(self) -> dict[str, Any]:
        calls = self.gate.get("sent", 0)
        p95 = self.p95_term_s()
        return {
            "lines": self.lines,
            "generated": self.generated,
            "ok": self.ok,
            "failed": self.failed,
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


async def generate_many(
    requests: RequestSource,
    *,
    out: str | os.PathLike[str] | None = None,
    strategy: str = "parallel",
    base_url: str | None = None,
    api_key: str | None = None,
    client: openai.AsyncOpenAI | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    period_s: float = 60.0,
    max_in_flight: int = 64,
    adaptive: bool = True,
    initial_in_flight: int = 16,
    cache: bool | str | os.PathLike[str] | ResponseCache = False,
    retry_failed: bool = False,
    config: GeneratorConfig | None = None,
    model: str | None = None,
    call_timeout_s: float | None = None,
    max_retries: int | None = None,
    terms_in_flight: int | None = None,
    progress: bool | None = None,
    fsync: bool = False,
    records: str | os.PathLike[str] | None = None,
    record_events: bool = False,
    run_id: str = "",
    on_result: Callable[[dict[str, Any]], None] | None = None,
    transport: GatedTransport | None = None,
) -> BatchSummary:
    """Generate every request through one shared gate; write each finished term as a JSONL line to ``out``.

    ``requests`` is a JSONL path (read lazily) or an iterable of requests, dicts or raw JSON lines. A line
    that is not a valid request becomes a ``status: "invalid"`` record with the reason; the batch goes on.
    With ``out`` given, terms already finished there are skipped (failed ones too, unless ``retry_failed``).

    Limits: ``rpm``/``tpm`` per ``period_s`` (60; ``60 * time_scale`` for the simulator), at most
    ``max_in_flight`` calls at once, found adaptively below that cap unless ``adaptive=False`` (then it is a
    fixed semaphore of ``max_in_flight``). ``cache`` True uses ``.cache/voorbeelden`` (or
    ``$VOORBEELDEN_CACHE_DIR``), a path or a :class:`ResponseCache` chooses the store.

    Each result line is compact (parts, status, errors, a timing summary); every call attempt goes to
    ``records`` (a JSONL file, one line per attempt) only when it is given.

    ``client`` bypasses the gate entirely (an ungated baseline); ``transport`` supplies a prepared gate.
    ``terms_in_flight`` fixes how many terms run at once (default: admit terms while the calls they still
    have to make are fewer than the concurrency limit plus one term's worth, so slots never wait for work
    and no term's calls queue behind many others).

    Memory is bounded by the work in progress plus one key per input line (to skip duplicates and resume).
    """
    from voorbeelden.generator import generate
    from voorbeelden.strategies.registry import info

    strategy_info = info(strategy)  # an unknown name fails here, once, not as a failed record for every term
    check_source(requests)  # a missing or unreadable input, a directory: a message before any work
    if out is not None and is_path(requests) and same_file(requests, out):  # type: ignore[arg-type]
        raise OutputError(
            f"--out {out} is the input file itself; results appended to the input would be read back as "
            "input. Choose another --out"
        )
    t0 = time.monotonic()
    summary = BatchSummary(
        out=str(out) if out is not None else None, records=str(records) if records is not None else None
    )
    response_cache: ResponseCache | None
    if isinstance(cache, ResponseCache):
        response_cache = cache
    elif cache is True:
        response_cache = ResponseCache()
    elif cache:
        response_cache = ResponseCache(Path(cache))
    else:
        response_cache = None

    own_client = client is None
    if client is None:
        if transport is None:
            concurrency = AdaptiveConcurrency(
                initial=initial_in_flight if adaptive else max_in_flight,
                max_limit=max_in_flight,
                adaptive=adaptive,
            )
            limiter = RateLimiter(rpm, tpm, period=period_s)
            transport = GatedTransport(
                limiter=limiter, concurrency=concurrency, cache=response_cache, record_events=record_events
            )
        client = make_client(base_url, api_key, transport=transport)
    if config is None and model:
        from voorbeelden.config import GeneratorConfig

        config = GeneratorConfig().with_model(model)

    log = sink = None
    try:  # refused (not ours, locked by another batch): close what was opened, then say why
        log = OutputLog(out, fsync=fsync).open() if out is not None else None
        sink = RecordSink(records, fsync=fsync).open() if records is not None else None
    except BaseException:
        if log is not None:
            log.close()
        if own_client:
            await client.close()
        if response_cache is not None and not isinstance(cache, ResponseCache):
            response_cache.close()
        raise
    summary.torn_bytes_cut = log.torn_bytes if log is not None else 0
    total = count_lines(requests) if progress is not False and (progress or sys.stderr.isatty()) else None
    bar = _Progress(progress, total, transport)
    in_run = KeySet()  # every key of this run (duplicates), in 16 bytes each
    active = 0
    room = asyncio.Event()  # set whenever a call or a term finishes; only the admission loop waits on it

    width = strategy_info.in_flight(getattr(config, "k", None) or 3, CALLS_PER_TERM)
    outstanding = 0  # calls the running terms still have to make (at most `width` each at a time)

    def has_room() -> bool:
        # A term holds its place until its slowest part is done, so late in its life it has one call out,
        # not six; counting terms would leave slots idle and the adaptive limit would never see saturation.
        # Counting the calls still to come keeps the gate's slots full with at most one term's calls queued.
        if terms_in_flight is not None:
            return active < terms_in_flight
        if transport is None or transport.concurrency is None:
            return active < max(1, math.ceil(max_in_flight / CALLS_PER_TERM))
        return outstanding < transport.concurrency.effective + width

    trim = heap_trimmer()
    emitted = 0

    def emit(row: dict[str, Any]) -> None:
        nonlocal emitted
        row = redact_obj(row)  # the output boundary: no key (or key-like text) reaches the file or caller
        if log is not None:
            log.append(row)
        if on_result is not None:
            on_result(row)
        bar.update()
        emitted += 1
        if emitted % TRIM_EVERY == 0:
            trim()  # keeps RSS flat over a long batch (see memtrim.py)

    async def run_term(item: Item) -> None:
        nonlocal active, outstanding
        mine = min(width, CALLS_PER_TERM)  # already counted in `outstanding` at admission
        remaining = CALLS_PER_TERM

        def on_record(record: CallRecord) -> None:
            nonlocal remaining, outstanding, mine
            if record.status == "ok" and not record.hedge and remaining > 0:
                remaining -= 1
                now = min(width, remaining)
                outstanding += now - mine
                mine = now
                room.set()

        try:
            try:
                gen = await generate(
                    item.request,
                    strategy,
                    client=client,
                    config=config,
                    call_timeout_s=call_timeout_s,
                    max_retries=max_retries,
                    sim_key=item.key,
                    run_id=run_id,
                    scenario="batch",
                    on_record=on_record,
                )
            except Exception as err:  # generate() degrades to data; anything else is a bug worth recording
                summary.failed += 1
                summary.parts_lost += CALLS_PER_TERM
                emit(
                    {
                        "key": item.key,
                        "status": "failed",
                        "line": item.n,
                        "begrip": item.request.begrip,
                        "error": f"{type(err).__name__}: {err}",
                    }
                )
                return
            summary.generated += 1
            summary.term_wall.add(gen.wall_s)
            summary.parts_lost += gen.n_failed
            status = "ok" if gen.complete else "failed"
            if status == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
            if sink is not None:
                sink.write(item.key, gen)
            emit({"key": item.key, "status": status, "line": item.n, **compact_result(gen)})
        finally:
            outstanding -= mine
            active -= 1
            room.set()

    async def items() -> AsyncIterator[Item | BadLine]:
        for item in iter_items(requests):
            n = item.n
            summary.lines += 1
            if item.key in in_run:
                summary.duplicates += 1
                bar.update()
                continue
            if log is not None and not log.should_run(
                item.key, retry_failed=retry_failed and isinstance(item, Item)
            ):
                summary.skipped += 1
                bar.update()
                continue
            in_run.add(item.key)
            yield item
            if n % 256 == 0:
                await asyncio.sleep(0)  # let finished terms be written while a long input is skipped through

    try:
        async with asyncio.TaskGroup() as tg:
            async for item in items():
                if isinstance(item, BadLine):
                    summary.invalid += 1
                    emit(
                        {
                            "key": item.key,
                            "status": "invalid",
                            "line": item.n,
                            "error": item.error,
                            "input": item.raw[:500],
                        }
                    )
                    continue
                while not has_room():
                    room.clear()
                    await room.wait()
                active += 1
                outstanding += min(width, CALLS_PER_TERM)  # before the task runs, so the next check sees it
                tg.create_task(run_term(item))
    finally:
        bar.close()
        if log is not None:
            log.close()
        if sink is not None:
            sink.close()
        if own_client:
            await client.close()
        if response_cache is not None and not isinstance(cache, ResponseCache):
            response_cache.close()
        summary.wall_s = time.monotonic() - t0
        if transport is not None:
            summary.gate = transport.describe()
        summary.peak_rss_mb = peak_rss_mb()
    return summary


def generate_many_sync(requests: RequestSource, **kwargs: Any) -> BatchSummary:
    """:func:`generate_many` from synchronous code, including a running Jupyter kernel (see ``syncrun``)."""
    from voorbeelden.syncrun import run_sync

    return run_sync(generate_many(requests, **kwargs))

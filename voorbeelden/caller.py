"""One part, one chat completion, every attempt on the record.

The openai client is built with ``max_retries=0`` and the retry loop lives here (tenacity), because the SDK's
own retries are invisible: a benchmark that cannot see a retry cannot explain a slow call. Each attempt
becomes one :class:`~voorbeelden.types.CallRecord`, including the attempt that was cancelled or cut off by
the deadline, which is appended before the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never

from voorbeelden.config import PartSettings, RetryPolicy
from voorbeelden.fifo import FifoSemaphore
from voorbeelden.http_headers import parse_retry_after
from voorbeelden.parsing import ParseResult, parse_part
from voorbeelden.prompts import build_messages
from voorbeelden.redact import redact
from voorbeelden.stream_read import StreamCut, read_stream
from voorbeelden.types import CallRecord, Part, Request, Status
from voorbeelden.wire import (
    RETRYABLE_STATUS,
    UNSUPPORTED_FORMAT,
    chat_body,
    endpoint_host,
    error_kind_for_status,
    missing_v1_hint,
    read_completion,
    rejects_response_format,
    short,
)

DEADLINE_CUT = "deadline reached while waiting for the model"  # the error of an attempt cut by the deadline
STREAM_CUT = "stream_cut"
SIM_HEADER_PREFIX = "x-sim-"  # the simulator's own request headers, never sent to another endpoint
RESAMPLE_TEMPERATURE = 0.7  # a parse resample of a greedy (temperature 0) run: see Caller._request


@dataclass
class RunState:
    """What every call of one generation shares: the clock origin, the record sink and the labels that make
    a record self-describing in a DataFrame of thousands."""

    t0: float = field(default_factory=time.monotonic)
    run_id: str = ""
    scenario: str = ""
    strategy: str = ""
    trial: int = 0
    begrip: str = ""
    sim_key: str | None = None
    # Whether the endpoint is this package's simulator (decided by the generator from the backend): only then
    # are the simulator's own headers (``x-sim-attempt``, ``x-sim-key``) sent; no other endpoint sees them.
    simulator: bool = False
    records: list[CallRecord] = field(default_factory=list)
    on_record: Callable[[CallRecord], None] | None = None
    deadline_expired: Callable[[], bool] = lambda: False
    first_visible_s: float | None = None  # set by streaming calls: when the first complete item arrived
    # The streams of one generation: any number at once, until a server cuts one off; from then on one at a
    # time (waiting for those already running), so retries stop cutting each other. Why: llama-cpp-python's
    # server (``interrupt_requests``, on by default) ends a running stream as soon as another request
    # arrives; six parallel streams leave one alive, and retries sent while a stream runs cut it again. A
    # client that has seen a cut can only get whole streams by sending one at a time.
    streams: FifoSemaphore = field(default_factory=lambda: FifoSemaphore(None))

    def mark_visible(self) -> None:
        """Note that some part has shown its first complete item (the earliest call wins)."""
        if self.first_visible_s is None:
            self.first_visible_s = self.now()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def new_record(self, part: Part, attempt: int, hedge: bool) -> CallRecord:
        return CallRecord(
            part=str(part),
            attempt=attempt,
            t_start=self.now(),
            run_id=self.run_id,
            scenario=self.scenario,
            strategy=self.strategy,
            trial=self.trial,
            begrip=self.begrip,
            hedge=hedge,
        )

    def finish(self, record: CallRecord, status: Status, **fields: Any) -> CallRecord:
        record.t_end = self.now()
        record.latency_s = record.t_end - record.t_start
        record.status = status
        if isinstance(fields.get("error"), str):
            # Upstream error text may echo the key (or a URL with one): redacted before it is stored anywhere.
            fields["error"] = redact(fields["error"])
        for name, value in fields.items():
            setattr(record, name, value)
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record


@dataclass
class PartOutcome:
    """The final word on one part after all attempts; ``error`` set means the part degraded to empty.
    ``part`` is None for a call that is not one part (:meth:`Caller.call`)."""

    part: Part | None
    value: list[str] | str
    error: str | None = None
    error_kind: str | None = None
    shortfall: int = 0
    attempts: int = 1


@dataclass(frozen=True)
class Call:
    """One call to make, everything its attempts send and how its answer is read.

    Build a part's call with :meth:`for_part` (its prompt from the request); a call that is not one part
    (the combined call asks for all six) gives ``part=None`` and brings its own ``label`` (the records'
    ``part`` field) and ``parse``. The options, all off by default: ``hedge`` (a backup call, marked on its
    records), ``attempt_offset`` (its attempts are numbered from there: backups from 100), ``stream`` (SSE
    with usage; fills ``ttft_s`` and marks the first complete item visible), ``extra_body`` (e.g.
    ``response_format``), ``extra_headers`` (e.g. another ``x-sim-key`` for a distinct simulator draw) and
    ``note`` (the records' ``note``)."""

    settings: PartSettings
    messages: list[dict[str, str]]
    part: Part | None = None
    label: str | None = None
    parse: Callable[[str | None], ParseResult] | None = None
    hedge: bool = False
    attempt_offset: int = 0
    stream: bool = False
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.part is None and (self.parse is None or not self.label):
            raise TypeError("a Call that is not one part (part=None) needs its own label and parse")

    @classmethod
    def for_part(cls, request: Request, part: Part, settings: PartSettings, **options: Any) -> Call:
        """The call for one part of ``request``, its messages built from the prompts unless given."""
        messages = options.pop("messages", None)
        if messages is None:
            messages = build_messages(request, part, settings)
        return cls(settings=settings, messages=messages, part=part, **options)


class AttemptFailed(Exception):
    """One attempt's failure, carrying what the retry policy needs to decide and to wait."""

    def __init__(
        self, record: CallRecord, retryable: bool, retry_after_s: float | None = None, resample: bool = False
    ) -> None:
        super().__init__(record.error or record.error_kind or record.status)
        self.record = record
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.resample = resample  # an answer with no usable item: worth one fresh sample


def backoff_s(policy: RetryPolicy, retry_number: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with downward jitter (the SDK's formula): base * 2**(n-1), capped, times
    1 - jitter*U, so concurrent retries spread out instead of arriving together."""
    delay = min(policy.backoff_base_s * 2.0 ** max(0, retry_number - 1), policy.backoff_cap_s)
    return delay * (1.0 - policy.jitter * (rng or random).random())


class Caller:
    """Runs one part to its outcome through an injected ``AsyncOpenAI`` client."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        state: RunState,
        *,
        retry: RetryPolicy,
        call_timeout_s: float,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.retry = retry
        self.call_timeout_s = call_timeout_s
        self.rng = rng or random.Random()

    async def call_part(self, call: Call) -> PartOutcome:
        """Every attempt at ``call``, under the retry policy. Never raises except ``CancelledError``:
        failures become an outcome with ``error`` set (the part's empty default)."""
        return await self._call(call)

    async def _call(self, call: Call) -> PartOutcome:
        """Every attempt at one call, under the retry policy; the last failure becomes an empty outcome.

        Two budgets: ``max_retries`` for failures of the endpoint (retryable statuses, timeouts, lost
        connections), and ``parse_retries`` for answers with no usable item, which are asked again at once
        for a fresh sample (the next seed when the run sets one), as validation-retry libraries do: a small
        model that echoed the instruction once usually answers the second time."""
        failed: list[CallRecord] = []
        attempts = 0
        resamples = 0

        async def one() -> PartOutcome:
            nonlocal attempts
            attempts += 1
            try:
                return await self._attempt(call, call.attempt_offset + attempts, resamples)
            except AttemptFailed as exc:
                failed.append(exc.record)
                raise

        def again(exc: BaseException) -> bool:
            nonlocal resamples
            if not isinstance(exc, AttemptFailed):
                return False
            if exc.resample:
                if resamples >= self.retry.parse_retries:
                    return False
                resamples += 1
                return True
            return exc.retryable and attempts - resamples <= self.retry.max_retries

        try:
            outcome = await self._retrying(failed, again)(one)
        except AttemptFailed as exc:
            return _gave_up(call.part, call.settings, exc.record, attempts)
        outcome.attempts = attempts
        return outcome

    def _retrying(self, failed: list[CallRecord], again: Callable[[BaseException], bool]) -> AsyncRetrying:
        """The retry loop of one call: ``again`` decides (and counts) each retry; ``failed`` is where the
        attempts append their failed records."""

        async def sleep(seconds: float) -> None:
            # The wait between attempts goes on the record of the attempt that caused it, also when the
            # deadline cuts it short (then ``waited_s`` is what was spent before the cut).
            started = time.monotonic()
            try:
                await asyncio.sleep(seconds)
            finally:
                if failed:
                    failed[-1].waited_s = time.monotonic() - started

        return AsyncRetrying(
            stop=stop_never,
            retry=retry_if_exception(again),
            wait=self._wait,
            sleep=sleep,
            reraise=True,
        )

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, AttemptFailed) and exc.resample:
            return 0.0  # the endpoint answered; a fresh sample need not wait
        if isinstance(exc, AttemptFailed) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self.retry.retry_after_cap_s)
        return backoff_s(self.retry, retry_state.attempt_number, self.rng)

    async def _attempt(self, call: Call, attempt: int, resamples: int) -> PartOutcome:
        """One attempt; a stream waits its turn when this run streams one call at a time."""
        if not call.stream:
            return await self._attempt_once(call, attempt, call.note, resamples)
        waited = self.state.streams.capacity is not None  # noted on the record: it waited its turn
        await self.state.streams.acquire()
        try:
            note = "stream:one_at_a_time" if waited else call.note
            return await self._attempt_once(call, attempt, note, resamples)
        finally:
            self.state.streams.release()

    async def _attempt_once(self, ask: Call, attempt: int, note: str | None, resamples: int) -> PartOutcome:
        state = self.state
        headers, body = self._request(ask, attempt, resamples)
        rec = state.new_record(ask.label or ask.part, attempt, ask.hedge)
        rec.note = note
        http_status: int | None = None
        try:
            async with asyncio.timeout(self.call_timeout_s):
                # The documented generic POST, not the typed ``chat.completions.create``: the typed path
                # transforms the params (~1 ms CPU per call here), and in a parallel run those milliseconds
                # are serial, delaying the start of every later call. Auth, base URL, connection pool and the
                # mapping of HTTP errors to exceptions are the client's either way. (Streaming uses the typed
                # path: it needs the SDK's SSE decoding.)
                if ask.stream:
                    text, finish_reason, usage = await read_stream(
                        self.client, state, ask.part, body, headers, rec
                    )
                    data: Any = {}
                else:
                    data = await self.client.post(
                        "/chat/completions", cast_to=dict, body=body, options={"headers": headers}
                    )
            http_status = 200  # the client raises APIStatusError for anything else
            if not ask.stream:
                text, finish_reason, usage = read_completion(data)
        except asyncio.CancelledError:
            cut = state.deadline_expired()
            status: Status = "timeout" if cut else "cancelled"
            why = DEADLINE_CUT if cut else "cancelled while waiting for the model"
            state.finish(rec, status, error_kind=status, error=why)
            raise
        except Exception as err:
            raise self._failed(rec, err, body, http_status) from None
        common = {
            "http_status": http_status,
            "finish_reason": finish_reason,
            "tokens_in": usage.get("prompt_tokens"),
            "tokens_out": usage.get("completion_tokens"),
            # set by the batch cache (voorbeelden.batch.transport.mark_cached): answered without a request
            "cached": bool(data.get("x_voorbeelden_cache")),
        }
        return self._deliver(ask, rec, text, finish_reason, common)

    def _request(self, call: Call, attempt: int, resamples: int) -> tuple[dict[str, str], dict[str, Any]]:
        """The headers and JSON body of one attempt. The simulator's own headers go to the simulator only
        (``RunState.simulator``); a resample after an unusable answer asks with the next seed, and at
        temperature RESAMPLE_TEMPERATURE when the run asked for 0."""
        headers: dict[str, str] = {}
        if self.state.simulator:
            headers["x-sim-attempt"] = str(attempt)
            if self.state.sim_key:
                headers["x-sim-key"] = self.state.sim_key
        if call.extra_headers:
            headers.update(call.extra_headers)
        if not self.state.simulator:
            headers = {k: v for k, v in headers.items() if not k.lower().startswith(SIM_HEADER_PREFIX)}
        settings = call.settings
        if resamples and settings.seed is not None:
            settings = dataclasses.replace(settings, seed=settings.seed + resamples)
        if resamples and settings.temperature == 0:
            # greedy decoding gives the same unusable answer again, whatever the seed (seen on llama-server:
            # the antoniemen instruction echoed on every retry); a fresh sample needs some temperature
            settings = dataclasses.replace(settings, temperature=RESAMPLE_TEMPERATURE)
        return headers, chat_body(settings, call.messages, call.extra_body)

    def _failed(
        self, rec: CallRecord, err: Exception, body: Mapping[str, Any], http_status: int | None
    ) -> AttemptFailed:
        """Finish ``rec`` for an attempt that raised ``err``; the failure the retry loop decides on."""
        state = self.state
        if isinstance(err, TimeoutError):
            state.finish(
                rec, "timeout", error_kind="timeout", error=f"no answer within {self.call_timeout_s:g} s"
            )
            return AttemptFailed(rec, retryable=True)
        if isinstance(err, openai.APITimeoutError):
            state.finish(
                rec,
                "timeout",
                error_kind="timeout",
                error=f"no answer from {endpoint_host(self.client)} in time",
            )
            return AttemptFailed(rec, retryable=True)
        if isinstance(err, StreamCut):
            state.streams.set_capacity(1)
            state.finish(
                rec,
                "error",
                error_kind=STREAM_CUT,
                error=f"{err} ({err.chunks} chunks; retried; this run now streams one call at a time)",
                http_status=200,
            )
            return AttemptFailed(rec, retryable=True)
        if isinstance(err, openai.APIStatusError):
            return self._status_failed(rec, err, body)
        if isinstance(err, openai.APIConnectionError):
            cause = err.__cause__ or err
            state.finish(
                rec,
                "error",
                error_kind="connection",
                error=f"cannot reach {endpoint_host(self.client)}: "
                f"{short(str(cause) or type(cause).__name__)}",
            )
            return AttemptFailed(rec, retryable=True)
        # a body that is not a chat completion: the server is broken, not busy
        state.finish(
            rec,
            "error",
            error_kind="malformed",
            error=f"{type(err).__name__}: {short(str(err))}",
            http_status=http_status,
        )
        return AttemptFailed(rec, retryable=False)

    def _status_failed(
        self, rec: CallRecord, err: openai.APIStatusError, body: Mapping[str, Any]
    ) -> AttemptFailed:
        """An HTTP error answer: 408/409/429/5xx are retried (honouring retry-after), unless the server
        rejects the request's response_format, which it would do again."""
        code = err.status_code
        retry_after = parse_retry_after(err.response.headers)
        unsupported = rejects_response_format(code, err.message, body)
        retryable = (code in RETRYABLE_STATUS or code >= 500) and not unsupported
        # An endpoint that asks for a longer pause than the cap will not be ready after the cap either:
        # waiting the cap and asking again would only turn its answer into a timeout later on.
        too_long = retryable and retry_after is not None and retry_after > self.retry.retry_after_cap_s
        if too_long:
            retryable = False
        self.state.finish(
            rec,
            "rate_limited" if code == 429 else "error",
            error_kind=UNSUPPORTED_FORMAT if unsupported else error_kind_for_status(code),
            error=f"HTTP {code} from {endpoint_host(self.client)}: {short(err.message)}"
            + (missing_v1_hint(self.client) if code == 404 else "")
            + (
                f" (retry-after {retry_after:g} s is over the cap of {self.retry.retry_after_cap_s:g} s: "
                "not retried)"
                if too_long
                else ""
            ),
            http_status=code,
            retry_after_s=retry_after,
        )
        return AttemptFailed(rec, retryable, retry_after if retryable else None)

    def _deliver(
        self, ask: Call, rec: CallRecord, text: str | None, finish_reason: str | None, common: dict[str, Any]
    ) -> PartOutcome:
        """Parse an answer into the part's outcome (or a non-retryable parse failure) and finish ``rec``."""
        state, part, settings = self.state, ask.part, ask.settings
        truncated = finish_reason == "length"
        if ask.parse is not None:
            result = ask.parse(text)
        else:  # the prompt lets the parser drop instructions a small model echoes back
            assert part is not None, "a call that is not one part brings its own parse"
            result = parse_part(text, part, settings.count, prompt=_last_user_text(ask.messages))
        if not result.ok:
            kind = "truncated" if truncated else "parse"
            state.finish(rec, "parse_error", error_kind=kind, error=result.error, **common)
            raise AttemptFailed(rec, retryable=False, resample=kind == "parse")
        value = result.value
        if truncated and isinstance(value, list) and result.found > 1 and len(value) == result.found:
            value = value[:-1]  # the last item was being written when the token budget ran out
        shortfall = max(0, settings.count - len(value)) if isinstance(value, list) else 0
        # A short answer is delivered (status ok) but marked, so a table of records shows it beside the
        # complete ones: with a small real model fewer items than asked is the norm, not an edge case.
        kind = "truncated" if truncated else ("shortfall" if shortfall else None)
        short = f"{len(value)} of {settings.count} items" if shortfall else None
        state.finish(rec, "ok", error_kind=kind, error=short, **common)
        if ask.stream:
            state.mark_visible()  # a toelichting (or a one-line list) is visible only when complete
        return PartOutcome(part=part, value=value, shortfall=shortfall)


def _gave_up(part: Part | None, settings: PartSettings, rec: CallRecord, attempts: int) -> PartOutcome:
    """The outcome of a part whose last attempt failed: empty, with that attempt's reason."""
    reason = f"{rec.error_kind}: {rec.error}" if rec.error else str(rec.error_kind)
    return PartOutcome(
        part=part,
        value=part.empty() if part is not None else "",
        error=f"{reason} (after {attempts} attempt{'s' if attempts != 1 else ''})",
        error_kind=rec.error_kind,
        shortfall=settings.count,
        attempts=attempts,
    )


def _last_user_text(messages: list[dict[str, str]]) -> str | None:
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else None

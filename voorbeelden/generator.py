"""``generate()``: validate, schedule the six calls with a strategy, enforce the deadline, degrade.

Degradation is data: a failed part becomes its empty default with the reason in ``Generation.errors``, and a
generation where every part failed still returns normally. Only invalid input (:class:`InvalidRequest`, before
any call), an unknown strategy, a missing backend, or cancellation of the caller raise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import openai

from voorbeelden.backend import is_simulator, make_client
from voorbeelden.caller import DEADLINE_CUT, Caller, RunState
from voorbeelden.config import GeneratorConfig
from voorbeelden.strategies.context import LatencyHistory, RunContext
from voorbeelden.strategies.registry import COMBINED_LABEL, Strategy, check_options, get_strategy
from voorbeelden.syncrun import run_sync
from voorbeelden.types import ALL_PARTS, CallRecord, Generation, Part, Request

RequestLike = Request | Mapping[str, Any]


def _config_of(
    config: GeneratorConfig | None,
    deadline_s: float | None,
    call_timeout_s: float | None,
    max_retries: int | None,
    k: int | None,
) -> GeneratorConfig:
    """The one config of a generation: ``config`` as given, or one built from the keywords. Both at once is
    a TypeError: merging them made it unclear which of two values for one setting a run used."""
    given = {
        name: value
        for name, value in (
            ("deadline_s", deadline_s),
            ("call_timeout_s", call_timeout_s),
            ("max_retries", max_retries),
            ("k", k),
        )
        if value is not None
    }
    if config is not None:
        if given:
            raise TypeError(
                f"generate() takes a GeneratorConfig or the keywords {', '.join(given)}, not both: set them "
                f"on the config (config.replace(...), RetryPolicy for max_retries)"
            )
        return config
    return GeneratorConfig().with_policy(**given)


@asynccontextmanager
async def _client_scope(
    client: openai.AsyncOpenAI | None, base_url: str | None, api_key: str | None
) -> AsyncIterator[openai.AsyncOpenAI]:
    """An injected client belongs to the caller; one we create here (by the one client factory,
    :func:`~voorbeelden.backend.make_client`) is closed here, on this loop. An injected client's own retries
    are switched off (on a copy sharing its connection pool): retries the SDK makes internally would never
    show up as records."""
    if client is not None:
        yield client.with_options(max_retries=0) if client.max_retries else client
        return
    own = make_client(base_url, api_key)
    try:
        yield own
    finally:
        await own.close()


async def generate(
    request_or_fields: RequestLike,
    strategy: str = "parallel",
    *,
    client: openai.AsyncOpenAI | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    config: GeneratorConfig | None = None,
    deadline_s: float | None = None,
    call_timeout_s: float | None = None,
    max_retries: int | None = None,
    k: int | None = None,
    sim_key: str | None = None,
    simulator: bool | None = None,
    run_id: str = "",
    scenario: str = "",
    trial: int = 0,
    on_record: Callable[[CallRecord], None] | None = None,
    options: Mapping[str, Any] | None = None,
    hedge_history: LatencyHistory | None = None,
) -> Generation:
    """Generate the six parts for one term.

    ``on_record`` sees every attempt as it ends, also when the generation is then cancelled (the returned
    Generation is lost in that case; the records are not). ``options`` goes to the strategy unchanged.
    ``hedge_history`` is where ``hedged`` learns its percentile delay: pass one history to the generations
    that should learn from each other (a fresh one per generation when omitted).

    The call policy comes from ``config`` or from the keywords ``deadline_s``, ``call_timeout_s``,
    ``max_retries`` and ``k`` (which build one), never both (TypeError). ``simulator`` says whether the
    endpoint is this package's simulator, which alone is sent ``sim_key`` and the attempt number as
    headers; None asks a loopback endpoint's ``/health`` (:func:`~voorbeelden.backend.is_simulator`).
    """
    request = Request.coerce(request_or_fields)
    run_strategy = get_strategy(strategy)
    cfg = _config_of(config, deadline_s, call_timeout_s, max_retries, k)
    check_options(options or {})
    # The deadline counts from the call, not from when the client is ready: building an AsyncOpenAI client
    # (its SSL context) takes tens of ms, which would otherwise make generate() return that much late.
    deadline_at = None if cfg.deadline_s is None else asyncio.get_running_loop().time() + cfg.deadline_s
    state = RunState(
        run_id=run_id,
        scenario=scenario,
        strategy=strategy,
        trial=trial,
        begrip=request.begrip,
        sim_key=sim_key,
        on_record=on_record,
    )
    async with _client_scope(client, base_url, api_key) as cl:
        if simulator is None:
            # Our own question, not the caller's work: its time is added to the deadline.
            asked_at = asyncio.get_running_loop().time()
            simulator = await is_simulator(str(cl.base_url))
            if deadline_at is not None:
                deadline_at += asyncio.get_running_loop().time() - asked_at
        state.simulator = simulator
        caller = Caller(cl, state, retry=cfg.retry, call_timeout_s=cfg.call_timeout_s)
        run = RunContext(
            request=request,
            config=cfg,
            caller=caller,
            k=cfg.k,
            options=dict(options or {}),
            latencies=hedge_history if hedge_history is not None else LatencyHistory(),
        )
        deadline_hit = await _run_until(deadline_at, run_strategy, run, state)
        wall_s = time.monotonic() - state.t0
    return _assemble(request, strategy, cfg, state, run, wall_s, deadline_hit)


async def _run_until(
    deadline_at: float | None, run_strategy: Strategy, run: RunContext, state: RunState
) -> bool:
    """Run the strategy on all six parts until it ends or the deadline passes; whether the deadline hit.
    Only our own deadline is swallowed: a TimeoutError from anywhere else still propagates."""
    state.t0 = time.monotonic()
    timeout = asyncio.timeout_at(deadline_at)
    state.deadline_expired = timeout.expired
    try:
        async with timeout:
            await run_strategy(run, ALL_PARTS)
    except TimeoutError:
        if not timeout.expired():
            raise
        return True
    return False


def _assemble(
    request: Request,
    strategy: str,
    cfg: GeneratorConfig,
    state: RunState,
    run: RunContext,
    wall_s: float,
    deadline_hit: bool,
) -> Generation:
    parts: dict[Part, list[str] | str] = {}
    errors: dict[Part, str] = {}
    shortfalls: dict[Part, int] = {}
    for part in ALL_PARTS:
        outcome = run.outcomes.get(part)
        if outcome is None:
            parts[part] = part.empty()
            errors[part] = (
                _deadline_reason(part, state.records, cfg.deadline_s)
                if deadline_hit
                else "not run by the strategy"
            )
            shortfalls[part] = cfg.settings(part).count
            continue
        parts[part] = outcome.value
        if outcome.error:
            errors[part] = outcome.error
        if outcome.shortfall:
            shortfalls[part] = outcome.shortfall
    # The user sees something when the first call ends well, or earlier when a streamed item completes.
    visible = [r.t_end for r in state.records if r.status == "ok"]
    if getattr(state, "first_visible_s", None) is not None:
        visible.append(state.first_visible_s)
    return Generation(
        request=request,
        strategy=strategy,
        parts=parts,
        records=sorted(state.records, key=lambda r: (r.t_start, r.part, r.attempt)),
        wall_s=wall_s,
        errors=errors,
        shortfalls=shortfalls,
        run_id=state.run_id,
        scenario=state.scenario,
        trial=state.trial,
        first_visible_s=min(visible, default=None),
    )


def _deadline_reason(part: Part, records: list[CallRecord], deadline_s: float | None) -> str:
    """Why a part without an outcome failed when the deadline hit, said as it was: its own call was running,
    it was waiting to retry (Retry-After or backoff), the combined call that covers it was running or
    waiting to retry, or nothing had started for it."""
    limit = f"deadline of {deadline_s:g} s"
    own = [r for r in records if r.part == part.value and not r.hedge]
    combined = [r for r in records if r.part == COMBINED_LABEL]
    for label, recs in (("the part", own), ("the combined call (all parts in one)", combined)):
        if not recs:
            continue
        if any(r.error == DEADLINE_CUT for r in recs):
            return f"timeout: {limit} reached while {label} was running"
        last = max(recs, key=lambda r: (r.t_end, r.attempt))
        if last.status == "ok":
            if recs is own:  # e.g. split between rounds of one-item calls
                return f"timeout: {limit} reached before the part's further calls started"
            break  # the combined answer lacked this part; its own call had not started
        wait = "Retry-After" if last.retry_after_s is not None else "backoff"
        kind = f" ({last.error_kind})" if last.error_kind and last.error_kind != last.status else ""
        return (
            f"timeout: {limit} reached while {label} was waiting to retry ({wait}, {last.waited_s:.2f} s "
            f"waited) after attempt {last.attempt} ended {last.status}{kind}"
        )
    if combined:
        return (
            f"timeout: {limit} reached; the combined answer lacked this part and its own call had not started"
        )
    return f"timeout: not started before the {limit}"


def generate_sync(request_or_fields: RequestLike, strategy: str = "parallel", **kwargs: Any) -> Generation:
    """:func:`generate` for synchronous code, including a cell of a running Jupyter kernel.

    Inside a running loop the generation runs on a background loop thread, so pass connection settings
    (``base_url``/``api_key``), not a ``client`` created on your own loop.
    """
    return run_sync(generate(request_or_fields, strategy, **kwargs))

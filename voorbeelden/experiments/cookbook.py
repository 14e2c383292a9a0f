"""The OpenAI cookbook's ``api_request_parallel_processor.py``, re-implemented for this project as a baseline.

What the published script does, and what is kept here line for line in behaviour:

* one main loop that takes the next request (a retry first, else a new one), refills two capacity counters
  continuously up to ``max_requests_per_minute`` / ``max_tokens_per_minute`` (so it starts with a whole
  minute's burst), sends when both have room (charging one request and the request's tokens), sleeps 1 ms,
  and, if a rate-limit error was seen less than 15 s ago, sleeps out the rest of those 15 s;
* every call is a task; any error puts the request back on the retry queue until ``max_attempts`` (5)
  attempts are spent, then it is counted as failed;
* a rate-limit error is recognised the way the published code does it: ``error["error"]["code"] == "429"``.
  OpenAI's body (and the simulator's) says ``"code": "rate_limit_exceeded"``, so as published the script
  never pauses and retries a 429 as soon as its own capacity counter allows. ``detect="status"`` recognises
  an HTTP 429 instead (what the script's comments intend), to show what the pause would have done.

Differences, all for the measurement and none in the algorithm: requests are chat-completion bodies built by
:mod:`voorbeelden.prompts` (six per term); tokens are estimated as prompt characters / 4 + ``max_tokens``
instead of with tiktoken (not a dependency here); ``x-sim-key``/``x-sim-attempt`` headers are added so the
simulator draws the same latencies as for the other contenders; http URLs are accepted; results are counted,
not written to a file; the 15 s pause and the one-minute refill are multiplied by ``time_scale`` (the 1 ms
loop sleep is a polling interval, not a modelled wait, and is kept); and the call tasks belong to a
TaskGroup instead of being fire-and-forget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CookbookRequest", "CookbookStatus", "process_requests"]

DETECTIONS = ("code-429", "status")


@dataclass
class CookbookRequest:
    """One request of the input file: the API body, its token estimate and the attempts it has left."""

    body: dict[str, Any]
    token_consumption: float
    headers: dict[str, str] = field(default_factory=dict)
    attempts_left: int = 0
    attempts: int = 0


@dataclass
class CookbookStatus:
    """The published ``StatusTracker`` counters, plus the attempts made (for the comparison table)."""

    num_tasks_started: int = 0
    num_tasks_in_progress: int = 0
    num_tasks_succeeded: int = 0
    num_tasks_failed: int = 0
    num_rate_limit_errors: int = 0
    num_api_errors: int = 0
    num_other_errors: int = 0
    time_of_last_rate_limit_error: float = float("-inf")
    attempts: int = 0


def _is_rate_limit(detect: str, http_status: int, response: Mapping[str, Any]) -> bool:
    if detect == "status":
        return http_status == 429
    error = response.get("error")
    # As published: `if error['error']['code'] == '429':` (a string compare that OpenAI's body never matches).
    return isinstance(error, Mapping) and error.get("code") == "429"


async def _call_api(
    session: Any,
    request: CookbookRequest,
    request_url: str,
    request_header: Mapping[str, str],
    retry_queue: asyncio.Queue[CookbookRequest],
    status: CookbookStatus,
    detect: str,
) -> None:
    request.attempts += 1
    status.attempts += 1
    error: object = None
    headers = {**request_header, **request.headers, "x-sim-attempt": str(request.attempts)}
    try:
        async with session.post(url=request_url, headers=headers, json=request.body) as response:
            http_status = response.status
            data = await response.json()
        if "error" in data:
            status.num_api_errors += 1
            error = data
            if _is_rate_limit(detect, http_status, data):
                status.time_of_last_rate_limit_error = time.monotonic()
                status.num_rate_limit_errors += 1
                status.num_api_errors -= 1
    except Exception as err:  # as published: every exception is logged, counted and retried
        status.num_other_errors += 1
        error = err
    if error is not None:
        if request.attempts_left:
            retry_queue.put_nowait(request)
        else:
            status.num_tasks_in_progress -= 1
            status.num_tasks_failed += 1
    else:
        status.num_tasks_in_progress -= 1
        status.num_tasks_succeeded += 1


@dataclass
class _Capacity:
    """The published two capacity counters: refilled continuously up to one minute's worth (so a run starts
    with a whole minute's burst), charged one request and the request's tokens per send."""

    max_requests_per_minute: float
    max_tokens_per_minute: float
    minute_s: float
    available_request_capacity: float = 0.0
    available_token_capacity: float = 0.0
    last_update_time: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.available_request_capacity = self.max_requests_per_minute
        self.available_token_capacity = self.max_tokens_per_minute

    def refill(self) -> None:
        current_time = time.monotonic()
        seconds_since_update = current_time - self.last_update_time
        self.available_request_capacity = min(
            self.available_request_capacity
            + self.max_requests_per_minute * seconds_since_update / self.minute_s,
            self.max_requests_per_minute,
        )
        self.available_token_capacity = min(
            self.available_token_capacity + self.max_tokens_per_minute * seconds_since_update / self.minute_s,
            self.max_tokens_per_minute,
        )
        self.last_update_time = current_time

    def take(self, next_request_tokens: float) -> bool:
        """Charge one request of ``next_request_tokens`` if both counters have room; False (nothing charged)
        otherwise."""
        if self.available_request_capacity >= 1 and self.available_token_capacity >= next_request_tokens:
            self.available_request_capacity -= 1
            self.available_token_capacity -= next_request_tokens
            return True
        return False


@dataclass
class _Requests:
    """Where the next request comes from, as published: a retry first, else the next new one."""

    source: Iterator[CookbookRequest]
    retry_queue: asyncio.Queue[CookbookRequest]
    status: CookbookStatus
    max_attempts: int
    file_not_finished: bool = True

    def next(self) -> CookbookRequest | None:
        if not self.retry_queue.empty():
            return self.retry_queue.get_nowait()
        if self.file_not_finished:
            try:
                next_request = next(self.source)
                next_request.attempts_left = self.max_attempts
                self.status.num_tasks_started += 1
                self.status.num_tasks_in_progress += 1
                return next_request
            except StopIteration:
                self.file_not_finished = False
        return None


async def _pause_after_rate_limit(status: CookbookStatus, pause_s: float) -> None:
    """As published: after a rate-limit error, no request is sent until ``pause_s`` has passed since it."""
    seconds_since_rate_limit_error = time.monotonic() - status.time_of_last_rate_limit_error
    if seconds_since_rate_limit_error < pause_s:
        await asyncio.sleep(pause_s - seconds_since_rate_limit_error)


async def process_requests(
    requests: Iterable[CookbookRequest],
    *,
    request_url: str,
    api_key: str,
    max_requests_per_minute: float,
    max_tokens_per_minute: float,
    max_attempts: int = 5,
    time_scale: float = 1.0,
    seconds_to_pause_after_rate_limit_error: float = 15.0,
    detect: str = "code-429",
) -> CookbookStatus:
    """Send every request the published way; returns the status counters.

    :param request_url: the chat-completions URL (``{base_url}/chat/completions``).
    :param time_scale: multiplies the minute of the capacity refill and the pause after a rate-limit error.
    :param detect: ``"code-429"`` (as published) or ``"status"`` (an HTTP 429 counts as a rate-limit error).
    """
    import aiohttp

    if detect not in DETECTIONS:
        raise ValueError(f"detect must be one of {', '.join(DETECTIONS)}, got {detect!r}")
    pause_s = seconds_to_pause_after_rate_limit_error * time_scale
    seconds_to_sleep_each_loop = 0.001
    request_header = {"Authorization": f"Bearer {api_key}"}
    retry_queue: asyncio.Queue[CookbookRequest] = asyncio.Queue()
    status = CookbookStatus()
    pending = _Requests(iter(requests), retry_queue, status, max_attempts)
    next_request: CookbookRequest | None = None
    capacity = _Capacity(max_requests_per_minute, max_tokens_per_minute, minute_s=60.0 * time_scale)
    # As published: a default session (aiohttp's pool of 100 connections, so a burst above 100 queues here).
    async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
        while True:
            if next_request is None:
                next_request = pending.next()
            capacity.refill()
            if next_request is not None and capacity.take(next_request.token_consumption):
                next_request.attempts_left -= 1
                tg.create_task(
                    _call_api(session, next_request, request_url, request_header, retry_queue, status, detect)
                )
                next_request = None
            if status.num_tasks_in_progress == 0:
                break
            await asyncio.sleep(seconds_to_sleep_each_loop)
            await _pause_after_rate_limit(status, pause_s)
    return status

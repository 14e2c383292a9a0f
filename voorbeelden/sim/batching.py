"""A server that batches: concurrent calls share decode steps, so each slows down as more run at once.

Processor sharing with a speed that depends on how many streams are active. A call's *work* is the time it
would take served alone (time to first token plus decode time, already multiplied by ``time_scale``). While
``n`` streams are active every one of them advances at ``batching.rate(n)`` seconds of work per second, so
the whole server delivers ``batching.throughput(n)``. That common rate makes one "virtual clock" enough
(the classic trick for processor sharing): it advances at the current rate, a stream that joins at virtual
time ``v0`` has done ``v - v0`` of its work at virtual time ``v``, and each point a stream waits for (its
first token, each streamed chunk, its end) is a virtual time. Whenever a stream joins or leaves, the rate
changes and every pending wake-up is re-timed on the loop clock. At most ``max_batch`` streams are served;
the rest wait in arrival order in the server's capacity gate (see :class:`voorbeelden.sim.state.SimState`).

Everything here runs on the server's event loop; no locks.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence

import numpy as np

from voorbeelden.sim.profiles import Batching


class SharedDecoder:
    """The streams a batching server is decoding together, and when each reaches a point of its work."""

    def __init__(self, batching: Batching, clock: Callable[[], float] | None = None) -> None:
        self.batching = batching
        self._clock = clock
        self._v = 0.0  # virtual time: work done by every stream active since v = 0
        self._t: float | None = None  # loop time at which _v was last brought up to date
        self.active = 0
        self._waits: dict[asyncio.Future[None], tuple[float, asyncio.TimerHandle | None]] = {}

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _advance(self) -> float:
        now = self._now()
        if self._t is not None and self.active:
            self._v += (now - self._t) * self.batching.rate(self.active)
        self._t = now
        return now

    def join(self) -> Stream:
        """A stream starts: every active stream slows to the rate for one more."""
        self._advance()
        self.active += 1
        self._retime()
        return Stream(self, self._v)

    def _leave(self) -> None:
        self._advance()
        self.active -= 1
        self._retime()

    def due(self, target: float) -> float:
        """The loop time at which the virtual clock reaches ``target`` if no stream joins or leaves."""
        t = self._t if self._t is not None else self._now()
        return t + max(0.0, target - self._v) / self.batching.rate(self.active)

    def _retime(self) -> None:
        loop = asyncio.get_running_loop()
        for fut, (target, handle) in list(self._waits.items()):
            if handle is not None:
                handle.cancel()
            self._waits[fut] = (target, loop.call_at(self.due(target), self._fire, fut))

    def _fire(self, fut: asyncio.Future[None]) -> None:
        self._waits.pop(fut, None)
        if not fut.done():
            fut.set_result(None)

    async def until(self, target: float) -> None:
        """Wait until the virtual clock reaches ``target``."""
        self._advance()
        if self._v >= target:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waits[fut] = (target, loop.call_at(self.due(target), self._fire, fut))
        try:
            await fut
        finally:
            entry = self._waits.pop(fut, None)
            if entry is not None and entry[1] is not None:
                entry[1].cancel()


class Stream:
    """One call being decoded: wait for points of its own work with :meth:`until`; :meth:`close` it (always,
    in a ``finally``) when it ends, is cut or its client goes away."""

    def __init__(self, decoder: SharedDecoder, v0: float) -> None:
        self.decoder = decoder
        self.v0 = v0
        self._open = True

    async def until(self, work_s: float) -> None:
        """Wait until this stream has done ``work_s`` seconds of work (as timed for a call served alone)."""
        await self.decoder.until(self.v0 + work_s)

    def close(self) -> None:
        if self._open:
            self._open = False
            self.decoder._leave()


def replay(
    starts: Sequence[float],
    works: Sequence[float],
    batching: Batching,
    order: Sequence[int] | None = None,
) -> np.ndarray:
    """When each call would end on a batching server: calls arrive at ``starts``, are admitted in ``order``
    (default: by start) while fewer than ``max_batch`` run, and share the server as :class:`SharedDecoder`
    does, each needing ``works`` seconds of work (its time served alone). The same model as the live server,
    as a pure function: calibration replays measured generations with it, and tests check the server
    against it."""
    return replay_times(starts, works, batching, order)[1]


def replay_times(
    starts: Sequence[float],
    works: Sequence[float],
    batching: Batching,
    order: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`replay`'s admission times (when each call got a place in the batch) and end times."""
    starts_a = np.asarray(starts, float)
    works_a = np.asarray(works, float)
    n = len(starts_a)
    if order is None:
        order = np.argsort(starts_a, kind="stable")
    arrivals = collections.deque(int(i) for i in order)
    queue: collections.deque[int] = collections.deque()
    remaining: dict[int, float] = {}
    ends = np.zeros(n)
    admits = np.zeros(n)
    t = float(starts_a.min()) if n else 0.0
    eps = 1e-12
    while arrivals or queue or remaining:
        rate = batching.rate(len(remaining))
        t_done = t + min(remaining.values()) / rate if remaining else np.inf
        t_next = max(t, float(starts_a[arrivals[0]])) if arrivals else np.inf
        t_new = min(t_done, t_next)
        for i in remaining:
            remaining[i] -= (t_new - t) * rate
        t = t_new
        for i in [i for i, w in remaining.items() if w <= eps * max(1.0, works_a[i])]:
            ends[i] = t
            del remaining[i]
        while arrivals and float(starts_a[arrivals[0]]) <= t:
            queue.append(arrivals.popleft())
        while queue and len(remaining) < batching.max_batch:
            i = queue.popleft()
            admits[i] = t
            if works_a[i] <= 0:
                ends[i] = t
            else:
                remaining[i] = float(works_a[i])
    return admits, ends

"""A first-come-first-served semaphore whose size can change while it is in use.

    sem = FifoSemaphore(4)
    await sem.acquire()
    try:
        ...
    finally:
        sem.release()

:class:`asyncio.Semaphore` lets a newcomer take a slot that was just released ahead of tasks already
waiting, and its size is fixed. The simulator's capacity gate needs FIFO order (a server with a fixed number
of workers serves its queue in order) and a size changed at run time; the batch's adaptive concurrency needs
the same with a size that moves with every answer. One implementation serves both.
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["FifoSemaphore"]


class FifoSemaphore:
    """At most ``capacity`` holders at once (None: unlimited), woken in arrival order.

    :param capacity: slots; change it with :meth:`set_capacity` (a shrink takes effect as holders leave).
    """

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _free(self) -> bool:
        return self.capacity is None or self.active < self.capacity

    async def acquire(self) -> None:
        if self._free() and not self._waiters:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def set_capacity(self, capacity: int | None) -> None:
        self.capacity = capacity
        self._wake()

    def _wake(self) -> None:
        # The only subtle part: a slot is handed to a waiter by counting it as taken *before* the waiter
        # runs, so a newcomer calling acquire() in between cannot jump the queue.
        while self._waiters and self._free():
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)

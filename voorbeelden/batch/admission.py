"""When the next term of a batch may start: enough running work to keep the gate's slots full, no more.

    admission = Admission(width=6, concurrency=transport.concurrency)
    await admission.wait()           # until there is room for one more term
    calls = admission.enter()        # counted before its task runs, so the next check sees it
    ... generate(..., on_record=calls.on_record) ...
    calls.leave()                    # in a finally: the room is given back whatever happened

A term holds its place until its slowest part is done, so late in its life it has one call out, not six;
counting terms would leave slots idle and the adaptive limit would never see saturation. Counting the calls
the running terms still have to make keeps the gate's slots full with at most one term's calls queued, so
no term's calls wait behind thousands of others (which would inflate every term's wall time).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from voorbeelden.types import ALL_PARTS, CallRecord

if TYPE_CHECKING:
    from voorbeelden.batch.adaptive import AdaptiveConcurrency

__all__ = ["CALLS_PER_TERM", "Admission", "TermCalls"]

CALLS_PER_TERM = len(ALL_PARTS)


class Admission:
    """The running terms and the calls they still have to make; only the admitting loop waits on it.

    :param width: calls one term has in flight at most (its strategy's fan-out).
    :param concurrency: the gate's limit; its current ``effective`` value decides the room.
    :param terms_in_flight: a fixed number of terms at once instead (the calls are then not counted).
    :param max_in_flight: without a limit to follow, as many terms as fit this many calls.
    """

    def __init__(
        self,
        width: int,
        concurrency: AdaptiveConcurrency | None,
        *,
        terms_in_flight: int | None = None,
        max_in_flight: int = 64,
    ) -> None:
        self.width, self.concurrency = width, concurrency
        self.terms_in_flight, self.max_in_flight = terms_in_flight, max_in_flight
        self.active = 0  # terms running
        self.outstanding = 0  # calls the running terms still have to make (at most `width` each at a time)
        self.room = asyncio.Event()  # set whenever a call or a term finishes

    def has_room(self) -> bool:
        if self.terms_in_flight is not None:
            return self.active < self.terms_in_flight
        if self.concurrency is None:
            return self.active < max(1, math.ceil(self.max_in_flight / CALLS_PER_TERM))
        return self.outstanding < self.concurrency.effective + self.width

    async def wait(self) -> None:
        """Return once one more term fits (at once when it already does)."""
        while not self.has_room():
            self.room.clear()
            await self.room.wait()

    def enter(self) -> TermCalls:
        """Count a term in, before its task runs: the next check must see it."""
        calls = TermCalls(self)
        self.active += 1
        self.outstanding += calls.mine
        return calls


class TermCalls:
    """One running term's share of :attr:`Admission.outstanding`, shrinking as its parts are answered."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.remaining = CALLS_PER_TERM  # parts not answered yet
        self.mine = min(admission.width, CALLS_PER_TERM)  # what this term counts in `outstanding` now

    def on_record(self, record: CallRecord) -> None:
        """A part answered frees room: retries, failures and hedge backups do not (the part is still owed)."""
        if record.status == "ok" and not record.hedge and self.remaining > 0:
            self.remaining -= 1
            self._count(min(self.admission.width, self.remaining))

    def leave(self) -> None:
        """The term is done (or failed, or was cancelled): give back its place and whatever it still counts."""
        self._count(0)
        self.admission.active -= 1

    def _count(self, now: int) -> None:
        self.admission.outstanding += now - self.mine
        self.mine = now
        self.admission.room.set()

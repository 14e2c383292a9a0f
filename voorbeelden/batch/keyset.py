"""A set of strings in 16 bytes per member: the keys a batch has seen, without a Python object per key.

    seen = KeySet()
    seen.add("be90f4368c01912f4a9f6df7526a62dd")
    "be90f4368c01912f4a9f6df7526a62dd" in seen   # True

A ``set[str]`` of a 100,000-term batch costs 5-9 MB (its table grows fourfold while small and keeps the
strings alive), and every small object that lives as long as the batch pins an allocator arena that would
otherwise be given back. Here a member is its 128-bit BLAKE2b fingerprint, kept as two 64-bit integers in
sorted ``array`` storage plus a small unsorted tail that is merged in when it grows; a false match needs two
different keys with the same 128-bit digest (about 1e-29 for a million keys).
"""

from __future__ import annotations

import bisect
import hashlib
from array import array

__all__ = ["KeySet"]

_TAIL = 4096  # members kept in a dict before they are merged into the sorted arrays (or 1/16 of them)


def _fingerprint(key: str) -> tuple[int, int]:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little", signed=True), int.from_bytes(
        digest[8:], "little", signed=True
    )


class KeySet:
    """Membership of strings in fixed-size fingerprints (``add``, ``in``, ``len``); no removal."""

    __slots__ = ("_hi", "_lo", "_tail")

    def __init__(self) -> None:
        self._hi = array("q")  # sorted by (hi, lo)
        self._lo = array("q")
        self._tail: dict[tuple[int, int], None] = {}

    def __len__(self) -> int:
        return len(self._hi) + len(self._tail)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        fp = _fingerprint(key)
        if fp in self._tail:
            return True
        i = bisect.bisect_left(self._hi, fp[0])
        while i < len(self._hi) and self._hi[i] == fp[0]:
            if self._lo[i] == fp[1]:
                return True
            i += 1
        return False

    def add(self, key: str) -> None:
        if key in self:
            return
        self._tail[_fingerprint(key)] = None
        if len(self._tail) >= max(_TAIL, len(self._hi) // 16):  # geometric: O(n log n) over all merges
            self._merge()

    def _merge(self) -> None:
        # A linear merge into new arrays, element by element: no list of n tuples (which would raise the
        # peak RSS by ~100 bytes per member, the very thing this class avoids).
        tail = sorted(self._tail)
        hi, lo = array("q"), array("q")
        old_hi, old_lo, i, n = self._hi, self._lo, 0, len(self._hi)
        for t_hi, t_lo in tail:
            while i < n and (old_hi[i], old_lo[i]) < (t_hi, t_lo):
                hi.append(old_hi[i])
                lo.append(old_lo[i])
                i += 1
            hi.append(t_hi)
            lo.append(t_lo)
        hi.extend(old_hi[i:])
        lo.extend(old_lo[i:])
        self._hi, self._lo, self._tail = hi, lo, {}

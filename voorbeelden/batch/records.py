"""What a finished term leaves behind: a compact result line, and (only when asked) its full call records.

A result line that carries every call attempt is about 6 KB, and a batch is read back mostly for its parts,
status and errors. So the line holds those plus a timing summary (:func:`compact_result`); the attempts,
one JSON line each, go to a separate file with ``--records FILE`` (:class:`RecordSink`), keyed like the
result line so the two can be joined.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from voorbeelden.types import Generation

__all__ = ["RecordSink", "compact_result"]


def compact_result(gen: Generation) -> dict[str, Any]:
    """Parts, errors and a timing summary of one term (no per-call records)."""
    records = gen.records
    out: dict[str, Any] = {
        "begrip": gen.request.begrip,
        "strategy": gen.strategy,
        "parts": {str(k): v for k, v in gen.parts.items()},
        "errors": {str(k): v for k, v in gen.errors.items()},
        "timing": {
            "wall_s": round(gen.wall_s, 4),
            "first_visible_s": None if gen.first_visible_s is None else round(gen.first_visible_s, 4),
            "calls": len(records),
            "retries": sum(1 for r in records if r.attempt > 1 and not r.hedge),
            "rate_limited": sum(1 for r in records if r.status == "rate_limited"),
            "cached": sum(1 for r in records if r.cached),
            "sum_latency_s": round(gen.sum_latency_s, 4),
            "max_latency_s": round(gen.max_latency_s, 4),
            "tokens_in": gen.tokens_in,
            "tokens_out": gen.tokens_out,
        },
    }
    if gen.shortfalls:
        out["shortfalls"] = {str(k): v for k, v in gen.shortfalls.items()}
    return out


class RecordSink:
    """Appends every call attempt of every term as one JSON line (``{"key": ..., **CallRecord}``).

    :param path: the records file; appended to, so a resumed batch adds the records of its new attempts.
    :param fsync: also ``os.fsync`` after every term's records.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._file: IO[str] | None = None

    def open(self) -> RecordSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        return self

    def write(self, key: str, gen: Generation) -> None:
        if self._file is None:
            raise RuntimeError("RecordSink is not open")
        lines = "".join(
            json.dumps({"key": key, **r.to_dict()}, ensure_ascii=False, separators=(",", ":"), default=str)
            + "\n"
            for r in gen.records
        )
        self._file.write(lines)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

"""What a finished term leaves behind: a compact result line, and (only when asked) its full call records.

A result line that carries every call attempt is about 6 KB, and a batch is read back mostly for its parts,
status and errors. So the line holds those plus a timing summary (:func:`compact_result`); the attempts,
one JSON line each, go to a separate file with ``--records FILE`` (:class:`RecordSink`), keyed like the
result line so the two can be joined.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from voorbeelden.redact import redact_obj
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

    The records are a side output: a write that fails (a full disk) must not cost the results their lines.
    So :meth:`write` never raises: the first failure cuts the file back to its last whole line, is kept in
    :attr:`problem` (the batch says it once and exits partial) and every later write is skipped.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.problem: str | None = None
        self.terms_lost = 0  # terms whose records were not written
        self._fd: int | None = None

    def open(self) -> RecordSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        return self

    def write(self, key: str, gen: Generation, extra_secrets: Iterable[str] = ()) -> None:
        if self._fd is None:
            raise RuntimeError("RecordSink is not open")
        if self.problem is not None:
            self.terms_lost += 1
            return
        rows = redact_obj([{"key": key, **r.to_dict()} for r in gen.records], extra_secrets)
        data = "".join(
            json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n" for row in rows
        ).encode()
        regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        start = os.fstat(self._fd).st_size if regular else 0
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync and regular:
                os.fsync(self._fd)
        except OSError as exc:
            if regular:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
            what = (
                "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
            )
            self.problem = f"--records {self.path}: cannot write call records ({what}); no more are written"
            self.terms_lost += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

"""Append-only JSONL results that survive a crash and make a rerun resume where the last one stopped.

One line per finished term, written with a single ``write`` and flushed at once, so a SIGKILL loses at most
the terms still in flight plus, possibly, a torn last line; that line is cut off when the file is opened
again. Lines are never rewritten: a retried term gets a newer line and readers take the last line per key
(:func:`read_results` does that). On resume only the keys and their last status are kept in memory, so
a file of a million terms costs tens of megabytes, not its size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from voorbeelden.types import Request

__all__ = ["OutputLog", "iter_results", "line_key", "read_results", "request_key"]

FINISHED = ("ok", "failed", "invalid")


def request_key(request: Request) -> str:
    """A stable hash of what was asked (normalised begrip, definitie, context): the resume key."""
    canonical = json.dumps(request.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def line_key(raw: str) -> str:
    """The key of an input line that is not a valid request: its text, so fixing the line makes a new key."""
    return "line-" + hashlib.sha256(raw.strip().encode()).hexdigest()[:27]


def iter_results(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every complete line of a results file, in order (a torn last line is skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                return
            try:
                yield json.loads(line)
            except ValueError:
                continue


def read_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last line per key: what a reader of a resumed or retried batch should use."""
    return {row["key"]: row for row in iter_results(path) if "key" in row}


class OutputLog:
    """The results file of one batch, opened for appending.

        with OutputLog("out.jsonl") as log:
            if log.should_run(key, retry_failed=False):
                log.append({"key": key, "status": "ok", ...})

    :param path: the JSONL file; created when absent, resumed when present.
    :param fsync: also ``os.fsync`` after every line (survives a power cut, not only a killed process;
        costs a disk flush per term).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.status: dict[str, str] = {}
        self.torn_bytes = 0
        self.lines_read = 0
        self._file: IO[str] | None = None

    def open(self) -> OutputLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.torn_bytes = _cut_torn_tail(self.path)
            for row in iter_results(self.path):
                key, status = row.get("key"), row.get("status")
                if isinstance(key, str) and isinstance(status, str):
                    self.status[key] = status
                    self.lines_read += 1
        self._file = open(self.path, "a", encoding="utf-8")
        return self

    def __enter__(self) -> OutputLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def should_run(self, key: str, *, retry_failed: bool = False) -> bool:
        """Not finished before, or failed before and ``retry_failed``; invalid lines are never rerun as is."""
        previous = self.status.get(key)
        return previous is None or (retry_failed and previous == "failed")

    def append(self, row: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("OutputLog is not open")
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        self._file.write(line)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        if "key" in row:
            self.status[row["key"]] = row.get("status", "")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _cut_torn_tail(path: Path) -> int:
    """Truncate a last line without its newline (a write cut short by a kill); returns the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back in blocks to the last newline; a torn line is at most one result long.
        pos, block = size, 65536
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                f.truncate(keep)
                return size - keep
            pos = start
        f.truncate(0)
        return size

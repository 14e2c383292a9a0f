"""Append-only JSONL results that survive a crash and make a rerun resume where the last one stopped.

One line per finished term, written with a single ``write`` and flushed at once, so a SIGKILL loses at most
the terms still in flight plus, possibly, a torn last line; that line is cut off when the file is opened
again. A retried term gets a newer line while the batch runs; when the log is closed, a file with more than
one line for a key is compacted (rewritten to a temporary file, then renamed over the old one, so a reader
sees the old file or the new one, never half of each) and holds exactly one line per term. A reader of a
file left uncompacted by a kill still sees one row per key: :func:`iter_results` and :func:`read_results`
both keep the last line. On resume only the keys and their last status are kept in memory, so a file of a
million terms costs tens of megabytes, not its size.

A file is only repaired or appended to when it is ours: every complete line a result object with ``key`` and
``status``, a torn tail that starts like one. Anything else (notes, the input itself) is refused with a
message, so ``--out`` pointed at the wrong file never loses a byte of it. A sidecar lock
(:class:`~voorbeelden.batch.filelock.FileLock`) keeps a second batch off a file that one is writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from voorbeelden.batch.filelock import FileLock, LockHeld
from voorbeelden.outpaths import OutputPathError, check_file_target, same_target
from voorbeelden.types import Request

__all__ = [
    "NotOurFile",
    "OutputError",
    "OutputLocked",
    "OutputLog",
    "check_output",
    "check_targets",
    "compact",
    "iter_results",
    "line_key",
    "read_results",
    "request_key",
]


def request_key(request: Request) -> str:
    """A stable hash of what was asked (normalised begrip, definitie, context): the resume key."""
    canonical = json.dumps(request.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def line_key(raw: str) -> str:
    """The key of an input line that is not a valid request: its text, so fixing the line makes a new key."""
    return "line-" + hashlib.sha256(raw.strip().encode()).hexdigest()[:27]


class OutputError(ValueError):
    """The results file cannot be used (a directory, not writable, not ours); raised before any work."""


class NotOurFile(OutputError):
    """The file exists but is not a results file of ``voorbeelden batch``; nothing in it was changed."""


class OutputLocked(OutputError):
    """Another batch is writing the file; ``holder`` names it (pid, host, since when)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.holder = holder
        super().__init__(
            f"--out {path} is being written by another batch ({holder or 'holder unknown'}); wait for it to "
            "finish or choose another --out"
        )


_HEAD = re.compile(rb"^\s*\{\s*\"key\"\s*:")
_HEAD_TEXT = b'{"key":'


def _result_line(line: bytes) -> dict[str, Any] | None:
    """The row if ``line`` (with its newline) is one of ours, else None."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("status"), str):
        return row
    return None


def _torn_tail_is_ours(tail: bytes) -> bool:
    """A line cut short by a kill starts like our lines do, or is a prefix of that start."""
    stripped = tail.lstrip()
    return bool(_HEAD.match(tail)) or (len(stripped) < len(_HEAD_TEXT) and _HEAD_TEXT.startswith(stripped))


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        yield from enumerate(f, start=1)


def iter_results(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every result in the file, one per key (its last line), in file order; a torn last line is skipped.

    Two passes (keys first, then rows), so memory holds the keys, not the rows: the same view as
    :func:`read_results` and as a compacted file, whether or not a retry run was killed before compacting."""
    last: dict[str, int] = {}
    for n, line in _lines(path):
        if line.endswith(b"\n"):
            row = _result_line(line)
            if row is not None:
                last[row["key"]] = n
    for n, line in _lines(path):
        if not line.endswith(b"\n"):
            return
        row = _result_line(line)
        if row is not None and last.get(row["key"]) == n:
            yield row


def read_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last line per key: what a reader of a resumed or retried batch should use."""
    return {row["key"]: row for row in iter_results(path)}


def check_output(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputError` if ``path`` cannot be this batch's results file; changes nothing.

    Cheap checks only (the full scan happens when the log opens): what :func:`check_file_target` refuses (a
    directory, a file or folder that cannot be written), or a file whose first line is not a result line."""
    p = Path(path)
    try:
        check_file_target(p, "--out")
    except OutputPathError as err:
        raise OutputError(str(err)) from None
    if p.exists():
        with open(p, "rb") as f:
            first = f.readline()
        whole = first.endswith(b"\n")
        ours = _result_line(first) is not None if whole else _torn_tail_is_ours(first)
        if first.strip() and not ours:
            raise NotOurFile(_not_ours(p, 1))


def check_targets(
    source: str | os.PathLike[str] | None,
    out: str | os.PathLike[str] | None,
    records: str | os.PathLike[str] | None,
) -> None:
    """Raise :class:`OutputError` if a file the batch writes is its input (``source``, None when the requests
    do not come from a file) or, for ``records``, the results file or unusable; changes nothing. The CLI asks
    before it starts a simulator, the library before anything opens."""
    if out is not None and source is not None and same_target(source, out):
        raise OutputError(
            f"--out {out} is the input file itself; results appended to the input would be read back as "
            "input. Choose another --out"
        )
    if records is not None:
        try:
            inputs = {"the input": source, "--out": out}
            check_file_target(records, "--records", not_same_as=inputs, example="records.jsonl")
        except OutputPathError as err:
            raise OutputError(str(err)) from None


def _not_ours(path: Path, n: int) -> str:
    return (
        f"--out {path} is not a results file of voorbeelden batch (line {n} is not a result line); refusing to "
        "append to it or repair it. Choose another --out (a new file is created) or move that file away"
    )


class OutputLog:
    """The results file of one batch, opened for appending and locked against a second batch.

        with OutputLog("out.jsonl") as log:
            if log.should_run(key, retry_failed=False):
                log.append({"key": key, "status": "ok", ...})

    :param path: the JSONL file; created when absent, resumed when present (if it is ours).
    :param fsync: also ``os.fsync`` after every line (survives a power cut, not only a killed process;
        costs a disk flush per term).

    ``open`` raises :class:`OutputError` (a directory, not writable), :class:`NotOurFile` or
    :class:`OutputLocked` (another batch writes it), each before anything in the file changes.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.status: dict[str, str] = {}
        self.torn_bytes = 0
        self.lines_read = 0
        self.superseded = 0  # lines a newer line of the same key replaces; > 0 means compact on close
        self._file: IO[str] | None = None
        self._lock = FileLock(self.path)

    def open(self) -> OutputLog:
        check_output(self.path)
        try:  # the permission check can pass where the file system still refuses (/sys, read-only, quota)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except LockHeld as err:
            raise OutputLocked(self.path, err.holder) from None
        except OSError as exc:
            raise OutputError(
                f"--out {self.path}: cannot write it or its lock file ({exc.strerror or exc})"
            ) from exc
        try:
            if self.path.exists():
                self._read_existing()
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            self._lock.release()
            raise OutputError(f"--out {self.path}: cannot open it ({exc.strerror or exc})") from exc
        except BaseException:
            self._lock.release()
            raise
        return self

    def _read_existing(self) -> None:
        tail = b""
        for n, line in _lines(self.path):
            if not line.endswith(b"\n"):
                tail = line
                break
            if not line.strip():
                continue
            row = _result_line(line)
            if row is None:
                raise NotOurFile(_not_ours(self.path, n))
            if row["key"] in self.status:
                self.superseded += 1
            self.status[row["key"]] = row["status"]
            self.lines_read += 1
        if tail:
            if not _torn_tail_is_ours(tail):
                raise NotOurFile(_not_ours(self.path, self.lines_read + 1))
            self.torn_bytes = _cut_torn_tail(self.path)

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
            if row["key"] in self.status:
                self.superseded += 1
            self.status[row["key"]] = row.get("status", "")

    def close(self) -> None:
        """Close the file; compact it first when a key has more than one line (a retried term)."""
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
                if self.superseded:
                    compact(self.path)
                    self.superseded = 0
        finally:
            self._lock.release()


def compact(path: str | os.PathLike[str]) -> int:
    """Rewrite ``path`` with only the last line per key (atomically: temporary file, fsync, rename);
    returns the number of lines dropped. Call it only while holding the file's lock."""
    path = Path(path)
    last: dict[str, int] = {}
    for n, line in _lines(path):
        row = _result_line(line) if line.endswith(b"\n") else None
        if row is not None:
            last[row["key"]] = n
    tmp = path.with_name(f".{path.name}.compact-{os.getpid()}")
    dropped = 0
    try:
        with open(tmp, "wb") as out:
            for n, line in _lines(path):
                row = _result_line(line) if line.endswith(b"\n") else None
                if row is not None and last[row["key"]] != n:
                    dropped += 1
                    continue
                out.write(line)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return dropped


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

"""Append-only JSONL results that survive a crash and make a rerun resume where the last one stopped.

One line per finished term, written with a single ``write`` and flushed at once, so a SIGKILL loses at most
the terms still in flight plus, possibly, a torn last line; that line is cut off when the file is opened
again. A retried term gets a newer line while the batch runs; when the log is closed, a file with more than
one line for a key is compacted (rewritten to a temporary file, then renamed over the old one, so a reader
sees the old file or the new one, never half of each) and holds exactly one line per term. A reader of a
file left uncompacted by a kill still sees one row per key: :func:`iter_results` and :func:`read_results`
both keep the last line. On resume only the keys and their last status are kept in memory, so a file of a
million terms costs tens of megabytes, not its size.

A file is only repaired or appended to when it is ours: every complete line a result object carrying the
marker ``"@voorbeelden": "batch-result"`` (a name no call record, no request and no field of any dataclass
can have, so a ``--records`` file, which also has ``key`` and ``status``, is never taken for results), a torn
tail that starts like one. Anything else (notes, the input, call records) is refused with a message, so
``--out`` pointed at the wrong file never loses a byte of it. A line longer than :data:`MAX_LINE_BYTES` is
not ours either: reading never holds more than that much of one line (``/dev/zero`` has no line end). A
sidecar lock (:class:`~voorbeelden.batch.filelock.FileLock`) on the real file (symbolic links resolved)
keeps a second batch off a file that one is writing, whatever path names it.

An output that is not a regular file (a pipe, ``/dev/stdout``, a terminal, ``/dev/null``) is written
without being read back, locked or compacted: reading a pipe one is about to write hangs, and there is
nothing to resume from. Writing is one ``os.write`` loop per line; when it fails (a full disk) the file is
cut back to its last whole line and :class:`OutputWriteError` says what happened.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voorbeelden.batch.filelock import FileLock, LockHeld
from voorbeelden.outpaths import OutputPathError, check_file_target, same_target
from voorbeelden.types import Request

__all__ = [
    "MARK",
    "MAX_LINE_BYTES",
    "NotOurFile",
    "OutputError",
    "OutputLocked",
    "OutputLog",
    "OutputWriteError",
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


MARK = ("@voorbeelden", "batch-result")  # on every result line; no call record can carry this name
MAX_LINE_BYTES = 16 * 1024 * 1024  # longer input or output lines are refused, never read whole


class OutputError(ValueError):
    """The results file cannot be used (a directory, not writable, not ours); raised before any work."""


class OutputWriteError(OSError):
    """A result line could not be written (a full disk, a quota, an I/O error). The file holds every line
    written before, whole: the torn part of this one was cut off (for a regular file)."""


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
    """The row if ``line`` (with its newline) is one of ours (it carries :data:`MARK`), else None."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if (
        isinstance(row, dict)
        and row.get(MARK[0]) == MARK[1]
        and isinstance(row.get("key"), str)
        and isinstance(row.get("status"), str)
    ):
        return row
    return None


def is_regular(path: str | os.PathLike[str]) -> bool:
    """A regular file, or nothing there yet (it will be created as one); False for pipes and devices."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return True  # let the open say what is wrong


def _torn_tail_is_ours(tail: bytes) -> bool:
    """A line cut short by a kill starts like our lines do, or is a prefix of that start."""
    stripped = tail.lstrip()
    return bool(_HEAD.match(tail)) or (len(stripped) < len(_HEAD_TEXT) and _HEAD_TEXT.startswith(stripped))


def bounded_lines(f: Any, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary file, each at most ``limit + 1`` bytes: a longer line is returned cut at that
    length without its newline, and the rest of it is skipped (never held in memory)."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip to the end of the over-long line in bounded pieces
                rest = f.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        yield from enumerate(bounded_lines(f), start=1)


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
    if p.exists() and is_regular(p):  # a pipe or device is written only, never read (see the module)
        with open(p, "rb") as f:
            first = f.readline(MAX_LINE_BYTES + 1)
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
        if is_regular(records) and _first_is_result(records):
            raise OutputError(
                f"--records {records} is a results file of voorbeelden batch; call records appended to it "
                "would spoil it. Give --records a new file (or an earlier --records file)"
            )


def _first_is_result(path: str | os.PathLike[str]) -> bool:
    try:
        with open(path, "rb") as f:
            return _result_line(f.readline(MAX_LINE_BYTES + 1)) is not None
    except OSError:
        return False


def _not_ours(path: Path, n: int) -> str:
    return (
        f"--out {path} is not a results file of voorbeelden batch (line {n} is not a result line: no "
        f'"{MARK[0]}": "{MARK[1]}" marker, or longer than {MAX_LINE_BYTES >> 20} MiB; a --records file is '
        "not one either); refusing to append to it or repair it. Choose another --out (a new file is "
        "created) or move that file away"
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
        self.compact_error: str | None = None  # why the compaction on close failed (the file stays valid)
        self._fd: int | None = None
        # The real file (symbolic links resolved): every path to it shares one lock, and a compaction
        # replaces the file the link points to, not the link.
        self.regular = is_regular(self.path)
        self.real = self.path.resolve() if self.regular else self.path  # /dev/stdout resolves to "pipe:[n]"
        self._lock = FileLock(self.real)

    def open(self) -> OutputLog:
        check_output(self.path)
        if not self.regular:  # a pipe or device: written only (see the module)
            try:
                self._fd = os.open(self.real, os.O_WRONLY | os.O_APPEND)
            except OSError as exc:
                raise OutputError(f"--out {self.path}: cannot open it ({exc.strerror or exc})") from exc
            return self
        try:  # the permission check can pass where the file system still refuses (/sys, read-only, quota)
            self.real.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except LockHeld as err:
            raise OutputLocked(self.path, err.holder) from None
        except OSError as exc:
            raise OutputError(
                f"--out {self.path}: cannot write it or its lock file ({exc.strerror or exc})"
            ) from exc
        try:
            if self.real.exists():
                self._read_existing()
            self._fd = os.open(self.real, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            self._lock.release()
            raise OutputError(f"--out {self.path}: cannot open it ({exc.strerror or exc})") from exc
        except BaseException:
            self._lock.release()
            raise
        return self

    def _read_existing(self) -> None:
        tail = b""
        for n, line in _lines(self.real):
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
            if len(tail) > MAX_LINE_BYTES or not _torn_tail_is_ours(tail):
                raise NotOurFile(_not_ours(self.path, self.lines_read + 1))
            self.torn_bytes = _cut_torn_tail(self.real)

    def __enter__(self) -> OutputLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def should_run(self, key: str, *, retry_failed: bool = False) -> bool:
        """Not finished before, or failed (or partial) before and ``retry_failed``; invalid lines are never
        rerun as is."""
        previous = self.status.get(key)
        return previous is None or (retry_failed and previous in RERUN_STATUSES)

    def append(self, row: dict[str, Any]) -> None:
        """Write one result line (marked as ours) with one ``os.write`` loop; on failure cut the file back to
        its last whole line and raise :class:`OutputWriteError`."""
        if self._fd is None:
            raise RuntimeError("OutputLog is not open")
        marked = {"key": row.get("key"), MARK[0]: MARK[1], **row} if "key" in row else row
        line = (json.dumps(marked, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
        _write_whole(self._fd, line, self.regular, self.path)
        if self.fsync and self.regular:
            os.fsync(self._fd)
        if "key" in row:
            if row["key"] in self.status:
                self.superseded += 1
            self.status[row["key"]] = row.get("status", "")

    def close(self) -> None:
        """Close the file; compact it first when a key has more than one line (a retried term)."""
        try:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                if self.superseded and self.regular:
                    try:
                        compact(self.real)
                    except OSError as exc:  # a full disk: the file stays as it is, readers take the last line
                        self.compact_error = f"{exc.strerror or exc}"
                    self.superseded = 0
        finally:
            self._lock.release()


RERUN_STATUSES = frozenset({"failed", "partial"})


def _write_whole(fd: int, data: bytes, regular: bool, path: Path) -> None:
    """All of ``data`` or nothing: a failed write (ENOSPC, EDQUOT, EIO) is cut back off a regular file."""
    start = os.fstat(fd).st_size if regular else 0
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as exc:
        if regular:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
        what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
        raise OutputWriteError(exc.errno or 0, f"--out {path}: cannot write a result line: {what}") from exc


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

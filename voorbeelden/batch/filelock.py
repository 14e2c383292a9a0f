"""An exclusive, non-blocking lock on a file, held through a sidecar ``<file>.lock`` that names its holder.

Two batches appending to one results file would each run every term (double the calls) and interleave their
lines. ``fcntl.flock`` on a sidecar (not on the results file itself, which a compaction replaces by rename)
makes the second run stop at once and say which process holds the file. The kernel drops the lock when the
holder dies, even by SIGKILL, so a crashed run never blocks the next one; the stale sidecar is simply taken
over. The sidecar is removed on release; a run that opened it just before the removal notices that the name
now points elsewhere (or nowhere) and tries again, so at most one holder exists at any time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; run without a lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileLock", "LockHeld"]


class LockHeld(RuntimeError):
    """Another process holds the lock; ``holder`` is what it wrote into the sidecar (pid, host, time)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder
        super().__init__(f"{path} is locked by {holder or 'another process'}")


class FileLock:
    """``with FileLock(Path("out.jsonl")):`` holds ``out.jsonl.lock`` exclusively or raises :class:`LockHeld`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(target.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FileLock:
        if fcntl is None or self._fd is not None:
            return self
        for _ in range(100):  # each round loses only to a release that removed the sidecar meanwhile
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise LockHeld(self.target, holder) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(
                fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode()
            )
            self._fd = fd
            return self
        raise LockHeld(self.target, "a process that keeps replacing the lock file")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still locked: a waiter that opened it retries on the new name
        os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""

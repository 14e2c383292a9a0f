"""Reading a batch's input: one request per line, each line judged on its own.

A JSONL file written by hand or exported from a spreadsheet can hold a stray Latin-1 byte, a broken line or
a row without its term. None of those may stop the batch or cost the other lines their results: the file is
read as bytes and every line is decoded, parsed and validated by itself, so a bad line becomes an error
record with its line number and the batch goes on.

Input is read once, lazily. A pipe or FIFO (``/dev/stdin``) cannot be read twice, so lines are counted up
front (for the progress bar) only for regular files and sized collections.

No line is read whole when it is longer than :data:`~voorbeelden.batch.output.MAX_LINE_BYTES` (16 MiB; a
request is a few kilobytes): such a line becomes an invalid record naming it, and reading stops there,
since the input is then not JSONL at all (``/dev/zero`` has no line end to skip to). The lines before it
are generated; the exit code says partial.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voorbeelden.batch.output import MAX_LINE_BYTES, bounded_lines, line_key, request_key
from voorbeelden.types import InvalidRequest, Request

__all__ = [
    "BadLine",
    "InputError",
    "Item",
    "RequestSource",
    "check_source",
    "count_lines",
    "iter_items",
    "parse_line",
]

RequestSource = str | os.PathLike[str] | Iterable[Request | Mapping[str, Any] | str | bytes]
RAW_KEEP = 500  # characters of a bad line kept in its error record, enough to find and fix it


class InputError(ValueError):
    """The input as a whole cannot be read (missing, a directory, unreadable); raised before any work."""


@dataclass(frozen=True)
class Line:
    """What every input line has: its number in the input (1-based) and its key (duplicates, resume)."""

    n: int
    key: str


@dataclass(frozen=True)
class Item(Line):
    """A valid input line, keyed by its request (the same request written differently is one key)."""

    request: Request


@dataclass(frozen=True)
class BadLine(Line):
    """An input line that is not a request: the reason, and the start of the line (to find and fix it)."""

    error: str
    raw: str

    @classmethod
    def of(cls, n: int, raw: str, error: str) -> BadLine:
        """Keyed by the whole line (a fixed line is a new key, so it runs on resume); at most RAW_KEEP kept."""
        return cls(n, line_key(raw), f"line {n}: {error}", raw[:RAW_KEEP])


def is_path(source: object) -> bool:
    return isinstance(source, str | os.PathLike)


def check_source(source: RequestSource) -> None:
    """Refuse an input path that cannot be read, with a message (not a traceback mid-batch)."""
    if not is_path(source):
        return
    path = Path(source)  # type: ignore[arg-type]
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_dir():
        raise InputError(f"input {path} is a directory; give a JSONL file with one request per line")
    if not os.access(path, os.R_OK):
        raise InputError(f"input {path} is not readable (permission denied)")


def count_lines(source: RequestSource) -> int | None:
    """Non-blank lines of a regular file, the length of a sized collection, else None (unknown).

    Never reads a pipe, FIFO or character device: that would consume the input before the batch sees it."""
    if is_path(source):
        try:
            if not stat.S_ISREG(os.stat(source).st_mode):  # type: ignore[arg-type]
                return None
            with open(source, "rb") as f:  # type: ignore[arg-type]
                return sum(1 for line in bounded_lines(f) if line.strip())
        except OSError:
            return None
    return len(source) if hasattr(source, "__len__") else None  # type: ignore[arg-type]


class _TooLong:
    """An input line over the bound (only its start was read): the last thing read from the input."""

    def __init__(self, start: bytes) -> None:
        self.start = start


def _numbered(source: RequestSource) -> Iterator[tuple[int, Any]]:
    if is_path(source):
        with open(source, "rb") as f:  # type: ignore[arg-type]
            n = 0
            while line := f.readline(MAX_LINE_BYTES + 1):
                n += 1
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    yield n, _TooLong(line[:RAW_KEEP])
                    return
                yield n, line
        return
    yield from enumerate(source, start=1)  # type: ignore[arg-type]


def iter_items(source: RequestSource) -> Iterator[Item | BadLine]:
    """Every non-blank line of ``source``, numbered as in the file (1-based): an :class:`Item`, or a
    :class:`BadLine` saying why it is not one."""
    for n, value in _numbered(source):
        if isinstance(value, _TooLong):
            raw = value.start.decode("utf-8", "backslashreplace")
            why = f"longer than {MAX_LINE_BYTES >> 20} MiB, not a request; the input is read no further"
            yield BadLine.of(n, raw, why)
            return
        if isinstance(value, bytes | str) and not value.strip():
            continue
        yield parse_line(n, value)


def _decode(data: bytes, *, first: bool) -> tuple[str | None, str]:
    """(text, "") or (None, reason); the first line may start with a UTF-8 byte-order mark."""
    try:
        return data.decode("utf-8-sig" if first else "utf-8"), ""
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 1].hex()
        return None, f"not valid UTF-8 (byte 0x{bad} at byte {err.start + 1}); save the file as UTF-8"


def parse_line(n: int, value: Request | Mapping[str, Any] | str | bytes) -> Item | BadLine:
    """Judge one line: bytes are decoded, text is parsed as JSON, a mapping is validated as a Request."""
    if isinstance(value, bytes):
        text, reason = _decode(value, first=n == 1)
        if text is None:
            return BadLine.of(n, value.decode("utf-8", "backslashreplace").strip(), reason)
        value = text
    if isinstance(value, str):
        raw = value.strip()
        try:
            data = json.loads(raw)
        except RecursionError:
            return BadLine.of(n, raw, "JSON nested too deeply")
        except ValueError as err:
            msg = getattr(err, "msg", str(err))
            col = getattr(err, "colno", None)
            where = f" at column {col}" if col is not None else ""
            return BadLine.of(n, raw, f"not valid JSON ({msg}{where})")
        if not isinstance(data, Mapping):
            return BadLine.of(n, raw, "expected a JSON object with begrip/definitie/context")
        value = data
    try:
        request = Request.coerce(value)
    except InvalidRequest as err:
        raw = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        return BadLine.of(n, raw, f"invalid request: {err}")
    return Item(n, request_key(request), request)

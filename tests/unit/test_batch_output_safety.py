"""What the batch's files survive: a records file offered as results (and the reverse), lines without end,
two paths to one file, a pipe as output, a full disk under --out or --records.

Each test here failed on 487172d: the records file was accepted and compacted, the reads were unbounded, the
lock was per path, a pipe was read back (a hang), a full disk tore a line and raised from every write.
"""

from __future__ import annotations

import errno
import io
import json
import os
import threading
from pathlib import Path

import pytest

from voorbeelden.batch.inputs import iter_items
from voorbeelden.batch.output import (
    MAX_LINE_BYTES,
    NotOurFile,
    OutputError,
    OutputLocked,
    OutputLog,
    OutputWriteError,
    bounded_lines,
    check_output,
    check_targets,
    read_results,
)
from voorbeelden.batch.records import RecordSink


def _records_file(path: Path) -> Path:
    """What ``--records`` writes: ``{"key": ..., **CallRecord}``, which has a ``status`` too."""
    rows = [{"key": f"k{i // 6}", "status": "ok", "part": "synoniemen", "attempt": 1} for i in range(30)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_records_file_is_never_taken_for_results_and_stays_byte_for_byte(tmp_path: Path) -> None:
    rec = _records_file(tmp_path / "rec.jsonl")
    before = rec.read_bytes()
    with pytest.raises(NotOurFile, match="not a results file"):
        check_output(rec)
    with pytest.raises(NotOurFile):
        OutputLog(rec).open()
    assert rec.read_bytes() == before


def test_a_results_file_is_refused_as_records(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with OutputLog(out) as log:
        log.append({"key": "a", "status": "complete"})
    with pytest.raises(OutputError, match=r"--records .* is a results file"):
        check_targets(None, tmp_path / "new.jsonl", out)
    assert read_results(out)["a"]["status"] == "complete"  # the marker is in the line, read back as ours


def test_reading_never_holds_more_than_the_line_bound() -> None:
    long = b"x" * (MAX_LINE_BYTES + 10) + b"\nnext\n"
    lines = list(bounded_lines(io.BytesIO(long)))
    assert len(lines[0]) == MAX_LINE_BYTES + 1 and not lines[0].endswith(b"\n")  # cut, the rest skipped
    assert lines[1] == b"next\n"


def test_an_input_line_without_end_is_an_invalid_record_and_reading_stops(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    with open(source, "wb") as f:
        f.write(b'{"begrip": "a", "definitie": "b"}\n')
        f.write(b"\0" * (MAX_LINE_BYTES + 5))  # /dev/zero in small: no newline, ever
    items = list(iter_items(source))
    assert len(items) == 2 and items[0].request.begrip == "a"  # type: ignore[union-attr]
    assert "line 2: longer than 16 MiB" in items[1].error  # type: ignore[union-attr]
    assert len(items[1].raw) <= 500  # type: ignore[union-attr]


def test_an_output_line_over_the_bound_is_not_ours(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(
        b'{"key":"a","@voorbeelden":"batch-result","status":"complete","x":"' + b"y" * MAX_LINE_BYTES
    )
    with pytest.raises(NotOurFile):
        OutputLog(out).open()


def test_two_paths_to_one_file_share_its_lock(tmp_path: Path) -> None:
    real = tmp_path / "par2.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    with OutputLog(real):
        with pytest.raises(OutputLocked):
            OutputLog(link).open()
    with OutputLog(link) as log:  # a compaction through the link replaces the file, not the link
        log.append({"key": "a", "status": "failed"})
        log.append({"key": "a", "status": "complete"})
    assert link.is_symlink() and list(read_results(real)) == ["a"]
    assert len(real.read_text().splitlines()) == 1


def test_a_pipe_is_written_without_being_read_back(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    try:
        check_output(fifo)  # reading it here would wait for a writer that is us: the old hang
        with OutputLog(fifo) as log:
            log.append({"key": "a", "status": "complete"})
    finally:
        reader.join(10)
    assert not reader.is_alive()
    assert json.loads(got[0])["key"] == "a"
    assert not (tmp_path / "fifo.lock").exists()  # no lock, no compaction: there is no file to protect


def _full_after(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make os.write behave like a disk with ``limit`` bytes left: a short write, then ENOSPC."""
    real_write = os.write
    left = [limit]

    def write(fd: int, data: bytes | memoryview) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_keeps_every_whole_line_and_cuts_the_torn_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    log = OutputLog(out).open()
    log.append({"key": "a", "status": "complete"})
    size = out.stat().st_size
    _full_after(20, monkeypatch)  # the next line gets 20 bytes in, then the disk is full
    with pytest.raises(OutputWriteError, match="the disk is full"):
        log.append({"key": "b", "status": "complete", "parts": {"x": "y" * 100}})
    monkeypatch.undo()
    log.close()
    assert out.stat().st_size == size  # the torn 20 bytes are gone; the first line is whole
    assert list(read_results(out)) == ["a"]


def test_failing_records_never_raise_and_say_why_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voorbeelden.types import CallRecord, Generation, Request

    sink = RecordSink(tmp_path / "rec.jsonl").open()
    gen = Generation(
        request=Request("a", "b"),
        strategy="parallel",
        parts={},
        records=[CallRecord("synoniemen")],
        wall_s=0.0,
    )
    _full_after(10, monkeypatch)  # the first term's records get 10 bytes in, then the disk is full
    sink.write("k", gen)
    sink.write("k2", gen)
    monkeypatch.undo()
    sink.close()
    assert sink.problem is not None and "the disk is full" in sink.problem and sink.terms_lost == 2
    assert (tmp_path / "rec.jsonl").read_bytes() == b""  # the torn 10 bytes were cut off

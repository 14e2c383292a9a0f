"""`voorbeelden batch` against a hostile but fair user: the wrong --out, bad bytes, a pipe, two runs at once,
a broken cache, a retried term. Nothing is lost, nothing is done twice, every refusal is a message.

Issue 14 cases 1, 2, 3, 4, 6 and 8; issue 11 items 4 (the cache knows its source) and 8 (--retry-failed
leaves one line per term).
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import env_without_openai, run_voorbeelden

from voorbeelden.batch import OutputLog, generate_many, iter_results, read_results
from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]


def _rows(n: int, prefix: str = "besluit") -> list[dict[str, object]]:
    return [
        {"begrip": f"{prefix} {i}", "definitie": "Een beslissing van een bestuursorgaan."} for i in range(n)
    ]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    return path


def _env(tmp: Path) -> dict[str, str]:
    env = env_without_openai()
    env["VOORBEELDEN_CACHE_DIR"] = str(tmp / "cache")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli(args: list[str], tmp: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return run_voorbeelden(args, cwd=tmp, env=_env(tmp), **kw)


FAST = ["--time-scale", "0.005", "--sim-profile", "uniform-2s"]


# ---- case 1: --out that is the input ----------------------------------------------------------------------


def test_out_that_is_the_input_is_refused_and_the_input_stays_as_it_was(tmp_path: Path) -> None:
    inp = _jsonl(tmp_path / "ten.jsonl", _rows(10))
    before = inp.read_bytes()
    link = tmp_path / "other-name.jsonl"
    link.symlink_to(inp)
    for out in (inp, link):  # the same name, and another name for the same file (same inode)
        result = _cli(["batch", str(inp), "--out", str(out), *FAST], tmp_path)
        assert result.returncode == 2, result.stderr
        assert "is the input file itself" in result.stderr
        assert "Traceback" not in result.stderr
        assert "embedded simulator" not in result.stderr  # refused before any work
    assert inp.read_bytes() == before
    with pytest.raises(ValueError, match="input file itself"):  # the library refuses it too
        asyncio.run(
            generate_many(inp, out=link, base_url="http://127.0.0.1:9/v1", api_key="x", progress=False)
        )
    assert inp.read_bytes() == before


# ---- case 2: a bad line is an error record with its line number; the batch goes on --------------------------


def test_a_non_utf8_byte_a_broken_line_and_a_missing_begrip_are_records_and_the_rest_runs(
    tmp_path: Path,
) -> None:
    lines = [json.dumps(r).encode() for r in _rows(40, "bytes")]
    lines[20] = b'{"begrip": "caf\xe9", "definitie": "Latin-1, not UTF-8."}'  # line 21
    lines[24] = b'{"begrip": "half'  # line 25
    lines[29] = b'{"definitie": "a row without its term"}'  # line 30
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        summary = asyncio.run(generate_many(inp, out=out, base_url=sim.base_url, api_key="x", progress=False))
        rerun = asyncio.run(generate_many(inp, out=out, base_url=sim.base_url, api_key="x", progress=False))
    assert summary.ok == 37 and summary.invalid == 3 and summary.failed == 0
    rows = list(iter_results(out))
    invalid = {r["line"]: r["error"] for r in rows if r["status"] == "invalid"}
    assert set(invalid) == {21, 25, 30}
    assert "line 21: not valid UTF-8" in invalid[21] and "0xe9" in invalid[21]
    assert "line 25: not valid JSON" in invalid[25]
    assert "begrip is missing" in invalid[30] and "TypeError" not in invalid[30]
    assert len(rows) == 40 and rerun.skipped == 40  # everything recorded once; the rerun does nothing


# ---- case 3: piped input is read once ---------------------------------------------------------------------


def test_piped_input_with_a_progress_bar_on_a_terminal_is_generated(tmp_path: Path) -> None:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in _rows(10, "pipe"))
    out = tmp_path / "out.jsonl"
    master, slave = pty.openpty()  # stderr is a terminal, so the progress bar (and its line count) is on
    proc = subprocess.Popen(
        [sys.executable, "-m", "voorbeelden", "batch", "/dev/stdin", "--out", str(out), *FAST],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc.communicate(input=data, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
        os.close(master)
    stderr = b"".join(seen).decode(errors="replace")
    assert proc.returncode == 0, stderr
    assert "10 terms generated" in stderr, stderr
    assert len(read_results(out)) == 10


def test_lines_are_counted_only_in_regular_files(tmp_path: Path) -> None:
    from voorbeelden.batch.inputs import count_lines

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    assert count_lines(fifo) is None  # returns at once: opening a FIFO to count would block or consume it
    assert time.monotonic() - t0 < 1
    assert count_lines(_jsonl(tmp_path / "r.jsonl", _rows(3))) == 3


# ---- case 4: one batch per output file --------------------------------------------------------------------


def test_a_second_batch_on_the_same_output_says_who_holds_it_and_changes_nothing(tmp_path: Path) -> None:
    inp = _jsonl(tmp_path / "in.jsonl", _rows(5, "lock"))
    out = tmp_path / "out.jsonl"
    with OutputLog(out) as held:  # a first batch, as far as the file can tell
        held.append({"key": "k0", "status": "ok"})
        before = out.read_bytes()
        result = _cli(["batch", str(inp), "--out", str(out), *FAST], tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"pid {os.getpid()}" in result.stderr, result.stderr
        assert "another batch" in result.stderr and "Traceback" not in result.stderr
        assert out.read_bytes() == before
    # released (also by a holder killed with SIGKILL: the kernel drops the lock): the next run proceeds
    result = _cli(["batch", str(inp), "--out", str(out), *FAST], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_results(out)) == 6
    assert not (tmp_path / "out.jsonl.lock").exists()


def test_two_batches_started_together_run_each_term_once(tmp_path: Path) -> None:
    inp = _jsonl(tmp_path / "in.jsonl", _rows(40, "together"))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "voorbeelden", "batch", str(inp), "--out", str(out), "--no-cache"]
    cmd += ["--time-scale", "0.05", "--sim-profile", "uniform-2s", "--no-progress"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    codes = sorted(p.wait(timeout=120) for p in procs)
    errs = [p.stderr.read().decode() for p in procs if p.stderr is not None]
    assert codes == [0, 2], errs
    assert any("being written by another batch" in e for e in errs), errs
    lines = out.read_text().splitlines()
    assert len(lines) == len({json.loads(ln)["key"] for ln in lines}) == 40


# ---- case 6: the cache may never cost a result ------------------------------------------------------------


def test_a_cache_path_that_is_a_file_or_garbage_is_bypassed_with_one_warning(tmp_path: Path) -> None:
    inp = _jsonl(tmp_path / "in.jsonl", _rows(4, "cachefile"))
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("I am a file")
    garbage = tmp_path / "garbage-cache"
    garbage.mkdir()
    (garbage / "cache.db").write_bytes(os.urandom(8192))
    for n, cache_dir in enumerate((a_file, garbage)):
        out = tmp_path / f"out{n}.jsonl"
        result = _cli(["batch", str(inp), "--out", str(out), "--cache-dir", str(cache_dir), *FAST], tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        warnings = [ln for ln in result.stderr.splitlines() if "response cache" in ln]
        assert len(warnings) == 1 and "without the cache" in warnings[0], result.stderr
        assert {r["status"] for r in iter_results(out)} == {"complete"} and len(read_results(out)) == 4
    assert a_file.read_text() == "I am a file"


def _explode() -> None:
    raise pickle.UnpicklingError("a corrupt entry")


class _Unreadable:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_explode, ())


def test_bad_cache_entries_are_misses_and_a_corrupt_database_is_bypassed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import diskcache

    reqs = _rows(10, "corrupt")
    cache_dir = tmp_path / "cache"
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:

        def run(out: str) -> tuple[int, int, dict[str, object]]:
            s = asyncio.run(
                generate_many(
                    reqs,
                    out=tmp_path / out,
                    base_url=sim.base_url,
                    api_key="x",
                    cache=cache_dir,
                    progress=False,
                )
            )
            return s.ok, s.failed, s.gate

        assert run("a.jsonl")[:2] == (10, 0)
        # entries that cannot be read back, or read back as something else than a complete answer
        with diskcache.Cache(str(cache_dir)) as dc:
            keys = list(dc.iterkeys())
            assert len(keys) == 60
            for i, key in enumerate(keys):
                dc.set(key, _Unreadable() if i % 2 else (200, "application/json", b'{"choices": [}'))
        ok, failed, gate = run("b.jsonl")
        assert (ok, failed) == (10, 0)
        assert gate["cache_hits"] == 0 and gate["sent"] == 60
        # flipped bytes all over the database file
        db = cache_dir / "cache.db"
        data = bytearray(db.read_bytes())
        for i in range(4096, len(data), 97):
            data[i] ^= 0xFF
        db.write_bytes(bytes(data))
        with caplog.at_level("WARNING", logger="voorbeelden.batch.cache"):
            ok, failed, gate = run("c.jsonl")
        assert (ok, failed) == (10, 0)
        assert len([r for r in caplog.records if "response cache" in r.getMessage()]) == 1


# ---- issue 11 item 4: the cache knows its source ----------------------------------------------------------


def test_answers_cached_from_one_endpoint_are_never_served_for_another(tmp_path: Path) -> None:
    reqs = _rows(5, "source")

    def run(url: str, out: str) -> dict[str, object]:
        s = asyncio.run(
            generate_many(
                reqs, out=tmp_path / out, base_url=url, api_key="x", cache=tmp_path / "c", progress=False
            )
        )
        assert s.ok == 5
        return s.gate

    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        assert run(sim.base_url, "sim.jsonl")["sent"] == 30
        with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as other:
            gate = run(other.base_url, "other.jsonl")  # another endpoint (host:port), same requests
            assert gate["cache_hits"] == 0 and gate["sent"] == 30
            assert other.counters()["requests_total"] == 30
        gate = run(sim.base_url, "again.jsonl")  # the first endpoint again: its own answers come back
        assert gate["cache_hits"] == 30 and gate["sent"] == 0


# ---- case 8: a file that is not ours is never repaired ----------------------------------------------------


def test_out_that_is_not_a_results_file_is_refused_and_not_truncated(tmp_path: Path) -> None:
    inp = _jsonl(tmp_path / "ten.jsonl", _rows(3, "notes"))
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"notes 1\nline 2 no newline")
    ours_then_foreign = tmp_path / "mixed.jsonl"
    ours_then_foreign.write_bytes(
        b'{"key":"a","@voorbeelden":"batch-result","status":"ok"}\n{"begrip": "besluit"}\n{"key":"b","sta'
    )
    for path in (notes, ours_then_foreign):
        before = path.read_bytes()
        result = _cli(["batch", str(inp), "--out", str(path), *FAST], tmp_path)
        assert result.returncode == 2, result.stderr
        assert "not a results file of voorbeelden batch" in result.stderr
        assert "Traceback" not in result.stderr
        assert path.read_bytes() == before


def test_a_torn_line_of_our_own_is_still_cut_and_said_on_stderr(tmp_path: Path) -> None:
    inp = _jsonl(tmp_path / "in.jsonl", _rows(2, "torn"))
    out = tmp_path / "out.jsonl"
    out.write_text(
        '{"key":"old","@voorbeelden":"batch-result","status":"ok"}\n{"key":"x","@voorbeelden":"batch-result","status":"o'
    )
    result = _cli(["batch", str(inp), "--out", str(out), *FAST], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "torn last line" in result.stderr
    assert len(read_results(out)) == 3


# ---- issue 11 item 8: --retry-failed leaves one line per term ----------------------------------------------


def test_retry_failed_leaves_exactly_one_line_per_term(tmp_path: Path) -> None:
    reqs = _rows(6, "retry")
    out = tmp_path / "out.jsonl"
    cfg = SimConfig(profile="uniform-2s", time_scale=0.005, schedule=("synoniemen=500",))
    with running_simulator(cfg) as sim:

        def run(retry: bool) -> object:
            return asyncio.run(
                generate_many(
                    reqs,
                    out=out,
                    base_url=sim.base_url,
                    api_key="x",
                    retry_failed=retry,
                    max_retries=0,
                    progress=False,
                )
            )

        first = run(False)
        assert first.failed == 6  # type: ignore[attr-defined]
        sim.configure(schedule=())
        second = run(True)
        assert second.ok == 6  # type: ignore[attr-defined]
    raw = out.read_text().splitlines()
    assert len(raw) == 6
    assert {json.loads(line)["status"] for line in raw} == {"complete"}
    assert [r["key"] for r in iter_results(out)] == list(read_results(out))  # every reader agrees


def test_readers_agree_on_a_file_left_uncompacted_by_a_kill(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(
        '{"key":"a","@voorbeelden":"batch-result","status":"failed"}\n{"key":"b","@voorbeelden":"batch-result","status":"ok"}\n{"key":"a","@voorbeelden":"batch-result","status":"ok"}\n'
    )
    assert [(r["key"], r["status"]) for r in iter_results(out)] == [("b", "ok"), ("a", "ok")]
    assert {k: r["status"] for k, r in read_results(out).items()} == {"a": "ok", "b": "ok"}
    with OutputLog(out):  # the next run compacts it
        pass
    assert out.read_text().count("\n") == 2


def test_the_library_refuses_records_into_the_input_or_the_results_before_any_call(tmp_path: Path) -> None:
    from voorbeelden.batch.output import OutputError

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"begrip": "besluit"}) + "\n")
    out = tmp_path / "out.jsonl"
    for records, says in ((inp, "same file as the input"), (out, "same file as --out")):
        with pytest.raises(
            OutputError, match=says
        ):  # nothing listens on port 9: a call would fail differently
            asyncio.run(
                generate_many(
                    inp,
                    out=out,
                    records=records,
                    base_url="http://127.0.0.1:9/v1",
                    api_key="x",
                    progress=False,
                )
            )
    assert inp.read_text() == json.dumps({"begrip": "besluit"}) + "\n" and not out.exists()

"""Batches against the simulator: the limit holds at the server, the cache answers reruns, bad lines are
recorded and skipped, and a batch killed with SIGKILL resumes without losing or repeating a term."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import env_without_openai

from voorbeelden.batch import generate_many, iter_results
from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]


def _requests(n: int, prefix: str = "besluit") -> list[dict[str, object]]:
    return [
        {
            "begrip": f"{prefix} {i}",
            "definitie": "Een schriftelijke beslissing van een bestuursorgaan.",
            "context": {"juridisch": ["Bestuursrecht"]},
        }
        for i in range(n)
    ]


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def test_the_batch_spends_the_servers_bucket_and_its_refill_without_a_429() -> None:
    """The server is the authority on its limit: every request passes its bucket (no 429), and the limit is
    used, not just respected. (Counting the server's arrival stamps in sliding windows measured the wrong
    thing: the server's limit is a continuously refilling bucket, and a loaded server stamps arrivals late,
    so two requests sent a window apart can be stamped closer; that made the old check flaky under load.)"""
    ts, rpm = 0.02, 60  # a bucket of 60 that refills 60 per 1.2 s (50/s); 25 terms = 150 calls
    # A separate process, so the server judges arrivals on time instead of waiting for the client's GIL.
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=ts, rpm=rpm), process=True) as sim:
        summary = asyncio.run(
            generate_many(
                _requests(25), base_url=sim.base_url, api_key="x", rpm=rpm, period_s=60 * ts, progress=False
            )
        )
        counters = sim.counters()
    accepted = sorted(counters["accepted_times"])
    assert summary.ok == 25 and summary.parts_lost == 0
    assert len(accepted) == 150
    assert counters["sent_429"] == 0, "the client sent faster than the server's bucket admits"
    # The bucket (60) at once, then the refill: the last of 150 is admissible after 90 / 50 = 1.8 s. A client
    # counting its own sliding window would need 2.4 s and more (60 per 1.2 s from its first send).
    span = accepted[-1] - accepted[0]
    assert span < 1.8 * 1.2, f"150 calls took {span:.2f} s at the server; the bucket allows them in 1.8 s"
    # Without a limiter (and deaf to the headers) the same calls do hit the limit, so the 0 above can fail.
    from voorbeelden.batch import AdaptiveConcurrency, GatedTransport

    deaf = GatedTransport(concurrency=AdaptiveConcurrency(initial=16, max_limit=64), learn_from_headers=False)
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=ts, rpm=rpm), process=True) as sim:
        asyncio.run(
            generate_many(
                _requests(25, "zonder"), base_url=sim.base_url, api_key="x", transport=deaf, progress=False
            )
        )
        assert sim.counters()["sent_429"] > 0


@pytest.mark.parametrize("told", [30.0, 600.0, None], ids=["told-30", "told-600", "untold"])
def test_told_right_wrong_or_nothing_the_batch_follows_the_headers(told: float | None) -> None:
    ts, rpm = 0.01, 30  # 30 at once, then 50 per second; 20 terms = 120 calls need 1.8 s at the server
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=ts, rpm=rpm), process=True) as sim:
        summary = asyncio.run(
            generate_many(
                _requests(20, "gezegd"),
                base_url=sim.base_url,
                api_key="x",
                rpm=told,
                period_s=60 * ts,
                progress=False,
            )
        )
        counters = sim.counters()
    accepted = sorted(counters["accepted_times"])
    assert summary.parts_lost == 0 and len(accepted) == 120
    assert counters["sent_429"] <= 3  # told 20x too much costs at most a few 429s before the first answer
    share = len(accepted) / (rpm + rpm / (60 * ts) * (accepted[-1] - accepted[0]))
    assert share >= 0.85, f"{share:.0%} of what the server would have accepted"
    assert summary.gate["believed_requests"]["limit"] == rpm


def test_a_second_run_is_answered_from_the_cache_without_requests(tmp_path: Path) -> None:
    reqs = _requests(5, "cachebegrip")
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as sim:
        first = asyncio.run(
            generate_many(
                reqs,
                out=tmp_path / "a.jsonl",
                base_url=sim.base_url,
                api_key="x",
                cache=tmp_path / "cache",
                progress=False,
            )
        )
        assert sim.counters()["requests_total"] == 30
        sim.reset_counters()
        second = asyncio.run(
            generate_many(
                reqs,
                out=tmp_path / "b.jsonl",
                records=tmp_path / "b.records.jsonl",
                base_url=sim.base_url,
                api_key="x",
                cache=tmp_path / "cache",
                progress=False,
            )
        )
        assert sim.counters()["requests_total"] == 0
    assert first.ok == second.ok == 5
    assert second.gate["cache_hits"] == 30 and second.gate["sent"] == 0
    a = {r["key"]: r["parts"] for r in iter_results(tmp_path / "a.jsonl")}
    b = {r["key"]: r["parts"] for r in iter_results(tmp_path / "b.jsonl")}
    assert a == b
    # the hits are visible per term and in the call records (asked for with records=), not only in the gate
    assert all(r["timing"]["cached"] == 6 for r in iter_results(tmp_path / "b.jsonl"))
    assert not any(r["timing"]["cached"] for r in iter_results(tmp_path / "a.jsonl"))
    calls = [json.loads(line) for line in (tmp_path / "b.records.jsonl").read_text().splitlines()]
    assert len(calls) == 30 and all(c["cached"] for c in calls) and {c["key"] for c in calls} == set(b)


def test_bad_lines_get_a_clear_record_and_the_batch_goes_on(tmp_path: Path) -> None:
    good = _requests(3, "goed")
    path = _write_jsonl(
        tmp_path / "in.jsonl",
        [
            good[0],
            "{not json",
            {"begrip": ""},
            good[1],
            {"begrip": "x", "context": {"foo": ["a"]}},
            "[1, 2]",
            good[2],
        ],
    )
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as sim:
        summary = asyncio.run(
            generate_many(
                path, out=tmp_path / "out.jsonl", base_url=sim.base_url, api_key="x", progress=False
            )
        )
        rerun = asyncio.run(
            generate_many(
                path, out=tmp_path / "out.jsonl", base_url=sim.base_url, api_key="x", progress=False
            )
        )
    rows = list(iter_results(tmp_path / "out.jsonl"))
    invalid = {r["line"]: r["error"] for r in rows if r["status"] == "invalid"}
    assert summary.ok == 3 and summary.invalid == 4
    assert set(invalid) == {2, 3, 5, 6}
    assert "not valid JSON" in invalid[2]
    assert "begrip is empty" in invalid[3]
    assert "context key 'foo'" in invalid[5]
    assert "JSON object" in invalid[6]
    assert rerun.skipped == 7 and len(rows) == 7  # nothing twice, not even the error records


def test_a_batch_killed_with_sigkill_resumes_with_every_term_exactly_once(tmp_path: Path) -> None:
    n = 40
    inp = _write_jsonl(tmp_path / "in.jsonl", _requests(n, "kill"))
    out = tmp_path / "out.jsonl"
    env = env_without_openai()
    env["VOORBEELDEN_CACHE_DIR"] = str(tmp_path / "cache")
    # slow enough (time_scale 0.2: calls of ~0.4 s, 2 terms at a time) that the kill lands mid-run
    cmd = [
        sys.executable,
        "-m",
        "voorbeelden",
        "batch",
        str(inp),
        "--out",
        str(out),
        "--time-scale",
        "0.2",
        "--sim-profile",
        "uniform-2s",
        "--max-in-flight",
        "12",
        "--fixed",
        "--no-cache",
        "--json",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count("\n") >= 4:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the batch wrote nothing in 30 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = out.read_text().count("\n")
    assert 4 <= done_before < n, "the kill should land mid-run"
    # a torn last line as a kill during a write leaves it
    with open(out, "a", encoding="utf-8") as f:
        f.write('{"key": "torn", "status": "o')
    fast = [c if c != "0.2" else "0.01" for c in cmd]
    result = subprocess.run(fast, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["skipped"] == done_before
    assert summary["torn_bytes_cut"] > 0
    keys = [r["key"] for r in iter_results(out)]
    assert len(keys) == len(set(keys)) == n
    assert "embedded simulator" in result.stderr


def test_a_streamed_call_passes_the_gate_and_gives_its_slot_back_when_read() -> None:
    from voorbeelden.backend import make_client
    from voorbeelden.batch import AdaptiveConcurrency, GatedTransport

    async def run(url: str) -> tuple[str, int, int]:
        gate = GatedTransport(concurrency=AdaptiveConcurrency(initial=2, max_limit=2))
        client = make_client(url, "x", transport=gate)
        try:
            stream = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "Geef precies 5 synoniemen voor besluit."}],
                stream=True,
            )
            held = gate.concurrency.in_flight if gate.concurrency else -1
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return text, held, gate.concurrency.in_flight if gate.concurrency else -1
        finally:
            await client.close()

    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as sim:
        text, held, after = asyncio.run(run(sim.base_url))
    assert text.strip()
    assert held == 1 and after == 0


def test_a_long_batch_returns_freed_heap_memory_every_so_many_terms(monkeypatch: pytest.MonkeyPatch) -> None:
    import voorbeelden.batch.runner as runner

    calls: list[int] = []
    monkeypatch.setattr(runner, "TRIM_EVERY", 2)
    monkeypatch.setattr(runner, "heap_trimmer", lambda: lambda: calls.append(1))
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as sim:
        summary = asyncio.run(
            generate_many(_requests(5, "trim"), base_url=sim.base_url, api_key="x", progress=False)
        )
    assert summary.ok == 5 and len(calls) == 2  # after the 2nd and the 4th finished term

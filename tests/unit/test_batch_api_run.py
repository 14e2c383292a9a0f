"""The Batch API run against the simulator, in process: every term exactly once in --out, also after the run
is cut off while polling; failed lines in follow-up batches or online; the same parts as an online call."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from voorbeelden.batch.output import request_key
from voorbeelden.batch.provider.cli import configure_sim_batches
from voorbeelden.batch.provider.lines import custom_id
from voorbeelden.batch.provider.run import BatchApiSettings, run_batch_api
from voorbeelden.batch.provider.state import downloads_dir, state_path
from voorbeelden.caller import Call, Caller, RunState
from voorbeelden.config import GeneratorConfig
from voorbeelden.sim import SimConfig, SimHandle, running_simulator
from voorbeelden.types import ALL_PARTS, Request

SCALE = 0.002


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_simulator(SimConfig(time_scale=SCALE)) as handle:
        yield handle


@pytest.fixture
def batch_sim(sim: SimHandle) -> SimHandle:
    configure_sim_batches(sim.base_url, validate_s=1.0, complete_s=20.0, finalize_s=1.0, line_error_rate=0.0)
    return sim


def _input(tmp_path: Path, n: int, begrip: str = "vergunning") -> Path:
    path = tmp_path / "in.jsonl"
    lines = (json.dumps({"begrip": f"{begrip} {i}", "definitie": "toestemming"}) for i in range(n))
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _settings(tmp_path: Path, sim: SimHandle, **kw: Any) -> BatchApiSettings:
    base = {
        "out": tmp_path / "out.jsonl",
        "host": sim.base_url,
        "poll_s": 0.01,
        "progress": False,
        "max_lines": 24,
    }
    return BatchApiSettings(**{**base, **kw})


def _run(source: Path, sim: SimHandle, settings: BatchApiSettings) -> Any:
    async def go() -> Any:
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-sim", max_retries=2)
        try:
            return await run_batch_api(source, client, settings)
        finally:
            await client.close()

    return asyncio.run(go())


def _all_created(state: Path) -> bool:
    """Every batch the run planned exists at the provider (its id is in the state file)."""
    if not state.exists():
        return False
    entries = json.loads(state.read_text())["entries"]
    return len(entries) == 2 and all(e["batch_id"] for e in entries)


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.read_text().splitlines()]


def test_every_term_is_written_once_through_split_batch_files(tmp_path: Path, batch_sim: SimHandle) -> None:
    src = _input(tmp_path, 10)
    summary = _run(src, batch_sim, _settings(tmp_path, batch_sim))
    rows = _rows(tmp_path / "out.jsonl")
    assert Counter(r["begrip"] for r in rows) == Counter(f"vergunning {i}" for i in range(10))
    assert all(r["status"] == "complete" and len(r["parts"]) == 6 and not r["errors"] for r in rows)
    assert summary.batches_created == 3 and summary.lines_sent == 60  # 24-line files: 4 + 4 + 2 terms
    assert rows[0]["timing"]["calls"] == 6 and rows[0]["timing"]["tokens_out"] > 0
    assert not downloads_dir(tmp_path / "out.jsonl").exists()  # nothing left to resume: downloads removed
    again = _run(src, batch_sim, _settings(tmp_path, batch_sim))
    assert again.skipped == 10 and again.lines_sent == 0 and len(_rows(tmp_path / "out.jsonl")) == 10


def test_a_run_cut_off_while_polling_resumes_without_sending_a_line_twice(
    tmp_path: Path, batch_sim: SimHandle
) -> None:
    configure_sim_batches(batch_sim.base_url, complete_s=1500.0)  # 3 s in progress
    src = _input(tmp_path, 8)
    settings = _settings(tmp_path, batch_sim)

    async def cut_off() -> None:
        client = openai.AsyncOpenAI(base_url=batch_sim.base_url, api_key="sk-sim", max_retries=2)
        try:
            task = asyncio.create_task(run_batch_api(src, client, settings))
            while not _all_created(state_path(settings.out)):  # noqa: ASYNC110 (a file another task writes)
                await asyncio.sleep(0.01)
            task.cancel()  # what Ctrl-C does to the run: the batches keep running
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await client.close()

    asyncio.run(cut_off())
    assert not (settings.out).exists() or not settings.out.read_text()
    first = json.loads(state_path(settings.out).read_text())["entries"]
    summary = _run(src, batch_sim, settings)
    entries = json.loads(state_path(settings.out).read_text())["entries"]
    sent = Counter(cid for e in entries for cid in e["custom_ids"])
    assert len(entries) == len(first) and summary.batches_created == 0  # resumed polling, created nothing
    assert set(sent.values()) == {1} and len(sent) == 48
    assert Counter(r["begrip"] for r in _rows(settings.out)) == Counter(f"vergunning {i}" for i in range(8))


def test_failed_lines_go_into_follow_up_batches(tmp_path: Path, batch_sim: SimHandle) -> None:
    configure_sim_batches(batch_sim.base_url, line_error_rate=0.3)
    summary = _run(_input(tmp_path, 6), batch_sim, _settings(tmp_path, batch_sim, max_rounds=4))
    rows = _rows(tmp_path / "out.jsonl")
    assert summary.follow_up_batches >= 1 and summary.lines_sent > 36
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6
    retried = [r for r in rows if r["timing"]["retries"]]
    assert retried  # the follow-up answers are on the record as later attempts


def test_with_retry_online_failed_lines_are_sent_online_at_once(tmp_path: Path, batch_sim: SimHandle) -> None:
    configure_sim_batches(batch_sim.base_url, line_error_rate=0.3)
    summary = _run(_input(tmp_path, 6), batch_sim, _settings(tmp_path, batch_sim, retry_online=True))
    assert summary.follow_up_batches == 0 and summary.lines_online > 0
    rows = _rows(tmp_path / "out.jsonl")
    assert len(rows) == 6 and all(r["status"] == "complete" for r in rows)


def test_a_batch_line_gets_the_same_parts_as_the_online_call_with_the_same_draw(
    tmp_path: Path, batch_sim: SimHandle
) -> None:
    src = _input(tmp_path, 1, "gelijkwaardigheid")  # a term no other test sends: its lines' first draws
    _run(src, batch_sim, _settings(tmp_path, batch_sim))
    row = _rows(tmp_path / "out.jsonl")[0]
    request = Request("gelijkwaardigheid 0", "toestemming")
    key = request_key(request)
    cfg = GeneratorConfig()

    async def online() -> dict[str, Any]:
        client = openai.AsyncOpenAI(base_url=batch_sim.base_url, api_key="sk-sim", max_retries=0)
        try:
            parts = {}
            for part in ALL_PARTS:  # the simulator keys a batch line's draws by its custom_id
                state = RunState(sim_key=custom_id(key, part), simulator=True)
                caller = Caller(client, state, retry=cfg.retry, call_timeout_s=cfg.call_timeout_s)
                parts[part.value] = (
                    await caller.call_part(Call.for_part(request, part, cfg.settings(part)))
                ).value
            return parts
        finally:
            await client.close()

    assert row["key"] == key and row["parts"] == asyncio.run(online())

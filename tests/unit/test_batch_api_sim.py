"""The simulator's Files and Batch API, driven by the real openai SDK over HTTP: the lifecycle, the output and
error files in OpenAI's line format, expiry, cancellation, injected line errors and validation failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from voorbeelden.batch.provider.cli import configure_sim_batches
from voorbeelden.batch.provider.lines import dumps, request_line
from voorbeelden.config import GeneratorConfig
from voorbeelden.sim import SimConfig, SimHandle, running_simulator
from voorbeelden.types import ALL_PARTS, Request

FAST = {"validate_s": 1.0, "complete_s": 20.0, "finalize_s": 1.0, "cancel_s": 1.0, "window_s": 86_400.0}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_simulator(SimConfig(time_scale=0.002)) as handle:  # a "20 s" batch takes 40 ms
        yield handle


@pytest.fixture
def batch_sim(sim: SimHandle) -> SimHandle:
    configure_sim_batches(sim.base_url, line_error_rate=0.0, **FAST)
    return sim


def _lines(n_terms: int) -> bytes:
    cfg = GeneratorConfig()
    out = b""
    for i in range(n_terms):
        req = Request(f"vergunning {i}", "een toestemming van de overheid")
        out += b"".join(dumps(request_line(f"k{i}", req, part, cfg)) for part in ALL_PARTS)
    return out


async def _run(base_url: str, data: bytes, cancel: bool = False) -> tuple[Any, list[str], str, str]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-sim", max_retries=0)
    try:
        f = await client.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"t": "x"}
        )
        seen = [batch.status]
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            await asyncio.sleep(0.005)
            if cancel and batch.status == "in_progress" and batch.request_counts.completed > 0:
                batch = await client.batches.cancel(batch.id)  # some lines done, most not
                cancel = False
            else:
                batch = await client.batches.retrieve(batch.id)
            if batch.status != seen[-1]:
                seen.append(batch.status)
        out = (await client.files.content(batch.output_file_id)).text if batch.output_file_id else ""
        err = (await client.files.content(batch.error_file_id)).text if batch.error_file_id else ""
        listed = [b.id async for b in client.batches.list(limit=2)]
        assert batch.id in listed
        return batch, seen, out, err
    finally:
        await client.close()


def test_a_batch_goes_through_the_documented_lifecycle_and_answers_every_line(batch_sim: SimHandle) -> None:
    batch, seen, out, err = asyncio.run(_run(batch_sim.base_url, _lines(3)))
    assert seen[0] == "validating" and seen[-1] == "completed"
    # every phase happened, in order (its timestamp is set), however coarsely this client polled
    assert batch.in_progress_at is not None and batch.finalizing_at is not None
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= (batch.completed_at or 0)
    assert batch.request_counts.total == 18 and batch.request_counts.completed == 18
    assert batch.request_counts.failed == 0 and err == ""
    assert batch.metadata == {"t": "x"} and batch.completion_window == "24h"
    rows = [json.loads(x) for x in out.splitlines()]
    assert sorted(r["custom_id"] for r in rows) == sorted(
        f"k{i}:{p.value}" for i in range(3) for p in ALL_PARTS
    )
    for row in rows:
        assert set(row) == {"id", "custom_id", "response", "error"} and row["error"] is None
        body = row["response"]["body"]
        assert row["response"]["status_code"] == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"]  # Dutch text from the chat model
        assert body["usage"]["completion_tokens"] > 0


def test_injected_line_errors_go_to_the_error_file(batch_sim: SimHandle) -> None:
    configure_sim_batches(batch_sim.base_url, line_error_rate=0.5)
    batch, _, out, err = asyncio.run(_run(batch_sim.base_url, _lines(4)))
    errors = [json.loads(x) for x in err.splitlines()]
    assert batch.status == "completed"
    assert batch.request_counts.failed == len(errors) > 0
    assert batch.request_counts.completed == len(out.splitlines()) == 24 - len(errors)
    assert {e["response"]["status_code"] for e in errors} == {500}


def test_a_batch_past_its_window_expires_and_reports_the_rest_as_batch_expired(batch_sim: SimHandle) -> None:
    configure_sim_batches(batch_sim.base_url, complete_s=40.0, window_s=20.0)
    batch, seen, out, err = asyncio.run(_run(batch_sim.base_url, _lines(4)))
    assert seen[-1] == "expired"
    errors = [json.loads(x) for x in err.splitlines()]
    assert errors and {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert len(out.splitlines()) + len(errors) == 24
    assert batch.request_counts.failed == len(errors)


def test_a_cancelled_batch_goes_through_cancelling_and_keeps_the_lines_it_finished(
    batch_sim: SimHandle,
) -> None:
    configure_sim_batches(batch_sim.base_url, complete_s=1000.0)  # 2 s in progress
    batch, seen, out, err = asyncio.run(_run(batch_sim.base_url, _lines(4), cancel=True))
    assert seen[-2:] == ["cancelling", "cancelled"]
    assert 0 < len(out.splitlines()) < 24 and err == ""
    assert batch.cancelled_at is not None


def test_a_file_that_is_not_batch_input_fails_validation_with_line_numbers(batch_sim: SimHandle) -> None:
    data = _lines(1) + b'{"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n'
    batch, seen, out, _ = asyncio.run(_run(batch_sim.base_url, data))
    assert seen[-1] == "failed" and out == ""
    assert batch.errors is not None and batch.errors.data[0].line == 7


def test_bad_requests_to_the_routes_are_openai_style_errors(batch_sim: SimHandle) -> None:
    async def go() -> None:
        client = openai.AsyncOpenAI(base_url=batch_sim.base_url, api_key="sk-sim", max_retries=0)
        try:
            with pytest.raises(openai.BadRequestError, match="purpose"):
                await client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
            with pytest.raises(openai.BadRequestError, match="input_file_id"):
                await client.batches.create(
                    input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
                )
            with pytest.raises(openai.NotFoundError):
                await client.batches.retrieve("batch-nope")
        finally:
            await client.close()

    asyncio.run(go())

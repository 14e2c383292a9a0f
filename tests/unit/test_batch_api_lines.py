"""The Batch API line formats: a request line is what the online caller sends, an output line is read as the
online caller reads an answer, files stay within the limits, and the state file survives a kill."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from voorbeelden.batch.inputs import Item
from voorbeelden.batch.provider.collect import collect
from voorbeelden.batch.provider.lines import (
    check_strategy,
    custom_id,
    dumps,
    read_output_line,
    request_line,
    split_custom_id,
    split_into_files,
)
from voorbeelden.batch.provider.state import BatchState
from voorbeelden.caller import Call, Caller, RunState
from voorbeelden.config import GeneratorConfig, RetryPolicy
from voorbeelden.types import ALL_PARTS, Part, Request

REQ = Request("omgevingsvergunning", "toestemming om te bouwen", {"juridisch": ("Omgevingswet",)})
CFG = GeneratorConfig()


class _RecordingClient:
    """Stands in for AsyncOpenAI's generic ``post``: keeps the body the caller sends, answers one item."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def post(self, path: str, *, cast_to: Any, body: dict[str, Any], options: Any) -> dict[str, Any]:
        self.bodies.append(body)
        return {"choices": [{"message": {"content": "een"}, "finish_reason": "stop"}], "usage": {}}


@pytest.mark.parametrize("part", ALL_PARTS)
def test_a_request_line_carries_exactly_the_body_the_online_caller_sends(part: Part) -> None:
    client = _RecordingClient()
    caller = Caller(client, RunState(), retry=RetryPolicy(max_retries=0), call_timeout_s=5)  # type: ignore[arg-type]
    asyncio.run(caller.call_part(Call.for_part(REQ, part, CFG.settings(part))))
    line = request_line("k1", REQ, part, CFG)
    assert line == {
        "custom_id": f"k1:{part.value}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": client.bodies[0],
    }
    assert line["body"]["temperature"] == CFG.settings(part).temperature  # per-part settings reach the line


def test_custom_ids_round_trip_and_foreign_ids_are_not_ours() -> None:
    assert split_custom_id(custom_id("abc", Part.SYNONIEMEN)) == ("abc", Part.SYNONIEMEN)
    assert split_custom_id("request-1") is None and split_custom_id("abc:nope") is None


@pytest.mark.parametrize("strategy", ["streaming", "hedged", "split", "combined"])
def test_strategies_without_a_fixed_per_part_plan_are_refused_with_a_reason(strategy: str) -> None:
    with pytest.raises(ValueError, match="sequential, parallel or bounded"):
        check_strategy(strategy)


def test_files_stay_within_both_limits_and_never_split_a_term() -> None:
    terms = [(f"k{i}", [b"x" * 10] * 6) for i in range(10)]  # 60 bytes per term
    groups = list(split_into_files(terms, max_lines=13, max_bytes=10_000))
    assert [len(g) for g in groups] == [2, 2, 2, 2, 2]
    groups = list(split_into_files(terms, max_lines=1000, max_bytes=150))
    assert all(sum(len(x) for _, ls in g for x in ls) <= 150 for g in groups) and len(groups) == 5
    assert [k for g in groups for k, _ in g] == [k for k, _ in terms]
    with pytest.raises(ValueError, match="alone exceed"):
        list(split_into_files(terms, max_lines=5, max_bytes=10_000))


def _ok_row(cid: str, content: str, finish: str = "stop") -> dict[str, Any]:
    body = {
        "choices": [{"message": {"content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 20},
    }
    return {
        "id": "r",
        "custom_id": cid,
        "response": {"status_code": 200, "request_id": "q", "body": body},
        "error": None,
    }


def test_an_output_line_is_parsed_like_an_online_answer() -> None:
    res = read_output_line(
        _ok_row("k:synoniemen", "1. vergunning\n2. toestemming\n3. permissie"), REQ, Part.SYNONIEMEN, CFG
    )
    assert res.ok and res.value == ["vergunning", "toestemming", "permissie"]
    assert res.shortfall == 2 and res.error_kind == "shortfall" and res.tokens_out == 20
    cut = read_output_line(_ok_row("k:synoniemen", "a\nb\nc\nd\ne", "length"), REQ, Part.SYNONIEMEN, CFG)
    assert cut.ok and cut.value == ["a", "b", "c", "d"] and cut.error_kind == "truncated"  # last item was cut


def test_failed_lines_are_retryable_as_online_and_a_400_is_not() -> None:
    def status_row(code: int) -> dict[str, Any]:
        body = {"error": {"message": "nope"}}
        return {"custom_id": "k:antoniemen", "response": {"status_code": code, "body": body}, "error": None}

    assert read_output_line(status_row(500), REQ, Part.ANTONIEMEN, CFG).retryable
    assert read_output_line(status_row(429), REQ, Part.ANTONIEMEN, CFG).error_kind == "rate_limited"
    bad = read_output_line(status_row(400), REQ, Part.ANTONIEMEN, CFG)
    assert not bad.ok and not bad.retryable and bad.value == []
    expired = {
        "custom_id": "k:antoniemen",
        "response": None,
        "error": {"code": "batch_expired", "message": "late"},
    }
    assert read_output_line(expired, REQ, Part.ANTONIEMEN, CFG).retryable


def _state(tmp_path: Path) -> BatchState:
    return BatchState.open(
        tmp_path / "o.batches.json", host="h:1", embedded=False, model="gpt-4.1", strategy="parallel"
    )


def test_collect_never_resends_a_live_line_and_retries_failed_lines_until_the_rounds_run_out(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    pending = {"k": Item(1, "k", REQ)}
    ids = [custom_id("k", p) for p in ALL_PARTS]
    state = _state(tmp_path)
    first = state.new_entry(ids, 1)
    first.batch_id, first.status = "b1", "in_progress"
    got = collect(state, folder, pending, CFG, 2, {})
    assert got.unsent == [] and got.retry == [] and got.done == []  # all six are live: nothing to send

    first.status, first.downloaded, first.output_file_id, first.error_file_id = "completed", True, "f1", "f2"
    (folder / "b1.output.jsonl").write_bytes(b"".join(dumps(_ok_row(c, "a\nb\nc\nd\ne")) for c in ids[1:]))
    err = {"custom_id": ids[0], "response": {"status_code": 503, "body": {}}, "error": None}
    (folder / "b1.errors.jsonl").write_bytes(dumps(err))
    got = collect(state, folder, pending, CFG, 2, {})
    assert got.retry == [ids[0]] and got.done == []  # round 2 may resend the failed line only

    second = state.new_entry([ids[0]], 2)
    second.batch_id, second.status, second.downloaded, second.error_file_id = "b2", "completed", True, "f3"
    (folder / "b2.errors.jsonl").write_bytes(dumps(err))
    got = collect(state, folder, pending, CFG, 2, {})
    assert got.retry == [] and got.done == ["k"]  # out of rounds: final, failed
    assert not got.results[ids[0]].ok and got.attempts[ids[0]] == 2


def test_lines_of_a_cancelled_batch_that_never_ran_are_sent_again(tmp_path: Path) -> None:
    pending = {"k": Item(1, "k", REQ)}
    ids = [custom_id("k", p) for p in ALL_PARTS]
    state = _state(tmp_path)
    entry = state.new_entry(ids, 1)
    entry.batch_id, entry.status, entry.downloaded = "b1", "cancelled", True
    got = collect(state, tmp_path, pending, CFG, 3, {})
    assert sorted(got.retry) == sorted(ids)
    assert got.results[ids[0]].error_kind == "not_run"


def test_the_state_file_round_trips_and_refuses_another_model_or_endpoint(tmp_path: Path) -> None:
    state = _state(tmp_path)
    entry = state.new_entry(["k:synoniemen"], 1)
    entry.batch_id = "b1"
    state.save()
    again = BatchState.open(state.path, host="h:1", embedded=False, model="gpt-4.1", strategy="parallel")
    assert again.run_tag == state.run_tag and again.entries[0].batch_id == "b1" and again.entries[0].live
    with pytest.raises(ValueError, match=r"--model gpt-4\.1"):
        BatchState.open(state.path, host="h:1", embedded=False, model="gpt-4o", strategy="parallel")
    with pytest.raises(ValueError, match=r"names batches at h:1"):
        BatchState.open(state.path, host="other:2", embedded=False, model="gpt-4.1", strategy="parallel")
    state.path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read"):
        BatchState.open(state.path, host="h:1", embedded=False, model="gpt-4.1", strategy="parallel")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file behind


def test_a_request_line_is_valid_json_with_one_line_per_request() -> None:
    raw = dumps(request_line("k", REQ, Part.TOELICHTING, CFG))
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert json.loads(raw)["body"]["messages"][0]["role"] == "user"

"""``voorbeelden batch --via openai-batch`` as a user runs it: against the embedded simulator, against a
simulator process that outlives a SIGKILLed run (every term exactly once after the rerun, no line sent twice),
``--cancel``, the ``--export-requests``/``--import-results`` round trip, refusals and consent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from _fake_keys import fake_key
from conftest import env_without_openai, run_voorbeelden

from voorbeelden.batch.provider.cli import configure_sim_batches
from voorbeelden.batch.provider.state import state_path
from voorbeelden.sim import SimConfig, SimHandle, running_simulator


@pytest.fixture(scope="module")
def sim_process() -> Iterator[SimHandle]:
    """A simulator in its own process, so its batches outlive a killed client run."""
    with running_simulator(SimConfig(time_scale=0.002), process=True) as handle:
        yield handle


def _input(tmp_path: Path, n: int, begrip: str = "bestemmingsplan") -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"begrip": f"{begrip} {i}"}) + "\n" for i in range(n)))
    return path


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.read_text().splitlines() if x.strip()]


def _batch_args(inp: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(inp), "--out", str(out), "--via", "openai-batch", "--no-progress", *extra]


def test_the_embedded_simulator_runs_a_batch_api_batch_to_the_end(tmp_path: Path) -> None:
    inp, out = _input(tmp_path, 5), tmp_path / "out.jsonl"
    args = _batch_args(inp, out, "--time-scale", "0.001", "--poll-interval", "20", "--json")
    done = run_voorbeelden(args, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["complete"] == 5 and summary["batches_created"] == 1 and summary["lines_sent"] == 30
    assert [t["status"] for t in summary["terms"]] == ["complete"] * 5
    assert Counter(r["begrip"] for r in _rows(out)) == Counter(f"bestemmingsplan {i}" for i in range(5))
    assert state_path(out).exists()


def _start(args: list[str], base_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voorbeelden", *args, "--base-url", base_url],
        env=env_without_openai(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait_for_live_batches(state: Path, proc: subprocess.Popen[str], n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if state.exists():
            entries = json.loads(state.read_text())["entries"]
            if len(entries) >= n and all(e["batch_id"] for e in entries):
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never created its batches")


def test_a_run_killed_while_polling_resumes_and_writes_every_term_exactly_once(
    tmp_path: Path, sim_process: SimHandle
) -> None:
    configure_sim_batches(sim_process.base_url, complete_s=5000.0, line_error_rate=0.0)  # 10 s in progress
    inp, out = _input(tmp_path, 12), tmp_path / "out.jsonl"
    args = _batch_args(inp, out, "--poll-interval", "0.05", "--batch-max-lines", "30")
    proc = _start(args, sim_process.base_url)
    _wait_for_live_batches(state_path(out), proc, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first = json.loads(state_path(out).read_text())["entries"]
    assert not out.exists() or not _rows(out)  # killed before any batch ended

    done = run_voorbeelden([*args, "--base-url", sim_process.base_url, "--json"], timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["batches_created"] == 0 and summary["lines_sent"] == 0  # resumed polling only
    entries = json.loads(state_path(out).read_text())["entries"]
    assert [e["batch_id"] for e in entries] == [e["batch_id"] for e in first]
    sent = Counter(cid for e in entries for cid in e["custom_ids"])
    assert len(sent) == 72 and set(sent.values()) == {1}
    assert Counter(r["begrip"] for r in _rows(out)) == Counter(f"bestemmingsplan {i}" for i in range(12))


def test_ctrl_c_leaves_the_batches_running_and_cancel_then_a_rerun_finishes_the_rest(
    tmp_path: Path, sim_process: SimHandle
) -> None:
    configure_sim_batches(sim_process.base_url, complete_s=60_000.0, line_error_rate=0.0)  # 120 s
    inp, out = _input(tmp_path, 4, "omgevingsplan"), tmp_path / "out.jsonl"
    args = _batch_args(inp, out, "--poll-interval", "0.05")
    proc = _start(args, sim_process.base_url)
    _wait_for_live_batches(state_path(out), proc, 1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the batches keep running, the message says how to go on
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "keep running at the provider" in err and "--cancel" in err and "Traceback" not in err

    cancelled = run_voorbeelden([*args, "--base-url", sim_process.base_url, "--cancel"], timeout=60)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelling" in cancelled.stderr and "without --cancel" in cancelled.stderr
    configure_sim_batches(sim_process.base_url, complete_s=20.0)
    done = run_voorbeelden([*args, "--base-url", sim_process.base_url, "--json"], timeout=120)
    assert done.returncode == 0, done.stderr
    statuses = [e["status"] for e in json.loads(state_path(out).read_text())["entries"]]
    assert statuses[0] == "cancelled" and statuses[-1] == "completed"
    assert Counter(r["begrip"] for r in _rows(out)) == Counter(f"omgevingsplan {i}" for i in range(4))


def _answer_like_vllm(requests: Path, results: Path, base_url: str) -> None:
    """What ``vllm run-batch`` does with the exported file: every line through the chat endpoint, one output
    line each, in input order (here the simulator's own /v1/chat/completions, over HTTP, via the SDK)."""
    client = openai.OpenAI(base_url=base_url, api_key="sk-sim", max_retries=0)
    with open(results, "w", encoding="utf-8") as f:
        for i, raw in enumerate(requests.read_text().splitlines()):
            line = json.loads(raw)
            body = client.post(line["url"].removeprefix("/v1"), cast_to=dict, body=line["body"])
            out = {"id": f"vllm-{i}", "custom_id": line["custom_id"], "error": None}
            out["response"] = {"status_code": 200, "request_id": f"vllm-{i}", "body": body}
            f.write(json.dumps(out, ensure_ascii=False) + "\n")
    client.close()


def test_export_and_import_round_trip_through_an_offline_engine(
    tmp_path: Path, sim_process: SimHandle
) -> None:
    inp, out = _input(tmp_path, 6, "zaakdossier"), tmp_path / "out.jsonl"
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    base = ["batch", str(inp), "--out", str(out)]
    exported = run_voorbeelden([*base, "--export-requests", str(requests)], timeout=60)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(x) for x in requests.read_text().splitlines()]
    assert len(lines) == 36 and {x["url"] for x in lines} == {"/v1/chat/completions"}
    assert not out.exists()  # nothing sent, nothing written

    _answer_like_vllm(requests, results, sim_process.base_url)
    with open(results, "a", encoding="utf-8") as f:  # a line of another run is ignored, not an error
        f.write(json.dumps({"custom_id": "someone-else", "response": None, "error": None}) + "\n")
    imported = run_voorbeelden([*base, "--import-results", str(results), "--json"], timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["complete"] == 6 and json.loads(imported.stdout)["unknown_lines"] == 1
    rows = _rows(out)
    assert Counter(r["begrip"] for r in rows) == Counter(f"zaakdossier {i}" for i in range(6))
    assert all(r["status"] == "complete" and all(r["parts"].values()) for r in rows)

    again = run_voorbeelden([*base, "--import-results", str(results), "--json"], timeout=60)
    assert json.loads(again.stdout)["skipped"] == 6 and len(_rows(out)) == 6  # idempotent
    assert json.loads(again.stdout)["unknown_lines"] == 1  # lines of terms already done are not "unknown"
    empty = run_voorbeelden([*base, "--export-requests", str(requests)], timeout=60)
    assert empty.returncode == 0 and requests.read_text() == ""  # every term done: nothing to export


def test_consent_for_a_remote_batch_states_the_batch_price_and_the_window(tmp_path: Path) -> None:
    inp, out = _input(tmp_path, 30), tmp_path / "out.jsonl"
    key = fake_key("batch-api")
    env = env_without_openai({"OPENAI_BASE_URL": "https://api.openai.example/v1", "OPENAI_API_KEY": key})
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", *_batch_args(inp, out, "--model", "gpt-4.1")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 4, done.stderr
    err = " ".join(done.stderr.split())
    assert "Batch API price, 50% of the list price" in err and "24h window" in err
    assert not out.exists() and not state_path(out).exists()
    assert key not in done.stdout + done.stderr

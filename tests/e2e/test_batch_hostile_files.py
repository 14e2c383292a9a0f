"""``voorbeelden batch`` against what a hostile user points it at: a pipe or a full disk as output, an endless
input line, a wrong key, options that would do nothing. Each of these failed on 487172d (a hang, 17 GB of
RSS, tracebacks and a torn line, 60 calls of 401, a silently ignored option)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, env_without_openai, run_voorbeelden

from voorbeelden.batch.output import MARK

FAST = ["--time-scale", "0.002", "--no-progress", "--no-cache"]


def _terms(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"begrip": f"woord{i}", "definitie": f"omschrijving {i}"}) + "\n" for i in range(n)
        )
    )
    return path


def test_out_on_a_pipe_is_written_and_never_read_back(tmp_path: Path) -> None:
    """``--out /dev/stdout | cat`` hung for ever: it read back the pipe it should write."""
    done = subprocess.run(
        f"{sys.executable} -m voorbeelden batch {_terms(tmp_path / 'in.jsonl', 3)} --out /dev/stdout "
        f"{' '.join(FAST)} | cat",
        shell=True,
        cwd=ROOT,
        env=env_without_openai(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert len(lines) == 3 and all(r[MARK[0]] == MARK[1] and r["status"] == "complete" for r in lines)


def test_a_full_disk_under_out_is_one_message_and_exit_partial(tmp_path: Path) -> None:
    done = run_voorbeelden(["batch", str(_terms(tmp_path / "in.jsonl", 2)), "--out", "/dev/full", *FAST])
    assert done.returncode == 3, done.stderr
    assert "the disk is full; the batch stopped" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_full_disk_under_records_costs_out_none_of_its_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    done = run_voorbeelden(
        ["batch", str(_terms(tmp_path / "in.jsonl", 3)), "--out", str(out), "--records", "/dev/full", *FAST]
    )
    assert done.returncode == 3, done.stderr  # partial: the records asked for are lost
    assert "--records /dev/full: cannot write call records (the disk is full)" in done.stderr
    assert "Traceback" not in done.stderr
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["complete"] * 3


def test_an_input_line_without_end_is_read_no_further(tmp_path: Path) -> None:
    """``batch /dev/zero``: 17 GB of RSS in 60 s. Now one invalid record and exit partial, in bounded memory."""
    out = tmp_path / "out.jsonl"
    done = run_voorbeelden(["batch", "/dev/zero", "--out", str(out), *FAST, "--json"])
    assert done.returncode == 1, done.stderr  # nothing but an invalid line
    summary = json.loads(done.stdout)
    assert summary["invalid"] == 1 and summary["peak_rss_mb"] < 400
    assert "longer than 16 MiB" in json.loads(out.read_text())["error"]


@pytest.mark.parametrize(
    ("option", "extra"),
    [
        ("--time-scale", ["--time-scale", "0.5"]),
        ("--sim-rpm", ["--sim-rpm", "60"]),
        ("--sim-profile", ["--sim-profile", "uniform-2s"]),
        ("--sim-process", ["--sim-process"]),
    ],
)
def test_simulator_options_with_an_endpoint_are_refused_by_name(
    tmp_path: Path, option: str, extra: list[str]
) -> None:
    done = run_voorbeelden(
        [
            "batch",
            str(_terms(tmp_path / "in.jsonl", 1)),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--base-url",
            "http://127.0.0.1:9/v1",
            *extra,
        ]
    )
    assert done.returncode == 2
    assert f"voorbeelden batch: {option} has no effect: an endpoint is configured" in done.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_a_rate_limit_mode_without_a_limit_is_refused(tmp_path: Path) -> None:
    done = run_voorbeelden(
        [
            "batch",
            str(_terms(tmp_path / "in.jsonl", 1)),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--sim-rate-limit-mode",
            "quantized",
        ]
    )
    assert done.returncode == 2 and "--sim-rate-limit-mode has no effect without --sim-rpm" in done.stderr


@pytest.fixture(params=[True, False], ids=["models-401", "no-models-route"])
def refusing_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[int]]]:
    """A real HTTP server that answers every chat completion 401 (as OpenAI does for a wrong key)."""
    request_models = request.param
    from aiohttp import web

    calls: list[int] = []

    async def chat(request: web.Request) -> web.Response:
        calls.append(1)
        body = {"error": {"message": "Incorrect API key provided: sk-wr***ng", "code": "invalid_api_key"}}
        return web.json_response(body, status=401)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "bad key"}}, status=401)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    if request_models:  # OpenAI answers 401 on /models too; an endpoint without the route says 404
        app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1", calls
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_refused_key_stops_the_batch_after_the_first_calls(
    tmp_path: Path, refusing_endpoint: tuple[str, list[int]]
) -> None:
    url, calls = refusing_endpoint
    out = tmp_path / "out.jsonl"
    env = env_without_openai({"OPENAI_API_KEY": "sk-wrong"})
    done = run_voorbeelden(
        [
            "batch",
            str(_terms(tmp_path / "in.jsonl", 10)),
            "--out",
            str(out),
            "--base-url",
            url,
            "--no-progress",
            "--no-cache",
        ],
        env=env,
    )
    assert done.returncode == 1, done.stderr
    # 60 calls of 401 before (every call of every term); when /models cannot tell, the first chat call goes
    # alone (it was up to 9 calls, those of every term that started before the first 401 came back)
    assert len(calls) <= 1
    assert done.stderr.count("refused the key (HTTP 401") == 1
    assert "sk-wrong" not in done.stderr
    assert len(out.read_text().splitlines()) < 10  # the rest waits for a rerun with the right key

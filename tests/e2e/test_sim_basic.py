"""The simulator over real HTTP with the real openai SDK: schema, streaming, content shape, errors,
keyed determinism, time scaling and a clean shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import openai
import pytest

from voorbeelden.sim import PROFILES, SimConfig, running_simulator
from voorbeelden.sim.content import DEFAULT_COUNTS

FAST = 0.001  # time_scale: a "2 s" call takes 2 ms


def ask(part: str, n: int | None = None, begrip: str = "beschikking") -> list[dict[str, str]]:
    if part == "toelichting":
        head = "Geef een korte toelichting bij de definitie."
    else:
        head = f"Geef precies {n or DEFAULT_COUNTS[part]} {part}."
    return [{"role": "user", "content": f'{head}\nHet begrip "{begrip}" betekent: een besluit.'}]


def client(url: str, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=kw.pop("max_retries", 0), **kw)


@pytest.fixture(scope="module")
def sim():
    with running_simulator(SimConfig(time_scale=FAST, profile="definitie-app")) as handle:
        yield handle


def test_plain_completion_schema(sim) -> None:
    async def go():
        async with client(sim.base_url) as c:
            raw = await c.chat.completions.with_raw_response.create(
                model="gpt-4.1", messages=ask("synoniemen")
            )
            return raw.headers, raw.parse()

    headers, r = asyncio.run(go())
    assert r.object == "chat.completion" and r.id and r.created > 0 and r.model == "gpt-4.1"
    assert r.choices[0].message.role == "assistant" and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    assert headers["x-sim-part"] == "synoniemen"
    assert float(headers["x-sim-service-ms"]) > 0 and float(headers["x-sim-queue-ms"]) >= 0
    lines = r.choices[0].message.content.splitlines()
    assert len(lines) == 5 and all(line.strip() and not line[0].isdigit() for line in lines)
    assert any("beschikking" in line for line in lines)


@pytest.mark.parametrize("part", list(DEFAULT_COUNTS))
def test_item_counts_per_part(sim, part: str) -> None:
    async def go():
        async with client(sim.base_url) as c:
            default = await c.chat.completions.create(model="m", messages=ask(part), max_tokens=4000)
            seven = await c.chat.completions.create(model="m", messages=ask(part, 7), max_tokens=4000)
            return default.choices[0].message.content, seven.choices[0].message.content

    default, seven = asyncio.run(go())
    if part == "toelichting":
        assert "\n" not in default and len(default) > 100
    else:
        assert len(default.splitlines()) == DEFAULT_COUNTS[part]
        assert len(seven.splitlines()) == 7
        assert len(set(seven.splitlines())) == 7
    if part == "praktijkvoorbeelden":
        assert min(len(x) for x in default.splitlines()) > 200  # long paragraphs, one per line


def test_recognition_by_stem_and_generic(sim) -> None:
    async def go():
        async with client(sim.base_url) as c:
            out = []
            for text in ("Noem wat antoniemen van 'wet'.", "Hallo, hoe gaat het?"):
                raw = await c.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": text}]
                )
                out.append(raw.headers["x-sim-part"])
            return out

    assert asyncio.run(go()) == ["antoniemen", "generic"]


def test_json_mode_single_and_combined(sim) -> None:
    combined_prompt = (
        'Geef voor het begrip "subsidie" 3 voorbeeldzinnen, 3 praktijkvoorbeelden, 3 tegenvoorbeelden, '
        "5 synoniemen, 5 antoniemen en een toelichting, als JSON."
    )

    async def go():
        async with client(sim.base_url) as c:
            one = await c.chat.completions.create(
                model="m", messages=ask("synoniemen", 4), response_format={"type": "json_object"}
            )
            allp = await c.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": combined_prompt}],
                response_format={"type": "json_object"},
                max_tokens=10_000,
            )
            return one.choices[0].message.content, allp.choices[0].message.content

    one, allp = asyncio.run(go())
    assert isinstance(json.loads(one), list) and len(json.loads(one)) == 4
    obj = json.loads(allp)
    assert set(obj) == set(DEFAULT_COUNTS)
    assert [len(obj[p]) for p in ("voorbeeldzinnen", "synoniemen")] == [3, 5] and isinstance(
        obj["toelichting"], str
    )
    assert "subsidie" in obj["voorbeeldzinnen"][0] + obj["voorbeeldzinnen"][1] + obj["voorbeeldzinnen"][2]


def test_max_tokens_cuts_praktijkvoorbeelden(sim) -> None:
    async def go():
        async with client(sim.base_url) as c:
            return await c.chat.completions.create(
                model="m", messages=ask("praktijkvoorbeelden"), max_tokens=1500
            )

    r = asyncio.run(go())
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 1500
    assert len(r.choices[0].message.content.splitlines()) <= 3
    assert not r.choices[0].message.content.endswith(".")  # broken off mid-item


def test_streaming_with_usage(sim) -> None:
    async def go():
        async with client(sim.base_url) as c:
            stream = await c.chat.completions.create(
                model="m",
                messages=ask("voorbeeldzinnen"),
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [ch async for ch in stream]
            return chunks

    chunks = asyncio.run(go())
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert len(text.splitlines()) == 3
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len(chunks) > 5  # spread over several chunks, not one blob


def test_streaming_first_chunk_arrives_at_ttft() -> None:
    # definitie-app tegenvoorbeelden: TTFT ~0.5 s, total ~9 s; at time_scale 0.02: ~10 ms vs ~180 ms.
    async def go(url):
        async with client(url) as c:
            t0 = time.perf_counter()
            stream = await c.chat.completions.create(model="m", messages=ask("tegenvoorbeelden"), stream=True)
            first = None
            async for ch in stream:
                if first is None and ch.choices and ch.choices[0].delta.content:
                    first = time.perf_counter() - t0
            return first, time.perf_counter() - t0

    with running_simulator(SimConfig(profile="definitie-app", time_scale=0.02)) as s:
        first, total = asyncio.run(go(s.base_url))
    assert first is not None and total > 0.1 and first < total / 2


def _post(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"model": "m"}',
        b'{"model": "m", "messages": "hoi"}',
        b'{"model": "m", "messages": [{"content": "x"}]}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "veel"}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "ja"}',
        b'{"model": 3, "messages": [{"role": "user", "content": "x"}]}',
    ],
)
def test_malformed_request_is_400(sim, body: bytes) -> None:
    status, err = _post(sim.base_url + "/chat/completions", body)
    assert status == 400
    assert set(err["error"]) == {"message", "type", "param", "code"} and err["error"]["message"]


def test_oversized_request_is_413() -> None:
    with running_simulator(time_scale=FAST, max_body_bytes=4096) as s:
        big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 10_000}]}).encode()
        status, err = _post(s.base_url + "/chat/completions", big)
        assert status == 413 and err["error"]["type"] == "invalid_request_error"

        async def go():
            async with client(s.base_url) as c:
                await c.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "x" * 10_000}]
                )

        with pytest.raises(openai.APIStatusError) as exc:
            asyncio.run(go())
        assert exc.value.status_code == 413
        assert s.counters()["by_status"].get("200") is None  # the server stayed up and answered


def test_models_health_and_unknown_route(sim) -> None:
    with urllib.request.urlopen(sim.root_url + "/health", timeout=5) as r:
        assert json.loads(r.read())["status"] == "ok"

    async def go():
        async with client(sim.base_url) as c:
            return [m.id async for m in c.models.list()]

    assert "sim-definitie-app" in asyncio.run(go())
    try:
        urllib.request.urlopen(sim.root_url + "/v1/nope", timeout=5)
    except urllib.error.HTTPError as e:
        assert e.code == 404 and "error" in json.loads(e.read())


def _service_ms(url: str, key: str, attempt: int, part: str = "toelichting") -> float:
    async def go():
        async with client(url) as c:
            raw = await c.chat.completions.with_raw_response.create(
                model="m", messages=ask(part), extra_headers={"x-sim-key": key, "x-sim-attempt": str(attempt)}
            )
            return float(raw.headers["x-sim-service-ms"])

    return asyncio.run(go())


def test_keyed_draws_are_deterministic_across_servers_and_concurrency() -> None:
    cfg = SimConfig(profile="heavy-tail", time_scale=FAST, seed=7)
    with running_simulator(cfg) as a:
        first = _service_ms(a.base_url, "k1", 1)
        again = _service_ms(a.base_url, "k1", 1)
        retry = _service_ms(a.base_url, "k1", 2)
        other = _service_ms(a.base_url, "k2", 1)
    assert first == again
    assert retry != first and other != first

    async def parallel(url):  # same key under concurrency and in another order: same draw
        async with client(url) as c:
            raws = await asyncio.gather(
                *(
                    c.chat.completions.with_raw_response.create(
                        model="m", messages=ask(p), extra_headers={"x-sim-key": "k1"}
                    )
                    for p in ("synoniemen", "toelichting", "antoniemen")
                )
            )
            return {r.headers["x-sim-part"]: float(r.headers["x-sim-service-ms"]) for r in raws}

    with running_simulator(cfg) as b:
        assert asyncio.run(parallel(b.base_url))["toelichting"] == first
    with running_simulator(cfg.with_changes({"seed": 8})) as c:
        assert _service_ms(c.base_url, "k1", 1) != first


def test_time_scale_makes_a_2s_call_fast() -> None:
    async def go(url):
        async with client(url) as c:
            t0 = time.perf_counter()
            raw = await c.chat.completions.with_raw_response.create(model="m", messages=ask("synoniemen"))
            return time.perf_counter() - t0, float(raw.headers["x-sim-service-ms"])

    with running_simulator(time_scale=0.01) as s:
        elapsed, service_ms = asyncio.run(go(s.base_url))
    assert 15 < service_ms < 25  # ~2 s * 0.01
    assert elapsed < 0.9


def test_profiles_sample_service_s() -> None:
    rng = np.random.default_rng(0)
    da = PROFILES["definitie-app"]
    means = {p: np.mean([da.sample_service_s(p, rng) for _ in range(200)]) for p in DEFAULT_COUNTS}
    assert 1.5 < means["antoniemen"] < 2.5 and 7.5 < means["tegenvoorbeelden"] < 10.5
    assert means["praktijkvoorbeelden"] > 35  # uncut: ~1,840 tokens
    cut = np.mean([da.sample_service_s("praktijkvoorbeelden", rng, max_tokens=1500) for _ in range(200)])
    assert 27 < cut < 34
    ht = [PROFILES["heavy-tail"].sample_service_s("synoniemen", rng) for _ in range(4000)]
    assert 2.3 < np.mean(ht) < 3.8 and np.max(ht) > 5 * np.mean(ht)
    u = [PROFILES["uniform-2s"].sample_service_s("toelichting", rng) for _ in range(200)]
    assert 1.9 < np.mean(u) < 2.1 and np.std(u) < 0.1
    for p in PROFILES.values():
        assert p.source and p.description
    from voorbeelden.types import Part  # the str enum must index a profile like its value does

    assert da.parts[Part.SYNONIEMEN] is da.parts["synoniemen"] and Part.TOELICHTING in da.parts
    assert da.sample_service_s(Part.ANTONIEMEN, np.random.default_rng(1)) == da.sample_service_s(
        "antoniemen", np.random.default_rng(1)
    )


def test_loopback_only_unless_allowed() -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        SimConfig(host="0.0.0.0")
    with pytest.raises(ValueError, match="allow_remote"):
        with running_simulator(host="0.0.0.0"):
            pass
    SimConfig(host="0.0.0.0", allow_remote=True)  # allowed explicitly
    SimConfig(host="::1")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_context_manager_leaves_no_threads_or_sockets() -> None:
    before = threading.active_count()
    with running_simulator(time_scale=FAST, schedule=("synoniemen=hang",)) as s:
        port = s.port
        assert _port_open(port)

        async def go():  # a hung request must not block shutdown
            async with client(s.base_url, timeout=0.2) as c:
                with pytest.raises(openai.APITimeoutError):
                    await c.chat.completions.create(model="m", messages=ask("synoniemen"))

        asyncio.run(go())
        assert threading.active_count() > before
    assert threading.active_count() == before
    assert not _port_open(port)


def test_process_mode_and_cli_exit_cleanly() -> None:
    with running_simulator(SimConfig(time_scale=FAST), process=True) as s:
        assert s.process is not None
        port = s.port
        assert _service_ms(s.base_url, "k", 1) > 0
        s.configure(profile="heavy-tail")
        assert s.counters()["requests_total"] == 1
    assert s.process.returncode == 0
    assert not _port_open(port)


def test_cli_refuses_remote_without_flag_and_stops_on_sigint() -> None:
    cmd = [sys.executable, "-m", "voorbeelden", "sim", "--port", "0"]
    bad = subprocess.run([*cmd, "--host", "0.0.0.0"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "allow-remote" in bad.stderr and "Traceback" not in bad.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err


def test_cli_options_map_to_config() -> None:
    from voorbeelden.cli import build_parser
    from voorbeelden.commands.sim import config_from_args
    from voorbeelden.sim.server import cli_args

    argv = "sim --port 0 --profile heavy-tail --time-scale 0.5 --capacity 3 --rpm 60 --faults 500,hang"
    argv += " --fault-rate 0.1 --fault-schedule synoniemen=503@1 *=429@1,2 --fault-schedule toelichting=drop"
    args = build_parser().parse_args(argv.split())
    cfg = config_from_args(args)
    assert cfg.schedule == ("synoniemen=503@1", "*=429@1,2", "toelichting=drop")
    assert (cfg.profile, cfg.time_scale, cfg.capacity, cfg.rpm, cfg.faults) == (
        "heavy-tail",
        0.5,
        3,
        60.0,
        ("500", "hang"),
    )
    # the subprocess runner's options reproduce the same config
    assert config_from_args(build_parser().parse_args(["sim", *cli_args(cfg)])) == cfg

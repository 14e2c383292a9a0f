"""The batching model inside the running simulator, over real HTTP with the openai SDK: six equal calls
share the server and each takes twice its solo time under a curve that halves the speed at six streams;
twelve queue behind the first six. Times are scaled down; the checks compare ratios 2x apart, which a loaded
machine's few milliseconds of lateness cannot blur."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest

from voorbeelden.sim import SimConfig, running_simulator
from voorbeelden.types import ALL_PARTS

SCALE = 0.3  # a call of 1 s of work takes 0.3 s alone
CURVE = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]


def _profile(tmp_path, batching):
    # 0.1 s to the first token + 90 tokens at 100 tokens/s = 1.0 s of work, no spread
    pp = {"ttft_s": {"median": 0.1}, "tokens": {"median": 90}, "tokens_per_s": {"median": 100}}
    data = {"name": "flat", "parts": {p.value: pp for p in ALL_PARTS}, "generic": pp}
    if batching:
        data["batching"] = {"speed": batching}
    path = tmp_path / "flat.json"
    path.write_text(json.dumps(data))
    return str(path)


async def _burst(url: str, n: int, stream: bool = False) -> tuple[float, list[float], list[dict]]:
    async with openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0) as c:

        async def one(i: int) -> tuple[float, dict]:
            t = time.perf_counter()
            msg = [{"role": "user", "content": f'Geef precies 5 synoniemen.\nHet begrip "b{i}" betekent: x.'}]
            if stream:
                s = await c.chat.completions.create(model="m", messages=msg, stream=True)
                async for _ in s:
                    pass
                return time.perf_counter() - t, {}
            raw = await c.chat.completions.with_raw_response.create(model="m", messages=msg)
            return time.perf_counter() - t, dict(raw.headers)

        await one(-1)  # warm the connection pool and the server
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0, [r[0] for r in results], [r[1] for r in results]


def _ms(headers: list[dict], name: str) -> list[float]:
    return sorted(float(h[name]) / 1000 for h in headers)


def test_six_equal_calls_each_take_twice_their_solo_time(tmp_path):
    with running_simulator(SimConfig(profile_file=_profile(tmp_path, CURVE), time_scale=SCALE)) as sim:
        wall, _, headers = asyncio.run(_burst(sim.base_url, 6))
    solo = 1.0 * SCALE
    # the server's own account (admission to answer, loop clock): every call shared the server with five
    assert _ms(headers, "x-sim-service-ms") == pytest.approx([2 * solo] * 6, rel=0.1)
    assert "6" in {h["x-sim-batch"] for h in headers}
    assert wall > 1.9 * solo  # the client cannot see it sooner than the model says


def test_streamed_calls_share_the_server_too(tmp_path):
    with running_simulator(SimConfig(profile_file=_profile(tmp_path, CURVE), time_scale=SCALE)) as sim:
        wall, lat, _ = asyncio.run(_burst(sim.base_url, 6, stream=True))
    solo = 1.0 * SCALE
    # 2x solo; neither served side by side unslowed (1x) nor one after the other (6x)
    assert 1.9 * solo < min(lat) and wall < 3 * solo


def test_beyond_max_batch_calls_queue(tmp_path):
    with running_simulator(SimConfig(profile_file=_profile(tmp_path, CURVE), time_scale=SCALE)) as sim:
        _, _, headers = asyncio.run(_burst(sim.base_url, 12))
        counters = sim.counters()
    solo = 1.0 * SCALE
    queued = _ms(headers, "x-sim-queue-ms")
    assert queued[:6] == pytest.approx([0.0] * 6, abs=0.1 * solo)
    assert queued[6:] == pytest.approx([2 * solo] * 6, rel=0.1)  # waited for the first batch of six
    assert _ms(headers, "x-sim-service-ms") == pytest.approx([2 * solo] * 12, rel=0.1)
    assert counters["peak_in_flight"] == 6 and counters["peak_queued"] == 6


def test_without_a_curve_calls_do_not_slow_each_other(tmp_path):
    with running_simulator(SimConfig(profile_file=_profile(tmp_path, None), time_scale=SCALE)) as sim:
        _, _, headers = asyncio.run(_burst(sim.base_url, 6))
    assert _ms(headers, "x-sim-service-ms") == pytest.approx([1.0 * SCALE] * 6, rel=1e-6)  # the schedule
    assert all("x-sim-batch" not in h for h in headers)


def test_capacity_below_max_batch_caps_the_batch(tmp_path):
    cfg = SimConfig(profile_file=_profile(tmp_path, CURVE), time_scale=SCALE, capacity=3)
    with running_simulator(cfg) as sim:
        _, _, headers = asyncio.run(_burst(sim.base_url, 6))
        assert sim.counters()["peak_in_flight"] == 3
    # two rounds of three at 0.8 speed: 1.25 x solo each
    assert _ms(headers, "x-sim-service-ms") == pytest.approx([1.25 * SCALE] * 6, rel=0.1)
    assert _ms(headers, "x-sim-queue-ms")[3:] == pytest.approx([1.25 * SCALE] * 3, rel=0.1)

"""The fidelity benchmark (small and fast here; the 1,000-request figures are in the report) and the
aiohttp transport it relies on, which must behave like the SDK's own for results and errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import openai
import pytest

from voorbeelden.backend import PLACEHOLDER_KEY, make_client
from voorbeelden.bench.fidelity import run_fidelity
from voorbeelden.sim import running_simulator
from voorbeelden.transport import http_client

MSG = [{"role": "user", "content": 'Geef precies 3 voorbeeldzinnen voor het begrip "beschikking".'}]


def _client(url: str, **kw) -> openai.AsyncOpenAI:
    return make_client(url, PLACEHOLDER_KEY, http_client=http_client(limit=10), **kw)


def test_aiohttp_transport_plain_stream_and_errors() -> None:
    with running_simulator(time_scale=0.001) as s:

        async def go():
            async with _client(s.base_url, timeout=0.3) as c:
                raw = await c.chat.completions.with_raw_response.create(model="m", messages=MSG)
                plain = raw.parse()
                stream = await c.chat.completions.create(
                    model="m", messages=MSG, stream=True, stream_options={"include_usage": True}
                )
                chunks = [ch async for ch in stream]
                errors = {}
                for kind in ("500", "429", "hang", "drop"):
                    s.configure(schedule=(f"*={kind}",))
                    try:
                        await c.chat.completions.create(model="m", messages=MSG)
                    except Exception as e:
                        errors[kind] = type(e)
                s.configure(schedule=())
                return raw.headers, plain, chunks, errors

        headers, plain, chunks, errors = asyncio.run(go())
    assert headers["x-sim-part"] == "voorbeeldzinnen"
    assert len(plain.choices[0].message.content.splitlines()) == 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).count("\n") == 2
    assert chunks[-1].usage is not None
    assert errors == {
        "500": openai.InternalServerError,
        "429": openai.RateLimitError,
        "hang": openai.APITimeoutError,
        "drop": openai.APIConnectionError,
    }


def test_run_fidelity_small() -> None:
    r = run_fidelity(requests=30, time_scale=0.05, ramp_s=0.05)
    assert r.ok == 30 and r.errors == 0
    assert 1 <= r.peak_in_flight <= 30
    assert 90 < r.scheduled_ms_p50 < 110  # uniform-2s at 0.05
    assert r.error_ms_min > -5  # the client never sees an answer before it was scheduled
    assert r.requests_per_s > 0 and len(r.error_ms) == 30
    assert "error_ms" not in r.to_dict()


def test_cli_json_output() -> None:
    cmd = ["bench", "fidelity", "--requests", "10", "--time-scale", "0.01", "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "voorbeelden", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] == 10
    assert {"error_ms_p50", "error_ms_p99", "peak_in_flight", "requests_per_s"} <= set(data)


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="transport"):
        run_fidelity(requests=1, time_scale=0.01, transport="carrier-pigeon")

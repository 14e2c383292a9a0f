"""Simulator edges: 400 for any request it cannot parse, a read timeout for half-sent requests, only finite
positive time scales, and unknown names in flags refused.

Issue 14 case 11.
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from conftest import env_without_openai

from voorbeelden.sim import SimConfig, running_simulator

GOOD = {
    "model": "m",
    "messages": [{"role": "user", "content": "Geef precies 3 synoniemen voor het begrip x."}],
}


@pytest.fixture(scope="module")
def sim(fast_sim):  # type: ignore[no-untyped-def]
    return fast_sim


@pytest.mark.parametrize(
    "body",
    [
        b'{"messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested far beyond the parser's depth
        b'{"model": "m", "messages": [{"role": "user", "content": ' + b"[" * 5_000 + b"]" * 5_000 + b"}]}",
        b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": [[1]]}]}]}',
        b'{"model": "m", "messages": [{"role": "user", "content": [1, 2]}]}',
        b'{"model": "m", "messages": [{"role": "user", "content": "Geef precies '
        + b"9" * 5000
        + b' synoniemen"}]}',
    ],
    ids=["deep-body", "deep-content", "text-not-a-string", "parts-not-objects", "huge-count"],
)
def test_a_request_the_simulator_cannot_parse_gets_400(sim, body: bytes) -> None:  # type: ignore[no-untyped-def]
    resp = httpx2.post(
        sim.base_url + "/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["error"]["message"]


def test_half_sent_requests_are_cut_off_and_the_server_keeps_serving() -> None:
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.001, read_timeout_s=0.5)) as sim:
        _half_sent(sim.base_url)


def _half_sent(base_url: str) -> None:
    u = urlsplit(base_url)
    head = f"POST {u.path}/chat/completions HTTP/1.1\r\nHost: {u.netloc}\r\n".encode()
    body_start = head + b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model": '
    socks: list[socket.socket] = []
    t0 = time.monotonic()
    for i in range(400):  # half a head, or a whole head and the start of the body it announced
        s = socket.create_connection((u.hostname, u.port))
        s.sendall(head if i % 2 else body_start)
        socks.append(s)
    idle = socket.create_connection((u.hostname, u.port))  # connected, nothing sent: a pooled connection
    assert httpx2.post(base_url + "/chat/completions", json=GOOD, timeout=10).status_code == 200
    answers = []
    for s in socks:
        s.settimeout(10)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        answers.append(data)
        s.close()
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5 + 5, f"half-sent requests were held {elapsed:.1f} s (read timeout 0.5 s)"
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:40] for a in answers}
    idle.settimeout(0.3)
    with pytest.raises(TimeoutError):
        idle.recv(1)  # an idle keep-alive connection is left open
    idle.close()
    assert httpx2.post(base_url + "/chat/completions", json=GOOD, timeout=10).status_code == 200


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, 0.0, "fast", True])
def test_time_scale_must_be_a_finite_positive_number(value: object) -> None:
    with pytest.raises(ValueError, match="time_scale must be a finite number > 0"):
        SimConfig(time_scale=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["sim", "--time-scale", "inf"], "--time-scale"),
        (["sim", "--max-body-bytes", "0"], "--max-body-bytes"),
        (["sim", "--fault-schedule", "synonyms=503"], "part 'synonyms'"),
        (["sim", "--fault-schedule", "synoniemen=503@0"], "count from 1"),
        (["sim", "--faults", "500,teapot"], "fault kind 'teapot'"),
        (["sim", "--profile", "nope"], "--profile"),
        (["sim", "--read-timeout", "0"], "--read-timeout"),
        (["bench", "fidelity", "--ramp", "-1"], "--ramp"),
        (["bench", "fidelity", "--profile", "nope"], "--profile"),
    ],
)
def test_unknown_names_and_out_of_range_values_in_simulator_flags_are_refused(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voorbeelden", *args, "--port", "0"]
        if args[0] == "sim"
        else [sys.executable, "-m", "voorbeelden", *args],
        cwd=tmp_path,
        env=env_without_openai(),
        capture_output=True,
        text=True,
        timeout=30,  # a simulator that accepted the flag would run until killed
    )
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr

"""The simulator under abuse: bad requests get 4xx JSON errors, a storm of faults leaves it serving, and it
refuses to listen beyond loopback unless told to."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from urllib.parse import urlsplit

import httpx2
import pytest

from voorbeelden.sim import SimConfig, SimHandle, running_simulator

MSG = [{"role": "user", "content": 'Geef precies 5 synoniemen voor het begrip "beschikking".'}]
GOOD = {"model": "m", "messages": MSG}
LIMIT = 4096


@pytest.fixture(scope="module")
def sim():  # type: ignore[no-untyped-def]
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.001, max_body_bytes=LIMIT)) as s:
        yield s


def _url(sim: SimHandle) -> str:
    return sim.base_url + "/chat/completions"


def _assert_json_error(resp: httpx2.Response, *statuses: int) -> dict:  # type: ignore[type-arg]
    assert resp.status_code in statuses, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body.get("error"), dict) and body["error"].get("message"), body
    return body


def _raw(sim: SimHandle, data: bytes, *, wait_s: float = 3.0) -> bytes:
    """Send raw bytes, half-close (the client is done sending), and read whatever comes back."""
    u = urlsplit(sim.base_url)
    with socket.create_connection((u.hostname, u.port), timeout=wait_s) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def _truncated_head(sim: SimHandle, body: bytes, extra: int) -> bytes:
    u = urlsplit(sim.base_url)
    return (
        f"POST {u.path}/chat/completions HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) + extra}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_oversized_body_is_413_json(sim: SimHandle) -> None:
    big = dict(GOOD, messages=[{"role": "user", "content": "x" * (LIMIT * 4)}])
    body = _assert_json_error(httpx2.post(_url(sim), json=big, timeout=10), 413)
    assert "limit" in body["error"]["message"]


def test_oversized_chunked_body_without_length_is_413_json(sim: SimHandle) -> None:
    def gen():  # type: ignore[no-untyped-def]
        for _ in range(8):
            yield b"x" * LIMIT

    resp = httpx2.post(_url(sim), content=gen(), headers={"content-type": "application/json"}, timeout=10)
    _assert_json_error(resp, 413)


def test_truncated_body_gets_a_4xx_or_nothing_and_no_traceback(
    sim: SimHandle, caplog: pytest.LogCaptureFixture
) -> None:
    # Content-Length 500 bytes more than the body, then the client closes its side. Once the peer has
    # closed, a 400 can only be delivered if the socket still takes it; either way never a 5xx, never a
    # "Error handling request" traceback in the server's log, and the server goes on serving.
    body = json.dumps(GOOD).encode()
    caplog.set_level(logging.DEBUG)
    replies = [_raw(sim, _truncated_head(sim, body, 500) + body) for _ in range(5)]
    time.sleep(0.2)  # the server thread logs asynchronously
    for reply in replies:
        if reply:
            head, _, rest = reply.partition(b"\r\n\r\n")
            status = int(head.split(b" ")[1])
            assert 400 <= status < 500 and b"application/json" in head.lower(), reply[:300]
            assert json.loads(rest)["error"]["message"]
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]
    assert httpx2.post(_url(sim), json=GOOD, timeout=10).status_code == 200


def test_a_client_vanishing_mid_body_does_not_hurt_the_server(
    sim: SimHandle, caplog: pytest.LogCaptureFixture
) -> None:
    u = urlsplit(sim.base_url)
    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        with socket.create_connection((u.hostname, u.port), timeout=5) as s:
            s.sendall(_truncated_head(sim, b"", 1000) + b'{"model":')
    time.sleep(0.3)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]
    assert httpx2.post(_url(sim), json=GOOD, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"model": ', b"\xff\xfe\x00garbage", b"", b"[1, 2, 3]", b'"a string"', b"null"],
)
def test_non_json_bodies_are_400_json(sim: SimHandle, content: bytes) -> None:
    resp = httpx2.post(_url(sim), content=content, headers={"content-type": "application/json"}, timeout=10)
    _assert_json_error(resp, 400)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "messages": "hallo"},
        {"model": "m", "messages": [1, 2]},
        {"model": "m", "messages": [{"role": "user", "content": 5}]},
        {"model": "m", "messages": [{"role": 7, "content": "x"}]},
        {"model": 3, "messages": MSG},
        {"model": "m", "messages": MSG, "max_tokens": "veel"},
        {"model": "m", "messages": MSG, "max_tokens": -1},
        {"model": "m", "messages": MSG, "max_tokens": True},
        {"model": "m", "messages": MSG, "stream": "ja"},
        {"model": "m", "messages": MSG, "response_format": "json"},
        {"model": "m", "messages": MSG, "stream_options": [1]},
    ],
)
def test_wrong_typed_requests_are_4xx_json(sim: SimHandle, body: dict) -> None:  # type: ignore[type-arg]
    resp = httpx2.post(_url(sim), json=body, timeout=10)
    _assert_json_error(resp, 400, 422)


@pytest.mark.parametrize(
    "extra", [{"n": 0}, {"temperature": "warm"}, {"response_format": {"type": 5}}, {"top_p": []}]
)
def test_wrong_typed_fields_the_simulator_ignores_never_500(sim: SimHandle, extra: dict) -> None:  # type: ignore[type-arg]
    # The simulator does not validate fields it does not use (the real API would say 400); it must
    # still answer 200 or a 4xx JSON error, never fall over.
    resp = httpx2.post(_url(sim), json=dict(GOOD, **extra), timeout=10)
    if resp.status_code != 200:
        _assert_json_error(resp, 400, 422)


def test_bad_admin_config_is_4xx_json(sim: SimHandle) -> None:
    root = sim.base_url.removesuffix("/v1")
    for body in ({"time_scale": "fast"}, {"fault_rate": 2}, {"no_such_field": 1}, [1]):
        _assert_json_error(httpx2.post(root + "/admin/config", json=body, timeout=10), 400, 422)
    assert httpx2.get(root + "/health", timeout=10).json()["status"] == "ok"


def test_the_wrong_method_and_unknown_path_are_4xx(sim: SimHandle) -> None:
    assert 400 <= httpx2.get(_url(sim), timeout=10).status_code < 500
    assert httpx2.get(sim.base_url + "/nope", timeout=10).status_code == 404


N_STORM = 10_000


@pytest.mark.timeout(300)
def test_ten_thousand_faulty_requests_leave_it_serving() -> None:
    cfg = SimConfig(
        profile="uniform-2s", time_scale=0.001, fault_rate=0.5
    )  # every kind, hang and drop included
    with running_simulator(cfg) as sim:
        url = _url(sim)

        async def storm() -> dict[str, int]:
            outcomes: dict[str, int] = {}
            limits = httpx2.Limits(max_connections=64, max_keepalive_connections=32)
            async with httpx2.AsyncClient(timeout=0.25, limits=limits) as client:
                sem = asyncio.Semaphore(64)

                async def one(i: int) -> None:
                    async with sem:
                        try:
                            resp = await client.post(url, json=GOOD, headers={"x-sim-key": f"k{i}"})
                            key = str(resp.status_code)
                        except httpx2.HTTPError as e:
                            key = type(e).__name__
                        outcomes[key] = outcomes.get(key, 0) + 1

                await asyncio.gather(*(one(i) for i in range(N_STORM)))
            return outcomes

        outcomes = asyncio.run(asyncio.wait_for(storm(), 240))
        assert sum(outcomes.values()) == N_STORM
        assert outcomes.get("200", 0) > N_STORM // 4 and len(outcomes) >= 4, (
            outcomes
        )  # faults really happened
        sim.configure(fault_rate=0.0)
        root = sim.base_url.removesuffix("/v1")
        assert httpx2.get(root + "/health", timeout=10).json()["status"] == "ok"
        resp = httpx2.post(url, json=GOOD, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org"])
def test_non_loopback_host_is_refused_without_allow_remote(host: str) -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        SimConfig(host=host)
    with pytest.raises(ValueError, match="allow_remote"), running_simulator(SimConfig(), host=host):
        pass


def test_the_cli_refuses_a_non_loopback_host() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "sim", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and "allow-remote" in done.stderr and "Traceback" not in done.stderr

"""The one HTTP transport (voorbeelden/transport.py) over real loopback HTTP: compressed bodies arrive decoded
(plain and through the batch gate), the "sent" hook fires, and aiohttp failures become the httpx2 errors the
SDK understands."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from aiohttp import web

from voorbeelden.backend import PLACEHOLDER_KEY, make_client
from voorbeelden.batch.transport import GatedTransport
from voorbeelden.transport import SENT_HOOK, AiohttpTransport, http_client

ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "gezipt antwoord"}}
    ],
}
MSG = [{"role": "user", "content": "hallo"}]


@asynccontextmanager
async def _server() -> AsyncIterator[str]:
    async def chat(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps(ANSWER).encode())
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_a_gzipped_answer_is_decoded_once_plain_and_through_the_gate() -> None:
    async def go() -> list[str]:
        out = []
        async with _server() as root:
            for kwargs in ({"http_client": http_client(limit=4)}, {"transport": GatedTransport()}):
                async with make_client(root + "/v1", PLACEHOLDER_KEY, **kwargs) as client:  # type: ignore[arg-type]
                    done = await client.chat.completions.create(model="m", messages=MSG)  # type: ignore[arg-type]
                    out.append(done.choices[0].message.content or "")
        return out

    assert asyncio.run(go()) == ["gezipt antwoord", "gezipt antwoord"]


def test_the_sent_hook_fires_and_failures_map_to_httpx2_errors() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]

    async def go() -> int:
        sent: list[int] = []
        async with _server() as root, httpx2.AsyncClient(transport=AiohttpTransport(limit=4)) as client:
            r = await client.post(
                root + "/v1/chat/completions", json={}, extensions={SENT_HOOK: lambda: sent.append(1)}
            )
            assert r.json() == ANSWER
            with pytest.raises(httpx2.ReadTimeout):
                await client.get(root + "/slow", timeout=httpx2.Timeout(5.0, read=0.2))
            with pytest.raises(httpx2.ConnectError):
                await client.get(f"http://127.0.0.1:{closed_port}/")
        return len(sent)

    assert asyncio.run(go()) >= 1


def test_every_client_the_factory_makes_sends_through_the_one_transport() -> None:
    async def go() -> list[object]:
        plain = make_client("http://127.0.0.1:9/v1", PLACEHOLDER_KEY)
        gated = make_client("http://127.0.0.1:9/v1", PLACEHOLDER_KEY, transport=GatedTransport())
        async with plain, gated:
            return [plain._client._transport, gated._client._transport]  # type: ignore[attr-defined]

    plain, gated = asyncio.run(go())
    assert isinstance(plain, AiohttpTransport)
    assert isinstance(gated, GatedTransport) and isinstance(gated.inner, AiohttpTransport)


def test_generate_sends_every_call_through_the_one_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """generate() with a base URL (the path of the CLI, the notebooks' trials and the benchmarks) makes its
    client by the factory: every request the simulator answers went through AiohttpTransport."""
    from voorbeelden.generator import generate_sync
    from voorbeelden.sim import SimConfig, running_simulator

    seen: list[str] = []
    original = AiohttpTransport.handle_async_request

    async def counting(self: AiohttpTransport, request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.path)
        return await original(self, request)

    monkeypatch.setattr(AiohttpTransport, "handle_async_request", counting)
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.01)) as sim:
        gen = generate_sync({"begrip": "besluit"}, "parallel", base_url=sim.base_url)
        served = sim.counters()["requests_total"]
    assert gen.complete
    assert seen == ["/v1/chat/completions"] * 6 and served == 6

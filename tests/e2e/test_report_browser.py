"""The report's index.html in a real browser: every <img> loads, nothing is logged as an error, and the first
page reads at a glance (the verdict, then the headline charts starting on the first screen, then the tables).

Drives headless Debian chromium over the Chrome DevTools Protocol with aiohttp's websocket client (no new
dependency). The report is built once for the module with the CI parameters; the test in
tests/e2e/test_report.py builds its own in a function-scoped tmp_path, so it cannot be shared.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import env_without_openai

ROOT = Path(__file__).resolve().parents[2]
CI_PARAMS = ROOT / "notebooks" / "params" / "ci.yaml"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK), reason=f"headless chromium not installed at {CHROMIUM}"
    ),
]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    env = env_without_openai()
    env["MPLBACKEND"] = "agg"
    args = ["report", "--params", str(CI_PARAMS), "--out", str(out), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return (out / "latest").resolve()


def _start_chromium(profile: Path) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before opening DevTools")
        try:
            first = port_file.read_text().splitlines()[0].strip()
            if first:
                return proc, int(first)
        except (FileNotFoundError, IndexError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError("chromium did not write DevToolsActivePort within 20 s")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


class Cdp:
    """A minimal CDP session: send commands, collect events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.loaded = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                if data["method"] == "Page.loadEventFired":
                    self.loaded.set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, 30)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]

    def errors(self) -> list[str]:
        out = []
        for ev in self.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails']}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out


LAYOUT_JS = """
(() => {
  const top = e => e ? Math.round(e.getBoundingClientRect().top + window.scrollY) : null;
  return {viewport: window.innerHeight, verdict: top(document.getElementById('verdict')),
          chart: top(document.querySelector('.charts img')), speedup: top(document.getElementById('speedup')),
          notebooks: top(document.getElementById('notebooks')),
          verdict_lines: document.querySelectorAll('#verdict > p').length,
          folded: Array.from(document.querySelectorAll('details')).filter(d => !d.open).length};
})()
"""

IMAGES_JS = """
Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete,
                                       w: i.naturalWidth, h: i.naturalHeight}))
"""


async def _inspect(port: int, url: str) -> tuple[list[dict[str, Any]], list[str], str, bytes, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = Cdp(ws)
            for domain in ("Page", "Runtime", "Log"):
                await cdp.send(f"{domain}.enable")
            cdp.loaded.clear()
            nav = await cdp.send("Page.navigate", url=url)
            assert not nav.get("errorText"), nav
            await asyncio.wait_for(cdp.loaded.wait(), 30)
            # load fires after images, but give late console messages a moment
            await asyncio.sleep(0.3)
            res = await cdp.send("Runtime.evaluate", expression=IMAGES_JS, returnByValue=True)
            images = res["result"]["value"]
            res = await cdp.send("Runtime.evaluate", expression=LAYOUT_JS, returnByValue=True)
            layout = res["result"]["value"]
            title = (await cdp.send("Runtime.evaluate", expression="document.title", returnByValue=True))[
                "result"
            ]["value"]
            shot = await cdp.send("Page.captureScreenshot", format="png")
            errors = cdp.errors()
            cdp.reader.cancel()
            return images, errors, title, base64.b64decode(shot["data"]), layout


def test_index_html_renders_with_all_images_and_no_errors(report_dir: Path) -> None:
    index = report_dir / "index.html"
    assert index.is_file()
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    proc, port = _start_chromium(profile)
    try:
        images, errors, title, png, layout = asyncio.run(asyncio.wait_for(_inspect(port, index.as_uri()), 60))
        (report_dir / "screenshot.png").write_bytes(png)
    finally:
        _kill(proc)
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.poll() is not None
    assert title
    pngs = {p.name for p in report_dir.glob("*.png")} - {"screenshot.png"}
    assert len(images) >= len(pngs) >= 5, (images, pngs)
    broken = [i for i in images if not (i["complete"] and i["w"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert not errors, "\n".join(errors)
    shot = (report_dir / "screenshot.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
    # Read at a glance: the verdict (status, speedup, strategies), then the headline charts, starting on the
    # first screen (1280x900), then the tables; long lists folded.
    assert layout["verdict_lines"] == 3, layout
    assert layout["verdict"] < layout["chart"] < layout["viewport"], layout
    assert layout["chart"] < layout["speedup"] < layout["notebooks"], layout
    assert layout["folded"] >= 1, layout

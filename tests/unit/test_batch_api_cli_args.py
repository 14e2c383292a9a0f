"""``voorbeelden batch`` Batch API options that are refused: exit 2 with a message naming the problem, before
a simulator starts or a file changes (in process: the parser and the checks, no child process needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voorbeelden.cli import main


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "streaming"], "cannot go through the Batch API"),
        (["--strategy", "hedged"], "nothing to stream or to hedge"),
        (["--strategy", "combined"], "depend on earlier answers"),
        (["--cancel"], "nothing to cancel"),
        (["--export-requests", "x.jsonl", "--import-results", "y.jsonl"], "cannot be combined"),
        (["--import-results", "missing.jsonl"], "is not a file"),
    ],
)
def test_refusals_are_exit_2_with_a_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps({"begrip": "besluit"}) + "\n")
    code = main(["batch", str(inp), "--out", str(out), "--via", "openai-batch", "--no-progress", *extra])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and message in err
    assert not out.exists() and not (tmp_path / "out.jsonl.batches.json").exists()

"""``voorbeelden local-llm``'s refusals, in-process: each is exit 2 with one line naming the option, before any
server starts (no traceback, nothing left running)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voorbeelden.cli import main
from voorbeelden.local.engines import BINARY_ENV


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--slots", "3"], "--slots needs --engine llama-server"),
        (["--prompt-cache"], "--prompt-cache is llama-server's option"),
        (
            ["--engine", "llama-server", "--no-interrupt-requests"],
            "--no-interrupt-requests is llama-cpp-python",
        ),
        (["--engine", "llama-server", "--slots", "0"], "--slots must be an integer 1..64"),
        (["--n-ctx", "99999999999"], "--n-ctx must be at most"),
        (["--threads", "100000"], "--threads must be at most"),
        (["--threads", "0"], "--threads must be an integer >= 1"),
    ],
)
def test_refused_options_name_themselves(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["local-llm", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_llama_server_binary_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "absent"))
    assert main(["local-llm", "--engine", "llama-server"]) == 2
    err = capsys.readouterr().err
    assert "make install-local" in err and "Traceback" not in err


def test_a_directory_as_model_path_is_called_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(BINARY_ENV, str(fake))  # the llama-server engine needs no Python extra
    assert main(["local-llm", "--engine", "llama-server", "--model-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory, not a GGUF model file" in err and "does not exist" not in err

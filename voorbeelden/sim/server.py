"""Ways to run the simulator: in the foreground (CLI), in a daemon thread with its own event loop (tests,
notebooks), or as a subprocess (benchmarks, so the server does not share the client's GIL).

Whatever the mode, leaving :func:`running_simulator` closes everything it opened: the listening socket,
open connections, the loop, the thread or the process. Tests check that no thread or port is left behind.

A simulator subprocess also dies with its parent when the parent cannot clean up (SIGKILL, a crash, a kernel
killed under a notebook): it watches its stdin, a pipe whose only writer is the parent, and stops at end of
file, which the operating system delivers as soon as the parent is gone, whatever killed it. On Linux it also
asks for ``PR_SET_PDEATHSIG`` (SIGTERM when the thread that started it dies), but only when started from the
main thread: the kernel ties that signal to the starting *thread*, and a worker thread that ends would take
a simulator still in use with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from voorbeelden.server_url import ServerURL
from voorbeelden.sim.app import STATE_KEY, build_app
from voorbeelden.sim.config import SimConfig
from voorbeelden.sim.guard import GuardedAppRunner
from voorbeelden.sim.state import SimState

SHUTDOWN_TIMEOUT_S = 1.0
STARTUP_TIMEOUT_S = 30.0


async def _gc_when_idle(state: SimState, period_s: float = 0.5, max_gap_s: float = 30.0) -> None:
    """Move full garbage collections to quiet moments.

    With 1,000 requests in flight a full (generation 2) collection walks every live object and stalls the
    loop for tens of milliseconds, which every in-flight request would see as latency the profile never
    asked for. So: freeze the start-up objects, keep the cheap young-generation collections automatic, stop
    automatic full ones, and run a full collection when nothing is open (and something happened since the
    last one), or at the latest every ``max_gap_s`` so memory stays bounded under sustained load.
    """
    gc.collect()
    gc.freeze()
    old = gc.get_threshold()
    gc.set_threshold(old[0], old[1], 1_000_000_000)
    last_full = time.monotonic()
    seen = state.counters.requests_total
    try:
        while True:
            await asyncio.sleep(period_s)
            now = time.monotonic()
            c = state.counters
            if (c.open == 0 and c.requests_total != seen) or now - last_full > max_gap_s:
                gc.collect()
                last_full, seen = now, c.requests_total
    finally:
        gc.set_threshold(*old)


async def _watch_loop_lag(state: SimState, period_s: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(period_s)
        state.counters.loop_lag_ms.append((loop.time() - t - period_s) * 1000)


async def serve(
    config: SimConfig,
    stop: asyncio.Event,
    ready: Callable[[str], None] | None = None,
    *,
    manage_gc: bool = False,
) -> None:
    """Run until ``stop`` is set; calls ``ready(base_url)`` once the socket listens.

    ``manage_gc=True`` (the CLI, which owns its process) moves garbage collection to quiet moments; an
    in-process server leaves the host process's GC alone."""
    app = build_app(config)
    runner = GuardedAppRunner(
        app,
        read_timeout_s=config.read_timeout_s,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, backlog=2048)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else config.port
        host = config.host if ":" not in config.host else f"[{config.host}]"
        gc_task = asyncio.create_task(_gc_when_idle(app[STATE_KEY])) if manage_gc else None
        lag_task = asyncio.create_task(_watch_loop_lag(app[STATE_KEY]))
        if ready is not None:
            ready(f"http://{host}:{port}/v1")
        await stop.wait()
        lag_task.cancel()
        if gc_task is not None:
            gc_task.cancel()
    finally:
        app[STATE_KEY].shutdown.set()  # release hung requests so cleanup does not wait for them
        await runner.cleanup()


def _post_json(url: str, body: dict[str, Any] | None, timeout: float = 10.0) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class SimHandle(ServerURL):
    """What ``running_simulator`` yields: the base URL and the admin routes as methods. The methods use
    blocking HTTP, which is safe even inside an async test because the server runs on another loop."""

    def __init__(
        self, base_url: str, config: SimConfig, process: subprocess.Popen[str] | None = None
    ) -> None:
        self.base_url = base_url
        self.config = config
        self.process = process

    def counters(self) -> dict[str, Any]:
        return _post_json(self.root_url + "/admin/counters", None)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change SimConfig fields on the running server (validated there); returns the new config."""
        self.config.with_changes(changes, runtime=True)  # fail fast with the same message
        result = _post_json(self.root_url + "/admin/config", {k: _jsonable(v) for k, v in changes.items()})
        self.config = self.config.with_changes(changes, runtime=True)
        return result

    def reset_counters(self) -> None:
        _post_json(self.root_url + "/admin/reset", {})


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the server left (handlers of requests still in flight when a client was interrupted) and
    let them finish, as ``asyncio.run`` does; a loop closed over pending tasks prints "Task was destroyed but
    it is pending!" once per task."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


class _ThreadServer:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.url: str | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="voorbeelden-sim", daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            self.stop = asyncio.Event()
            loop.run_until_complete(serve(self.config, self.stop, self._on_ready))
        except BaseException as e:  # surface startup errors (port in use) in the caller's thread
            self.error = e
        finally:
            try:
                _cancel_remaining(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                self._ready.set()

    def _on_ready(self, url: str) -> None:
        self.url = url
        self._ready.set()

    def start(self) -> str:
        self.thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S):
            raise RuntimeError("simulator thread did not start within 30 s")
        if self.url is None:
            raise RuntimeError(f"simulator failed to start: {self.error!r}") from self.error
        return self.url

    def close(self) -> None:
        loop, stop = self.loop, self.stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed between the check and the call
                loop.call_soon_threadsafe(stop.set)
        self.thread.join(timeout=SHUTDOWN_TIMEOUT_S + 10)


def cli_args(config: SimConfig) -> list[str]:
    """The ``voorbeelden sim`` options that reproduce ``config`` (used to start a subprocess)."""
    args = [
        "--host", config.host, "--port", str(config.port), "--profile", config.profile,
        "--time-scale", repr(config.time_scale), "--seed", str(config.seed),
        "--fault-rate", repr(config.fault_rate), "--faults", ",".join(config.faults),
        "--max-body-bytes", str(config.max_body_bytes), "--read-timeout", repr(config.read_timeout_s),
    ]  # fmt: skip
    if config.profile_file is not None:  # the file names its own profile
        at = args.index("--profile")
        args[at : at + 2] = ["--profile-file", config.profile_file]
    if config.capacity is not None:
        args += ["--capacity", str(config.capacity)]
    if config.rpm is not None:
        args += ["--rpm", repr(config.rpm)]
    if config.tpm is not None:
        args += ["--tpm", repr(config.tpm)]
    args += ["--rate-limit-mode", config.rate_limit_mode, "--quantum", repr(config.rate_limit_quantum_s)]
    if config.charge_rejected:
        args.append("--charge-rejected")
    for rule in config.schedule:
        args += ["--fault-schedule", rule]
    if config.allow_remote:
        args.append("--allow-remote")
    return args


def _read_url(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    t = threading.Thread(
        target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    t.start()
    t.join(timeout)
    line = box[0].strip() if box else ""
    if not line.startswith("http"):
        raise RuntimeError(f"simulator subprocess did not print its URL (got {line!r}, exit {proc.poll()})")
    return line


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Any:
    """A ``preexec_fn`` that makes Linux send SIGTERM to the child when this thread ends, or None where that
    is unavailable or unsafe (not Linux, not the main thread). The libc lookup happens here, before the
    fork, so the child runs only one foreign call."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return setup


def _stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # end of file: the child's signal to stop
        # Give the child its graceful stop before any signal: a SIGTERM that lands while it is already
        # exiting (its handlers gone) would kill it with -15 instead of a clean exit 0.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=SHUTDOWN_TIMEOUT_S + 5)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def running_simulator(
    config: SimConfig | None = None, process: bool = False, **overrides: Any
) -> Iterator[SimHandle]:
    """Run a simulator for the duration of a ``with`` block and yield a :class:`SimHandle`.

    ``process=False`` (default) serves from a daemon thread with its own event loop: cheap, and usable
    from sync code, async tests and notebooks alike. ``process=True`` starts ``python -m voorbeelden sim``
    so that a benchmark's client and the server do not compete for one GIL.
    """
    cfg = (config or SimConfig()).with_changes(overrides) if overrides else (config or SimConfig())
    if not process:
        server = _ThreadServer(cfg)
        try:
            url = server.start()
            yield SimHandle(url, cfg)
        finally:
            server.close()
        return
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        # --quiet: a notebook shows a child's stderr as a red block; the banner is news only on a terminal.
        [sys.executable, "-m", "voorbeelden", "sim", *cli_args(cfg), "--quiet", "--exit-with-stdin"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,  # never written: its end of file tells the child that we are gone
        text=True,
        env=env,
        preexec_fn=_die_with_parent(),
    )
    try:
        url = _read_url(proc, STARTUP_TIMEOUT_S)
        yield SimHandle(url, cfg, proc)
    finally:
        _stop_process(proc)

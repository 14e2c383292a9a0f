"""The local server's process: watch the parent, then run ``python -m llama_cpp.server`` in this process.

Why a wrapper instead of starting ``llama_cpp.server`` directly: the server must die with its parent whatever
kills the parent (SIGKILL included, where no cleanup code runs). Two guards, both set up here before the
server starts:

- a pipe: the parent keeps the write end (not inheritable, so no other child holds it); when the parent dies
  the kernel closes it, the read below sees end-of-file and this process exits at once. Works whichever
  thread of the parent started us.
- ``PR_SET_PDEATHSIG`` (Linux, via ``prctl``): SIGKILL when the parent goes away. The kernel ties it to the
  parent *thread* that forked, so the launcher asks for it only when it runs on its main thread (a worker
  thread that ends would otherwise take the server with it).

Usage (internal): ``python -m voorbeelden.local.child --watch-fd FD [--parent-pid PID] [--pdeathsig] --
ARGS...`` where ARGS are ``llama_cpp.server``'s own options; with ``--exec``, ARGS are a program and its
options (llama.cpp's ``llama-server``), run as this process's own child: it gets ``PR_SET_PDEATHSIG`` towards
this wrapper (armed from the wrapper's main thread, which lives as long as the wrapper), SIGTERM/SIGINT sent
to the wrapper are passed on to it, and the wrapper's pipe watcher kills it before exiting. So the chain
launcher -> wrapper -> llama-server unwinds whichever link is killed. (``exec`` would drop the watcher.)
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` when the parent dies (Linux only); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def watch_parent(fd: int, before_exit: Callable[[], None] | None = None) -> threading.Thread:
    """Exit this process as soon as ``fd`` (the read end of the parent's pipe) reaches end-of-file
    (after ``before_exit``, which stops a program this wrapper runs)."""

    def watch() -> None:
        try:
            while os.read(fd, 1024):
                pass
        except OSError:
            pass
        if before_exit is not None:
            before_exit()
        os._exit(0)  # the parent is gone: nothing to save, and no one to answer

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def run_program(argv: list[str], watch_fd: int) -> int:
    """Run ``argv`` as a child that dies with this wrapper; returns its exit code."""
    wrapper = os.getpid()

    def arm() -> None:  # in the forked child, before exec: die with the wrapper, even one already gone
        set_pdeathsig()
        if os.getppid() != wrapper:
            os._exit(0)

    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=arm)

    parent_gone = threading.Event()

    def kill() -> None:
        parent_gone.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    watch_parent(watch_fd, before_exit=kill)
    code = proc.wait()
    if parent_gone.is_set():
        return 0  # stopped because the parent went away: nothing failed
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit(
            "usage: python -m voorbeelden.local.child --watch-fd FD [--pdeathsig] -- SERVER-ARGS"
        )
    split = argv.index("--")
    own, server_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(prog="voorbeelden.local.child")
    parser.add_argument("--watch-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--pdeathsig", action="store_true")
    parser.add_argument("--exec", action="store_true", help="SERVER-ARGS are a program and its options")
    args = parser.parse_args(own)
    if args.pdeathsig:
        set_pdeathsig()
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        os._exit(0)  # the parent died before the death signal was armed
    if args.exec:
        raise SystemExit(run_program(server_args, args.watch_fd))
    watch_parent(args.watch_fd)
    sys.argv = ["llama_cpp.server", *server_args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

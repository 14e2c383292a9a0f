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
ARGS...`` where ARGS are ``llama_cpp.server``'s own options.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1


def set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` when the parent dies (Linux only); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def watch_parent(fd: int) -> threading.Thread:
    """Exit this process as soon as ``fd`` (the read end of the parent's pipe) reaches end-of-file."""

    def watch() -> None:
        try:
            while os.read(fd, 1024):
                pass
        except OSError:
            pass
        os._exit(0)  # the parent is gone: nothing to save, and no one to answer

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


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
    args = parser.parse_args(own)
    if args.pdeathsig:
        set_pdeathsig()
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        os._exit(0)  # the parent died before the death signal was armed
    watch_parent(args.watch_fd)
    sys.argv = ["llama_cpp.server", *server_args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

"""Run a coroutine to completion from synchronous code, also when an event loop is already running.

``asyncio.run`` raises inside a running loop (a Jupyter kernel), and patching the loop with nest-asyncio
re-enters it in ways that break anyio/httpx. Instead, a coroutine submitted from inside a running loop goes
to one persistent background event loop in a daemon thread; the caller blocks on its result. The thread is
persistent so that repeated calls do not pay thread start-up, and daemon so that it never blocks exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=serve, name="voorbeelden-syncrun", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


def in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` when no loop runs in this thread; otherwise the background loop. Objects bound to a
    loop (an ``AsyncOpenAI`` client) must therefore be created inside ``coro``, not passed in."""
    if not in_running_loop():
        return asyncio.run(coro)
    loop = _background_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("run_sync called from the background loop itself; await the coroutine instead")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:  # Ctrl-C in the waiting thread must not leave the generation running behind it
        future.cancel()
        raise

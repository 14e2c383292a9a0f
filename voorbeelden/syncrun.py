"""THE sync bridge: run a coroutine to completion from synchronous code, also inside a running event loop
(a Jupyter kernel, where ``asyncio.run`` raises).

With no loop running in this thread it is ``asyncio.run``. With one running, the coroutine gets a fresh event
loop of its own in a worker thread and the caller blocks on it. Why not nest-asyncio (ipykernel's dependency
nest-asyncio2)? Patching the kernel's loop to re-enter it is process-wide state, and re-entered loops have
broken anyio/httpx (and so the openai client) before; a private loop per call needs no patch and no globals, and
a thread start costs well under a millisecond beside calls that take seconds. Objects bound to a loop (an
``AsyncOpenAI`` client) must therefore be created inside ``coro``, not passed in. Ctrl-C in the waiting thread
cancels the work and waits for it to unwind, so nothing keeps running behind the caller's back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, or the same on a private loop in a worker thread when a loop already runs here."""
    if not in_running_loop():
        return asyncio.run(coro)
    loop = asyncio.new_event_loop()
    task = loop.create_task(coro)  # created here, so Ctrl-C at any moment has something to cancel
    outcome: dict[str, Any] = {}
    # Waited on instead of Thread.join: a join interrupted by Ctrl-C can mark the thread finished while it
    # still runs (CPython 3.11's _wait_for_tstate_lock), and the cancelled work would then go unwaited.
    done = threading.Event()

    def work() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome["value"] = loop.run_until_complete(task)
        except BaseException as exc:  # handed back to the caller's thread
            outcome["error"] = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                done.set()

    thread = threading.Thread(target=work, name="voorbeelden-run-sync", daemon=True)
    try:
        thread.start()
        while not done.wait(0.1):
            pass
    except BaseException:
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # closed in the meantime: the work had finished
                pass
        if thread.ident is not None:
            done.wait()
        else:
            task.cancel()
            loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
            loop.close()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]

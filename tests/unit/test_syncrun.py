"""The one sync bridge: plain scripts, running loops (a Jupyter kernel), errors and Ctrl-C."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time

import pytest

from voorbeelden.syncrun import run_sync


async def _seven() -> int:
    await asyncio.sleep(0)
    return 7


def test_without_a_running_loop_it_is_asyncio_run() -> None:
    assert run_sync(_seven()) == 7


def test_inside_a_running_loop_it_runs_on_a_private_loop_and_leaves_no_thread() -> None:
    async def outer() -> tuple[int, bool]:
        kernel_loop = asyncio.get_running_loop()

        async def where() -> bool:
            return asyncio.get_running_loop() is kernel_loop

        return run_sync(_seven()), run_sync(where())

    assert asyncio.run(outer()) == (7, False)
    assert not [t for t in threading.enumerate() if t.name == "voorbeelden-run-sync"]


def test_errors_reach_the_caller() -> None:
    async def boom() -> None:
        raise LookupError("nope")

    async def outer() -> None:
        run_sync(boom())

    with pytest.raises(LookupError, match="nope"):
        asyncio.run(outer())


def test_ctrl_c_while_waiting_cancels_the_work() -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def outer() -> None:
        threading.Timer(0.3, _thread.interrupt_main).start()
        run_sync(slow())

    # A loop without asyncio.run's own SIGINT handler, like a Jupyter kernel's: Ctrl-C raises in the caller.
    loop = asyncio.new_event_loop()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(outer())
    finally:
        loop.close()
    assert time.monotonic() - t0 < 5
    assert seen == ["cancelled"]

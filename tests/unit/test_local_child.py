"""The wrapper that runs a server binary (llama-server) as its own child: whichever link of launcher ->
wrapper -> program is killed, the program does not outlive it. ``sleep`` stands in for the binary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")


def start() -> tuple[subprocess.Popen[bytes], int, psutil.Process]:
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "voorbeelden.local.child", "--watch-fd", str(read_fd), "--exec", "--",
           "sleep", "300"]  # fmt: skip
    wrapper = subprocess.Popen(cmd, pass_fds=(read_fd,), start_new_session=True)
    os.close(read_fd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(wrapper.pid).children()
        if children:
            return wrapper, write_fd, children[0]
        time.sleep(0.05)
    wrapper.kill()
    raise AssertionError("the wrapper did not start its program")


def test_closing_the_pipe_stops_program_and_wrapper() -> None:
    wrapper, write_fd, program = start()
    os.close(write_fd)  # what the kernel does when the launcher dies
    assert wrapper.wait(timeout=15) == 0
    _, alive = psutil.wait_procs([program], timeout=10)
    assert not alive


def test_sigterm_is_passed_on_and_the_programs_end_is_the_exit_code() -> None:
    wrapper, write_fd, program = start()
    try:
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=15) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs([program], timeout=10)
        assert not alive
    finally:
        os.close(write_fd)


def test_sigkill_of_the_wrapper_takes_the_program_with_it() -> None:
    wrapper, write_fd, program = start()
    try:
        wrapper.kill()  # no cleanup code runs: the program's death signal must
        wrapper.wait(timeout=10)
        _, alive = psutil.wait_procs([program], timeout=10)
        assert not alive
    finally:
        os.close(write_fd)

"""One way to keep the garbage collector out of a measurement, used by the trials and the fidelity benchmark.

A collector pause inside a timed generation delays its call starts and response reads (a measured stall is in
docs/MEASUREMENTS.md). Inside :func:`gc_paused` the objects that exist at entry (a
kernel's imports) are frozen out of the collector's scans; with ``disable=True`` the collector does not run at
all. On exit the collector's previous state is restored, whatever it was: no process-wide setting outlives the
measurement.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused(*, disable: bool = True) -> Iterator[None]:
    """Collect, freeze what exists, optionally disable the collector; undo all of it on exit."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    if disable:
        gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()

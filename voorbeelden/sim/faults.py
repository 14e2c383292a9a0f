"""Which fault, if any, a request gets.

Schedule rules come first and are deterministic (``synoniemen=503@1``: a test can make exactly one part
fail on exactly its first attempt). Otherwise, with probability ``fault_rate``, a kind is drawn uniformly
from ``faults``. The draw uses the request's keyed fault stream, so the same key/part/attempt gets the
same fault in a sequential and in a parallel trial.
"""

from __future__ import annotations

import numpy as np

from voorbeelden.sim.config import SimConfig


def decide_fault(config: SimConfig, part: str, attempt: int, rng: np.random.Generator) -> str | None:
    # Draw both numbers before looking at the schedule so the stream does not depend on the rules.
    u = rng.random()
    pick = rng.random()
    for rule in config.rules:
        if rule.matches(part, attempt):
            return rule.kind
    if config.fault_rate > 0 and config.faults and u < config.fault_rate:
        return config.faults[min(int(pick * len(config.faults)), len(config.faults) - 1)]
    return None

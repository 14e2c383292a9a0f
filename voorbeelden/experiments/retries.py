"""What the benchmarks assume about retries: the generator config scaled to the simulator's clock, and the
independent-retries prediction of delivered parts. One module for the experiments (notebooks) and the fault
matrix (CLI), kept free of pandas/numpy so ``voorbeelden bench faults`` starts quickly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

CALL_TIMEOUT_MODEL_S = 60.0

# Kinds the caller does not retry by design (a 200 whose body is not a chat completion) are predicted at
# 1 - p; a truncated answer (finish_reason "length") is kept as a partial part, so it counts as delivered.
NOT_RETRIED = frozenset({"malformed"})
DELIVERED_ANYWAY = frozenset({"truncated"})


def predicted_delivery(rate: float, retries: int, kind: str = "500") -> float:
    """Chance that one part is delivered when each attempt fails independently with ``rate``:
    ``1 - rate ** (retries + 1)`` for a retried kind (the deadline is ignored)."""
    if kind in DELIVERED_ANYWAY:
        return 1.0
    return 1.0 - float(rate) ** (1 if kind in NOT_RETRIED else int(retries) + 1)


def bench_config(
    time_scale: float,
    *,
    max_retries: int = 2,
    call_timeout_model_s: float = CALL_TIMEOUT_MODEL_S,
    call_timeout_s: float | None = None,
    deadline_s: float | None = None,
    retry_after_cap_s: float | None = None,
) -> Any:
    """The generator's default config with its call timeout and retry backoff scaled like the simulator.

    ``call_timeout_s`` / ``retry_after_cap_s`` given are used as they are (seconds on the wall clock); else the
    call timeout is ``call_timeout_model_s`` scaled (or the run-wide override of the environment, set by the
    report for a local server, whose queue counts in every call's time) and the honoured retry-after is capped
    at the default cap scaled.
    """
    from voorbeelden.config import GeneratorConfig, RetryPolicy, env_call_timeout_s

    base = RetryPolicy()
    retry = dataclasses.replace(
        base,
        max_retries=max_retries,
        backoff_base_s=base.backoff_base_s * time_scale,
        backoff_cap_s=base.backoff_cap_s * time_scale,
        retry_after_cap_s=(
            retry_after_cap_s
            if retry_after_cap_s is not None
            else base.retry_after_cap_s * max(time_scale, 1e-3)
        ),
    )
    if call_timeout_s is None:
        call_timeout_s = env_call_timeout_s() or call_timeout_model_s * time_scale
    extra = {} if deadline_s is None else {"deadline_s": deadline_s}
    return GeneratorConfig(call_timeout_s=call_timeout_s, retry=retry, **extra)

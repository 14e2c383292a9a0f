"""How the six calls of one generation are scheduled: one module per strategy (family), one registry.

Signature (every strategy)::

    async def strategy(run: RunContext, parts: Sequence[Part]) -> None

Modules, one job each: ``registry`` (names and facts, imports no strategy: cheap for ``--help``, parameter
validation, budgets), ``context`` (:class:`RunContext`, the one TaskGroup fan-out, the hedge latency
history), ``baselines`` (sequential, parallel, bounded), ``streaming``, ``split``, ``combined``, ``hedged``.

What a new strategy needs is already on the context: ``run.k`` and ``run.options`` (free-form strategy
options), ``run.caller`` for a call with custom messages (``combined``, ``split``), ``hedge=True`` /
``attempt_offset=100`` for backup calls (``hedged``), ``run.store(part, outcome)`` to publish a part it
computed itself, and ``run.client`` for streaming. Add it to :data:`~voorbeelden.strategies.registry.REGISTRY`;
``generate()`` stays unchanged.

One lookup of a runner: :func:`get_strategy` (``names()`` lists them, ``info(name)`` tells the facts without
importing the runner). Only the registry is imported with this package; ``RunContext``, ``LatencyHistory`` and ``fan_out`` (which
import openai through the caller) are loaded on first access.
"""

from __future__ import annotations

from voorbeelden._lazy import lazy_dir, lazy_exports
from voorbeelden.strategies.registry import (
    REGISTRY,
    Strategy,
    StrategyInfo,
    get_strategy,
    info,
    names,
)

_LAZY = {
    "RunContext": "voorbeelden.strategies.context",
    "LatencyHistory": "voorbeelden.strategies.context",
    "fan_out": "voorbeelden.strategies.context",
}

__all__ = [
    "REGISTRY",
    "Strategy",
    "StrategyInfo",
    "get_strategy",
    "info",
    "names",
    *_LAZY,
]


__getattr__ = lazy_exports(globals(), _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)

"""Which strategies exist and what the rest of the package needs to know about each, without importing them.

Why a light module of its own: ``voorbeelden --help`` lists the names, ``bench.params`` validates them, the
batch runner sizes its admission gate by how many calls a strategy has in flight and the consent plan counts
calls per generation, all before any call is made. None of those should pay for importing ``openai`` (about
0.4 s); the runner of a strategy is imported only when a generation runs it (:func:`get_strategy`).

Adding a strategy: write ``async def runner(run: RunContext, parts: Sequence[Part]) -> None`` in a module of
this package and add one :class:`StrategyInfo` line to :data:`REGISTRY`. ``generate()`` stays unchanged.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from voorbeelden.types import ALL_PARTS, Part

if TYPE_CHECKING:
    from voorbeelden.strategies.context import RunContext

Strategy = Callable[["RunContext", Sequence[Part]], Awaitable[None]]

# How many calls a strategy has in flight at once: one, run.k, or one per part.
Concurrency = Literal["one", "k", "parts"]
# How many calls a generation plans (retries, hedged backups and combined fallbacks come on top):
# one per part, one per item of the split parts (one per other part), or one for all parts.
Calls = Literal["per_part", "per_split_item", "one"]

COMBINED_LABEL = "combined"  # the record label of the one call that asks for all six parts
DEFAULT_SPLIT_PARTS: tuple[Part, ...] = (Part.PRAKTIJKVOORBEELDEN, Part.TEGENVOORBEELDEN)


@dataclass(frozen=True)
class StrategyInfo:
    """One strategy: its name, where its runner lives (``module:function``, imported on first use) and the
    facts budgets, consent estimates and the batch runner need."""

    name: str
    runner: str
    summary: str
    concurrency: Concurrency = "parts"
    calls: Calls = "per_part"
    streams: bool = False
    options: tuple[str, ...] = ()

    def in_flight(self, k: int, n_parts: int = len(ALL_PARTS)) -> int:
        """Calls one generation has in flight at most (split rounds and hedged backups aside)."""
        if self.concurrency == "one":
            return 1
        if self.concurrency == "k":
            return max(1, k)
        return n_parts

    def call_plan(
        self, counts: Mapping[Part, int], split_parts: Sequence[Part] = DEFAULT_SPLIT_PARTS
    ) -> dict[str, int]:
        """Planned calls of one generation by record label (a part name, or ``combined``)."""
        if self.calls == "one":
            return {COMBINED_LABEL: 1}
        split = self.calls == "per_split_item"
        return {p.value: (counts[p] if split and p in split_parts and p.is_list else 1) for p in ALL_PARTS}

    def calls_per_generation(self, counts: Mapping[Part, int]) -> int:
        return sum(self.call_plan(counts).values())


_P = "voorbeelden.strategies"
REGISTRY: dict[str, StrategyInfo] = {
    s.name: s
    for s in (
        StrategyInfo("sequential", f"{_P}.baselines:sequential", "one call after the other", "one"),
        StrategyInfo("parallel", f"{_P}.baselines:parallel", "all six calls at once"),
        StrategyInfo("bounded", f"{_P}.baselines:bounded", "at most k calls at once", "k", options=("k",)),
        StrategyInfo("streaming", f"{_P}.streaming:streaming", "all six, streamed", streams=True),
        StrategyInfo(
            "split",
            f"{_P}.split:split",
            "list parts as one-item calls",
            calls="per_split_item",
            options=("split_parts", "split_max_calls"),
        ),
        StrategyInfo(
            "combined",
            f"{_P}.combined:combined",
            "one JSON call for all six, per-part fallback",
            calls="one",
            options=("combined_max_tokens", "combined_format"),
        ),
        StrategyInfo(
            "hedged",
            f"{_P}.hedged:hedged",
            "a backup request for a slow part",
            options=("hedge_delay_s", "hedge_percentile", "hedge_min_samples"),
        ),
    )
}


def names() -> tuple[str, ...]:
    """The strategy names, sorted."""
    return tuple(sorted(REGISTRY))


def info(name: str) -> StrategyInfo:
    """The registry entry of ``name``; an unknown name is a ValueError that lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(names())}") from None


# The numeric strategy options and what each accepts: (integer?, lowest, highest).
_NUMERIC_OPTIONS: dict[str, tuple[bool, float, float]] = {
    "k": (True, 1, math.inf),
    "hedge_delay_s": (False, 0.0, math.inf),
    "hedge_percentile": (False, 0.0, 100.0),
    "hedge_min_samples": (True, 1, math.inf),
    "split_max_calls": (True, 1, math.inf),
    "combined_max_tokens": (True, 1, math.inf),
}


def check_options(options: Mapping[str, object]) -> None:
    """A ValueError naming the first numeric strategy option that is not a finite number in its range.

    Checked before any call: a NaN ``hedge_delay_s`` would otherwise reach ``asyncio.wait`` as a timeout (NaN
    passes every range comparison), and a bad value should cost nothing. Options a strategy does not take are
    allowed (a notebook passes one options mapping to every strategy it compares)."""
    for name, (integer, lo, hi) in _NUMERIC_OPTIONS.items():
        value = options.get(name)
        if value is None:
            continue
        kind = "an integer" if integer else "a finite number"
        ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
        if ok and integer:
            ok = float(value).is_integer()
        if not ok or not lo <= value <= hi:  # type: ignore[operator]
            upper = "" if hi == math.inf else f" and <= {hi:g}"
            raise ValueError(f"strategy option {name} must be {kind} >= {lo:g}{upper}, got {value!r}")


def get_strategy(name: str) -> Strategy:
    """THE lookup of a strategy's runner: the coroutine function of ``name``, its module imported now (and
    with it openai); an unknown name is a ValueError that lists the known ones. For the facts about a
    strategy without importing it, use :func:`info`; for the names, :func:`names`."""
    module, _, attr = info(name).runner.partition(":")
    fn: Strategy = getattr(importlib.import_module(module), attr)
    return fn

"""List prices of a few OpenAI models, to estimate what a run will cost before asking for consent.

A price table is only as true as its date: these are OpenAI's published list prices (USD per million tokens,
standard tier, no batch or cache discount) as announced with GPT-4.1 on :data:`PRICES_AS_OF`, from
:data:`PRICES_SOURCE`. They are not fetched live; a model that is not in the table has an *unknown* price,
and the estimate says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2025-04-14"
PRICES_SOURCE = "https://openai.com/api/pricing/"

# model -> (USD per 1M input tokens, USD per 1M output tokens)
PRICES_USD_PER_M: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
}


# The Batch API (OpenAI's, results within a 24-hour window) costs half the list price, for input and output
# alike (https://platform.openai.com/docs/guides/batch, as of PRICES_AS_OF).
BATCH_DISCOUNT = 0.5
BATCH_WINDOW = "24h"


@dataclass(frozen=True)
class Price:
    model: str
    input_per_m: float
    output_per_m: float

    def cost(self, tokens_in: float, tokens_out: float) -> float:
        return (tokens_in * self.input_per_m + tokens_out * self.output_per_m) / 1e6

    def batch(self) -> Price:
        """The Batch API price: OpenAI's published discount on the same list price (see BATCH_DISCOUNT)."""
        return Price(self.model, self.input_per_m * BATCH_DISCOUNT, self.output_per_m * BATCH_DISCOUNT)


def price_of(model: str) -> Price | None:
    """The list price of ``model``, also for a dated snapshot (``gpt-4.1-2025-04-14``); None when unknown."""
    name = model.strip().lower()
    if name in PRICES_USD_PER_M:
        return Price(name, *PRICES_USD_PER_M[name])
    # a dated snapshot of a listed model: the longest listed name it starts with, followed by "-<digits>"
    for known in sorted(PRICES_USD_PER_M, key=len, reverse=True):
        rest = name.removeprefix(known)
        if rest != name and rest.startswith("-") and rest[1:2].isdigit():
            return Price(name, *PRICES_USD_PER_M[known])
    return None

"""A paid endpoint only with consent: say what a run will do there, then ask (or stop).

An analyst often has ``OPENAI_API_KEY`` set in their shell; with nothing else configured, ``backend: auto``
then means OpenAI's paid API. Before ``voorbeelden report`` (or a ``batch`` above
:data:`BATCH_CONSENT_CALLS` calls) sends anything to a remote endpoint, it prints a :class:`Plan` (host and
the variable that chose it, calls, estimated tokens, estimated cost when the model's price is known) and asks.
``--yes`` answers for the user; without a terminal to ask on, the run stops before any call and says how to
proceed. Local endpoints (the simulator, Ollama, vLLM on this machine) never need consent.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from voorbeelden.prices import BATCH_DISCOUNT, BATCH_WINDOW, PRICES_AS_OF, PRICES_SOURCE, price_of

BATCH_CONSENT_CALLS = 100  # a batch planning more calls than this against a remote endpoint asks first
EXIT_NO_CONSENT = 4  # report and batch: stopped before any call, see the README's exit codes


def is_remote(base_url: str | None) -> bool:
    """True unless the URL points at this machine (localhost or a loopback address). No URL means the SDK's
    default, OpenAI's API: remote."""
    if not base_url:
        return True
    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


@dataclass(frozen=True)
class Plan:
    """What a run will send to one endpoint. Token counts are estimates: input from the prompts' length
    (about 4 characters per token), output at most the per-part token caps; retries are not included."""

    action: str  # e.g. "voorbeelden report with notebooks/params/default.yaml"
    host: str
    chosen_by: str  # the variable or option that chose this endpoint
    calls: int
    tokens_in: int
    tokens_out_max: int
    model: str
    details: tuple[str, ...] = ()
    batch_api: bool = False  # sent through the provider's Batch API: half the list price, a 24-hour window

    def cost_line(self) -> str:
        price = price_of(self.model)
        if price is None:
            return (
                f"estimated cost: unknown (no list price for model {self.model!r} in the table of "
                f"{PRICES_AS_OF}); check your provider's price list"
                + (f"; the Batch API usually costs {BATCH_DISCOUNT:.0%} of it" if self.batch_api else "")
            )
        if self.batch_api:
            full = price.cost(self.tokens_in, self.tokens_out_max)
            price = price.batch()
        low = price.cost(self.tokens_in, 0)
        high = price.cost(self.tokens_in, self.tokens_out_max)
        tier = (
            f"Batch API price, {BATCH_DISCOUNT:.0%} of the list price (${full:,.2f} online), results within "
            f"the {BATCH_WINDOW} window, not at once; list price"
            if self.batch_api
            else "list price"
        )
        return (
            f"estimated cost: up to ${high:,.2f} for {self.model} (input ${low:,.2f} + output at the token caps; "
            f"retries extra; {tier} as of {PRICES_AS_OF}, {PRICES_SOURCE})"
        )

    def describe(self) -> str:
        lines = [
            f"{self.action} would send requests to a REMOTE endpoint, {self.host} (chosen by {self.chosen_by}),",
            f"which may be paid: about {self.calls:,} chat-completion calls, about {self.tokens_in:,} input tokens "
            f"and at most {self.tokens_out_max:,} output tokens (model {self.model}).",
            self.cost_line(),
        ]
        lines += [f"  {d}" for d in self.details]
        return "\n".join(lines)


def confirm(
    plan: Plan,
    *,
    yes: bool,
    how_to_avoid: str,
    stdin: TextIO | None = None,
    stderr: TextIO | None = None,
) -> bool:
    """Print ``plan`` on stderr and return True to go ahead: with ``yes``, or when the user answers y on an
    interactive terminal. Without a terminal (CI, a pipe) it returns False after saying how to proceed."""
    stdin = sys.stdin if stdin is None else stdin
    stderr = sys.stderr if stderr is None else stderr
    print(plan.describe(), file=stderr)
    if yes:
        print("--yes given: going ahead.", file=stderr)
        return True
    interactive = bool(getattr(stdin, "isatty", lambda: False)())
    if not interactive:
        print(
            "Stopped before any call: this needs your consent and there is no terminal to ask on. "
            f"To proceed, rerun with --yes. {how_to_avoid}",
            file=stderr,
        )
        return False
    print("Proceed? [y/N] ", end="", file=stderr, flush=True)
    answer = stdin.readline().strip().lower()
    if answer in ("y", "yes", "j", "ja"):
        return True
    print(f"Not confirmed: nothing was sent. {how_to_avoid}", file=stderr)
    return False

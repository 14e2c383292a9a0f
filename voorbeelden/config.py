"""Every per-part knob in one place.

A term tool in the field meant to send per-part temperatures but a config change left them unread; keeping
model, temperature, token budget and item count together per part (and testing that they reach the request)
is the guard against that.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from voorbeelden.types import ALL_PARTS, Part

DEFAULT_MODEL = "gpt-4.1"


def default_model() -> str:
    """``OPENAI_MODEL`` when set, so one environment variable switches every part."""
    return os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL


@dataclass(frozen=True)
class PartSettings:
    """What one part's request carries besides the prompt."""

    model: str
    temperature: float
    max_tokens: int
    count: int
    seed: int | None = None  # sent as ``seed`` when set (servers that honour it repeat their sampling)

    def __post_init__(self) -> None:
        _finite("PartSettings", temperature=self.temperature)
        if not self.model:
            raise ValueError("model must be a non-empty name")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature {self.temperature} is outside 0..2")
        if self.max_tokens < 1 or self.count < 1:
            raise ValueError("max_tokens and count must be at least 1")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")


# (count, temperature, max_tokens). praktijkvoorbeelden keeps the field's 1,500-token cap: the field's output
# was cut there, and reproducing that is part of what the benchmarks measure.
_DEFAULTS: dict[Part, tuple[int, float, int]] = {
    Part.VOORBEELDZINNEN: (3, 0.5, 800),
    Part.PRAKTIJKVOORBEELDEN: (3, 0.6, 1500),
    Part.TEGENVOORBEELDEN: (3, 0.6, 1200),
    Part.SYNONIEMEN: (5, 0.2, 300),
    Part.ANTONIEMEN: (5, 0.2, 300),
    Part.TOELICHTING: (1, 0.3, 800),
}


# Run-wide request overrides for measurements, read from the environment like OPENAI_MODEL, so a report can
# set them for notebooks it does not own: paired trials on a real model need comparable output lengths
# (temperature 0 and a fixed seed), a slow local model needs a token cap, and on a server that queues, a
# call's time includes its wait in the queue (a longer call timeout). The report runner sets them from its
# parameter file's ``generation:`` block; unset, every part keeps its own temperature and token budget and no
# seed is sent.
TEMPERATURE_ENV = "VOORBEELDEN_TEMPERATURE"
SEED_ENV = "VOORBEELDEN_SEED"
MAX_TOKENS_ENV = "VOORBEELDEN_MAX_TOKENS"
CALL_TIMEOUT_ENV = "VOORBEELDEN_CALL_TIMEOUT_S"


def env_call_timeout_s() -> float | None:
    """``VOORBEELDEN_CALL_TIMEOUT_S`` when set (seconds per call attempt), else None."""
    value = _env_number(CALL_TIMEOUT_ENV, float)
    if value is not None and value <= 0:
        raise ValueError(f"{CALL_TIMEOUT_ENV} must be > 0, got {value}")
    return None if value is None else float(value)


def _env_number(name: str, kind: type[float] | type[int]) -> float | int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}={raw!r} is not a finite number")
    return value


def _finite(owner: str, **values: object) -> None:
    """A ValueError naming ``owner.field`` for a value that is not a finite real number. Why here: NaN passes
    every ``<``/``<=`` range check (each comparison is False), so a NaN timeout or deadline would be taken
    and silently mean "never"."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")


def default_part_settings(model: str | None = None) -> dict[Part, PartSettings]:
    model = model or default_model()
    temperature = _env_number(TEMPERATURE_ENV, float)
    seed = _env_number(SEED_ENV, int)
    cap = _env_number(MAX_TOKENS_ENV, int)
    return {
        part: PartSettings(
            model=model,
            temperature=temp if temperature is None else float(temperature),
            max_tokens=max_tokens if cap is None else min(max_tokens, int(cap)),
            count=count,
            seed=None if seed is None else int(seed),
        )
        for part, (count, temp, max_tokens) in _DEFAULTS.items()
    }


@dataclass(frozen=True)
class RetryPolicy:
    """Mirrors the openai SDK defaults (2 retries, 0.5 s doubling to 8 s, up to 25% jitter) but runs in our
    own loop so that every attempt becomes a CallRecord; the SDK's internal retries would be invisible."""

    max_retries: int = 2
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0
    jitter: float = 0.25
    retry_after_cap_s: float = 60.0
    # Fresh samples after an answer with no usable item (a parse failure), on top of ``max_retries``.
    parse_retries: int = 1

    def __post_init__(self) -> None:
        _finite(
            "RetryPolicy",
            backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s,
            jitter=self.jitter,
            retry_after_cap_s=self.retry_after_cap_s,
        )
        for name in ("max_retries", "parse_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be an integer >= 0, got {value!r}")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0 or self.retry_after_cap_s < 0:
            raise ValueError("backoff and retry-after caps must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")


@dataclass(frozen=True)
class GeneratorConfig:
    """Per-part settings plus the call policy. Frozen: derive variants with :meth:`replace`/:meth:`with_model`."""

    parts: Mapping[Part, PartSettings] = field(default_factory=default_part_settings)
    call_timeout_s: float = field(default_factory=lambda: env_call_timeout_s() or 60.0)
    deadline_s: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    k: int = 3

    def __post_init__(self) -> None:
        missing = [str(p) for p in ALL_PARTS if p not in self.parts]
        if missing:
            raise ValueError(f"GeneratorConfig.parts lacks settings for {', '.join(missing)}")
        _finite("GeneratorConfig", call_timeout_s=self.call_timeout_s, deadline_s=self.deadline_s)
        if self.call_timeout_s <= 0:
            raise ValueError("call_timeout_s must be > 0")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError("deadline_s must be > 0 (or None for no deadline)")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"GeneratorConfig.k must be an integer >= 1, got {self.k!r}")

    def settings(self, part: Part | str) -> PartSettings:
        return self.parts[Part(part)]

    def with_model(self, model: str) -> GeneratorConfig:
        return self.replace(parts={p: dataclasses.replace(s, model=model) for p, s in self.parts.items()})

    def with_sampling(self, temperature: float | None = None, seed: int | None = None) -> GeneratorConfig:
        """Every part at one ``temperature`` (None keeps each part's own) and with ``seed`` (None sends none).

        For measurements on a real model: temperature 0 and a fixed seed make two runs of the same prompt
        produce (nearly) the same number of tokens, so a paired sequential/parallel comparison compares the
        schedule, not the dice. The per-part temperatures remain the default configuration."""
        changes: dict[str, object] = {"seed": seed}
        if temperature is not None:
            changes["temperature"] = float(temperature)
        return self.replace(parts={p: dataclasses.replace(s, **changes) for p, s in self.parts.items()})  # type: ignore[arg-type]

    def with_max_tokens(self, cap: int) -> GeneratorConfig:
        """Every part's ``max_tokens`` capped at ``cap`` (a quick run on a slow model)."""
        return self.replace(
            parts={
                p: dataclasses.replace(s, max_tokens=min(s.max_tokens, cap)) for p, s in self.parts.items()
            }
        )

    def with_policy(
        self,
        *,
        deadline_s: float | None = None,
        call_timeout_s: float | None = None,
        max_retries: int | None = None,
        k: int | None = None,
    ) -> GeneratorConfig:
        """This config with each given call-policy setting replaced (None keeps it): how code that holds a
        config and separate settings (a batch's ``--max-retries``) makes the one config a generation takes."""
        changes: dict[str, object] = {
            name: value
            for name, value in (("deadline_s", deadline_s), ("call_timeout_s", call_timeout_s), ("k", k))
            if value is not None
        }
        if max_retries is not None:
            changes["retry"] = dataclasses.replace(self.retry, max_retries=max_retries)
        return self.replace(**changes) if changes else self

    def replace(self, **changes: object) -> GeneratorConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return {
            "parts": {str(p): dataclasses.asdict(s) for p, s in self.parts.items()},
            "call_timeout_s": self.call_timeout_s,
            "deadline_s": self.deadline_s,
            "retry": dataclasses.asdict(self.retry),
            "k": self.k,
        }

"""Latency profiles: how long a call takes for each part, as time to first token plus output tokens at a
token rate, each drawn from a log-normal distribution (latencies are positive and right-skewed).

Modelling output *tokens* rather than seconds is what makes ``max_tokens`` matter: a part that needs more
tokens than the request allows is cut (``finish_reason="length"``) and finishes sooner, exactly the failure
the field saw with praktijkvoorbeelden. All figures are unscaled seconds; the server multiplies by
``time_scale``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voorbeelden.types import ALL_PARTS


@dataclass(frozen=True)
class LogNormal:
    """A log-normal given by its median and the sigma of its log; ``sigma=0`` is a constant."""

    median: float
    sigma: float = 0.0

    def draw(self, rng: np.random.Generator) -> float:
        z = rng.standard_normal()  # always draw, so streams stay aligned whatever sigma is
        return self.median * math.exp(self.sigma * z)

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)


@dataclass(frozen=True)
class PartProfile:
    """What one part's call draws: time to first token, output tokens and the token rate, each on its own so
    that ``max_tokens`` can cut the tokens without changing the rate."""

    ttft_s: LogNormal
    tokens: LogNormal
    tokens_per_s: LogNormal


@dataclass(frozen=True)
class Sample:
    """One drawn call: what the server waits and what it reports."""

    ttft_s: float
    tokens_needed: int
    tokens_out: int
    tokens_per_s: float

    @property
    def truncated(self) -> bool:
        return self.tokens_out < self.tokens_needed

    @property
    def service_s(self) -> float:
        return self.ttft_s + self.tokens_out / self.tokens_per_s


class PartTable(dict[str, PartProfile]):
    """Per-part distributions, indexable by the part name or by :class:`voorbeelden.types.Part` (a str enum
    whose hash is not its value's, so a plain dict would miss it)."""

    def __getitem__(self, key: object) -> PartProfile:
        return super().__getitem__(_name(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(_name(key))

    def get(self, key: object, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(_name(key), default)


def _name(part: object) -> str:
    return str(getattr(part, "value", part))


@dataclass(frozen=True)
class Batching:
    """How a server that batches concurrent requests into shared decode steps slows each of them down.

    ``speed[n - 1]`` is the speed of every stream while ``n`` streams share the server, relative to a stream
    served alone (``speed[0]`` is 1): a call's work (its time to first token plus its decode time, both as
    drawn for a call served alone) advances at that rate, re-evaluated whenever a stream starts or ends
    (processor sharing). At most ``max_batch`` streams are served at once (``len(speed)``); more wait in
    arrival order, as llama.cpp's ``llama-server -np N`` or vLLM's ``max_num_seqs`` do. Total throughput at
    ``n`` streams is ``n * speed[n - 1]`` times one stream's.
    """

    speed: tuple[float, ...]
    source: str = ""

    def __post_init__(self) -> None:
        speed = tuple(self.speed)
        if not speed:
            raise ValueError("batching.speed needs one value per number of streams, 1..max_batch")
        for i, v in enumerate(speed):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"batching.speed[{i}] must be a finite number > 0, got {v!r}")
        if abs(speed[0] - 1.0) > 1e-9:
            raise ValueError(f"batching.speed[0] (one stream alone) must be 1, got {speed[0]!r}")
        object.__setattr__(self, "speed", tuple(float(v) for v in speed))

    @property
    def max_batch(self) -> int:
        return len(self.speed)

    def rate(self, streams: int) -> float:
        """Per-stream speed with ``streams`` active (1 for zero or one; capped at ``max_batch``)."""
        return self.speed[min(max(streams, 1), self.max_batch) - 1]

    def throughput(self, streams: int) -> float:
        """Total decode rate with ``streams`` active, relative to one stream alone."""
        n = min(max(streams, 0), self.max_batch)
        return n * self.rate(n)

    @classmethod
    def step_model(cls, max_batch: int, cost: float, source: str = "") -> Batching:
        """Per-stream speed ``1 / (1 + cost * (n - 1))``: each decode step takes a fixed time plus ``cost``
        times that for every further stream in the batch (a CPU or memory-bound decoder's first-order
        shape); ``cost`` 0 is perfect batching, 1 is no gain at all."""
        if max_batch < 1 or not math.isfinite(cost) or cost < 0:
            raise ValueError(f"step_model needs max_batch >= 1 and cost >= 0, got {max_batch!r}, {cost!r}")
        return cls(tuple(1.0 / (1.0 + cost * (n - 1)) for n in range(1, max_batch + 1)), source)

    def to_dict(self) -> dict[str, Any]:
        return {"max_batch": self.max_batch, "speed": list(self.speed), "source": self.source}


def batching_from_dict(data: Any, where: str = "batching") -> Batching:
    """The JSON form ``{"speed": [1.0, 0.8, ...], "max_batch": N}`` (``max_batch``, when given, must equal
    the number of speeds); errors name the field."""
    if not isinstance(data, dict) or not isinstance(data.get("speed"), list):
        raise ValueError(f"{where} must be an object with 'speed': a list, one value per number of streams")
    speed = data["speed"]
    mb = data.get("max_batch", len(speed))
    if isinstance(mb, bool) or not isinstance(mb, int) or mb != len(speed):
        raise ValueError(f"{where}.max_batch must equal the number of speeds ({len(speed)}), got {mb!r}")
    try:
        return Batching(tuple(speed), str(data.get("source", "")))
    except ValueError as e:
        raise ValueError(str(e).replace("batching.", f"{where}.")) from None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    source: str
    parts: dict[str, PartProfile]
    generic: PartProfile
    extra: dict[str, PartProfile] = field(default_factory=dict)
    # None: calls do not slow each other (the server's --capacity, if any, is the only limit)
    batching: Batching | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", PartTable({_name(k): v for k, v in self.parts.items()}))

    def part_profile(self, part: str) -> PartProfile:
        part = _name(part)
        if part in self.parts:
            return self.parts[part]
        if part == "combined":
            # One call producing all six: one TTFT, the sum of the six outputs at the same token rate.
            ps = list(self.parts.values())
            return PartProfile(
                ttft_s=ps[0].ttft_s,
                tokens=LogNormal(sum(p.tokens.median for p in ps), max(p.tokens.sigma for p in ps)),
                tokens_per_s=ps[0].tokens_per_s,
            )
        return self.extra.get(part, self.generic)

    def sample(self, part: str, rng: np.random.Generator, max_tokens: int | None = None) -> Sample:
        pp = self.part_profile(part)
        ttft = pp.ttft_s.draw(rng)
        needed = max(1, round(pp.tokens.draw(rng)))
        tps = pp.tokens_per_s.draw(rng)
        out = needed if max_tokens is None else max(1, min(needed, int(max_tokens)))
        return Sample(ttft_s=ttft, tokens_needed=needed, tokens_out=out, tokens_per_s=tps)

    def sample_service_s(self, part: str, rng: np.random.Generator, max_tokens: int | None = None) -> float:
        """Unscaled seconds for one call, so a benchmark can compute E[max of the six] by Monte Carlo."""
        return self.sample(part, rng, max_tokens).service_s


def _lognormal(data: Any, where: str) -> LogNormal:
    if not isinstance(data, dict) or "median" not in data:
        raise ValueError(f"{where} must be an object with 'median' (and 'sigma')")
    median, sigma = data["median"], data.get("sigma", 0.0)
    for name, v in (("median", median), ("sigma", sigma)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{where}.{name} must be a finite number, got {v!r}")
    if median <= 0 or sigma < 0:
        raise ValueError(f"{where} needs median > 0 and sigma >= 0, got {median!r}, {sigma!r}")
    return LogNormal(float(median), float(sigma))


def _part_profile(data: Any, where: str) -> PartProfile:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object with ttft_s, tokens and tokens_per_s")
    return PartProfile(
        _lognormal(data.get("ttft_s"), f"{where}.ttft_s"),
        _lognormal(data.get("tokens"), f"{where}.tokens"),
        _lognormal(data.get("tokens_per_s"), f"{where}.tokens_per_s"),
    )


def profile_from_dict(data: Any) -> Profile:
    """A profile from its JSON form (``voorbeelden calibrate`` writes it; see
    :func:`voorbeelden.sim.calibrate.profile_to_dict`). Every part must be present; errors name the field."""
    if not isinstance(data, dict):
        raise ValueError("a profile file holds one JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the profile needs a non-empty 'name'")
    if name in PROFILES:
        raise ValueError(f"profile name {name!r} is a built-in profile's; give the file another name")
    parts = data.get("parts")
    if not isinstance(parts, dict):
        raise ValueError("the profile needs 'parts': one entry per part")
    missing = [p.value for p in ALL_PARTS if p.value not in parts]
    if missing:
        raise ValueError(f"the profile lacks part(s) {', '.join(missing)}")
    extra = data.get("extra") or {}
    batching = data.get("batching")
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
        parts={p: _part_profile(v, f"parts.{p}") for p, v in parts.items()},
        generic=_part_profile(data.get("generic", parts[ALL_PARTS[0].value]), "generic"),
        extra={p: _part_profile(v, f"extra.{p}") for p, v in dict(extra).items()},
        batching=None if batching is None else batching_from_dict(batching),
    )


def load_profile_file(path: str | Path) -> tuple[Profile, dict[str, Any]]:
    """The profile in a JSON file and the file's whole content (which may carry ``capacity`` and ``fit``).
    Raises ValueError with the file name for a missing or malformed file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read profile file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ValueError(f"profile file {path} is not JSON: {e}") from None
    try:
        return profile_from_dict(data), data
    except ValueError as e:
        raise ValueError(f"profile file {path}: {e}") from None


def _by_tokens(
    ttft: LogNormal, tps: LogNormal, tokens: dict[str, float], sigma: float
) -> dict[str, PartProfile]:
    return {part: PartProfile(ttft, LogNormal(n, sigma), tps) for part, n in tokens.items()}


# Profiles in which every part (and any other) takes the same draw distribution:
# name -> (description, source, the distribution).
_ONE_FOR_ALL: dict[str, tuple[str, str, PartProfile]] = {
    # --- uniform-2s ------------------------------------------------------------------------------------
    # Source: the seed project's claim that the six calls are equal, ~2 s each (so parallel gives 6x).
    # A deliberately optimistic baseline: 0.3 s TTFT + 170 tokens at 100 tokens/s, with a tiny spread.
    "uniform-2s": (
        "six equal ~2 s calls with a tiny spread (the optimistic 6x case)",
        "the seed project's claim (six equal ~2 s calls); not a measurement",
        PartProfile(LogNormal(0.3, 0.02), LogNormal(170, 0.02), LogNormal(100.0, 0.02)),
    ),
    # --- heavy-tail ------------------------------------------------------------------------------------
    # Source: an assumption to stress strategies (hedging, timeouts), not a measurement. TTFT log-normal with
    # median 1.1 s and sigma 1.1 (mean ~2.0 s) plus 100 tokens at 100 tokens/s: mean ~3 s, p99 ~15 s and
    # p99.9 ~34 s, i.e. occasional 5-10x stragglers.
    "heavy-tail": (
        "log-normal, mean ~3 s, occasional 5-10x stragglers",
        "assumption (stress profile for hedging and timeouts)",
        PartProfile(LogNormal(1.1, 1.1), LogNormal(100, 0.1), LogNormal(100.0, 0.05)),
    ),
}


def _one_for_all(name: str) -> Profile:
    description, source, pp = _ONE_FOR_ALL[name]
    return Profile(
        name=name, description=description, source=source, parts={p.value: pp for p in ALL_PARTS}, generic=pp
    )


UNIFORM_2S = _one_for_all("uniform-2s")
HEAVY_TAIL = _one_for_all("heavy-tail")

# --- definitie-app -------------------------------------------------------------------------------------
# Source: a field observation of a Dutch term tool on gpt-4.1 (reported in the project's design notes, which are
# not part of this repository; the figures are all here), all six calls started at
# once, observed antoniemen ~2 s, synoniemen ~2 s, voorbeeldzinnen ~3 s, toelichting ~5 s,
# tegenvoorbeelden ~9 s, praktijkvoorbeelden > 30 s, the latter needing ~1,830-1,850 output tokens and cut
# at max_tokens=1,500. Modelled as TTFT 0.5 s + tokens / 50 tokens/s, with 50 tokens/s chosen so that
# 1,500 tokens take ~30 s; the other parts' token counts are back-solved from their observed seconds.
_DA_TTFT = LogNormal(0.5, 0.25)
_DA_TPS = LogNormal(50.0, 0.08)
_DA_TOKENS = {
    "antoniemen": 75,
    "synoniemen": 75,
    "voorbeeldzinnen": 125,
    "toelichting": 225,
    "tegenvoorbeelden": 425,
}


def _term_tool(name: str, description: str, source: str, ttft: LogNormal, tps: LogNormal) -> Profile:
    """The term tool's per-part output token counts at a given TTFT and token rate."""
    parts = {
        **_by_tokens(ttft, tps, _DA_TOKENS, 0.12),
        "praktijkvoorbeelden": PartProfile(ttft, LogNormal(1840, 0.006), tps),
    }
    generic = PartProfile(ttft, LogNormal(150, 0.12), tps)
    return Profile(name=name, description=description, source=source, parts=parts, generic=generic)


DEFINITIE_APP = _term_tool(
    "definitie-app",
    "per-part latencies of a real term tool (gpt-4.1): 2, 2, 3, 5, 9 and >30 s",
    "field observation of a Dutch term tool (observed per-part latencies, gpt-4.1)",
    _DA_TTFT,
    _DA_TPS,
)

# --- gpt-4o-aa-2026 ------------------------------------------------------------------------------------
# Source: Artificial Analysis medians for GPT-4o on the OpenAI API, as cited by the "Fastest LLM - Speed &
# Latency Comparison" tool (https://induwara.lk/tools/ai-llm-speed-comparison, "verified 2026-06-24"):
# output speed 131 tokens/s, time to first token 0.45 s. Those two medians are published; the spreads
# (sigma 0.3 on TTFT, 0.15 on the token rate) and the per-part output token counts (the definitie-app
# counts above) are ASSUMPTIONS of this project.
_AA_TTFT = LogNormal(0.45, 0.3)
_AA_TPS = LogNormal(131.0, 0.15)
GPT_4O_AA = _term_tool(
    "gpt-4o-aa-2026",
    "GPT-4o published medians: TTFT 0.45 s, 131 tokens/s (Artificial Analysis, 2026-06-24)",
    "Artificial Analysis medians via induwara.lk/tools/ai-llm-speed-comparison (verified 2026-06-24)",
    _AA_TTFT,
    _AA_TPS,
)

# --- batching-6 ----------------------------------------------------------------------------------------
# Shaped like llama.cpp's llama-server with SmolLM2-135M-Instruct Q4_1 and 6 slots on 2 shared cores
# (`voorbeelden local-llm --engine llama-server --slots 6`, 1 thread, parts capped at 200 tokens).
# Sources: the batching curve is the step model (per-stream speed 1 / (1 + 0.3 (n - 1))): six streams together
# give 2.4x one stream's throughput, inside the 1.75-2.64x parallel speedups measured for six equal 120-token
# requests on that server (issue 21, three trials on a loaded machine). The solo token rate (33 tokens/s) is
# the one-thread rate measured for this model (see voorbeelden.local.launcher.default_threads). The TTFT and
# the per-part output token counts are ASSUMPTIONS (a small model's short lists, the 200-token cap); fit
# the real ones from records with `voorbeelden calibrate` (notebook 06 with local_servers does it).
_B6_TTFT = LogNormal(0.2, 0.2)
_B6_TPS = LogNormal(33.0, 0.1)
_B6_TOKENS = {
    "voorbeeldzinnen": 90,
    "praktijkvoorbeelden": 160,
    "tegenvoorbeelden": 90,
    "synoniemen": 35,
    "antoniemen": 35,
    "toelichting": 110,
}
BATCHING_6 = Profile(
    name="batching-6",
    description="a batching server (llama-server, 6 slots): each stream slows as streams share decode steps",
    source="shaped like llama.cpp llama-server -np 6 with SmolLM2-135M (curve from issue 21's measured speedups; "
    "per-part tokens assumed)",
    parts=_by_tokens(_B6_TTFT, _B6_TPS, _B6_TOKENS, 0.3),
    generic=PartProfile(_B6_TTFT, LogNormal(100, 0.3), _B6_TPS),
    batching=Batching.step_model(6, 0.3, "step model, cost 0.3: 2.4x throughput at 6 streams"),
)

PROFILES: dict[str, Profile] = {
    p.name: p for p in (UNIFORM_2S, DEFINITIE_APP, GPT_4O_AA, HEAVY_TAIL, BATCHING_6)
}

"""The simulator's settings, validated once so that the server, the CLI and the admin route agree.

A config is immutable: a change at run time (``POST /admin/config``) builds a new one with
:func:`dataclasses.replace` and swaps it in whole, so a request never sees half of a change.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FAULT_KINDS: tuple[str, ...] = ("500", "503", "429", "hang", "malformed", "truncated", "drop")
DEFAULT_MAX_BODY_BYTES = 1_000_000
# Real seconds (never scaled: it guards sockets, not simulated latency) a client has to send a whole request
# head, or the rest of a body it announced, before the connection is answered 408 and closed.
DEFAULT_READ_TIMEOUT_S = 10.0
MIN_MAX_BODY_BYTES = 1024
# What a fault rule may name: the six parts, the combined JSON call, a request of no known part, or "*".
RULE_PARTS: tuple[str, ...] = (
    "voorbeeldzinnen",
    "praktijkvoorbeelden",
    "tegenvoorbeelden",
    "synoniemen",
    "antoniemen",
    "toelichting",
    "combined",
    "generic",
    "*",
)
# Fields a running server can take over from a new config; host/port are bound at start.
RUNTIME_FIELDS: frozenset[str] = frozenset(
    {
        "profile",
        "time_scale",
        "seed",
        "capacity",
        "rpm",
        "tpm",
        "rate_limit_mode",
        "rate_limit_quantum_s",
        "charge_rejected",
        "fault_rate",
        "faults",
        "schedule",
        "max_body_bytes",
        "profile_file",
        "read_timeout_s",
    }
)

_RULE = re.compile(
    r"^\s*(?P<part>[\w*-]+)\s*=\s*(?P<kind>[\w]+)\s*(?:@\s*(?P<attempts>\d+(?:\s*,\s*\d+)*))?\s*$"
)


@dataclass(frozen=True)
class FaultRule:
    """One deterministic fault: ``part=kind`` (every attempt) or ``part=kind@1,2`` (those attempts only).
    ``*`` matches every part. Rules are checked in order; the first that matches wins."""

    part: str
    kind: str
    attempts: frozenset[int] | None = None

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        m = _RULE.match(text)
        if not m:
            raise ValueError(
                f"fault schedule rule {text!r} is not PART=KIND or PART=KIND@N[,N...] (e.g. synoniemen=503@1)"
            )
        kind = m["kind"]
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"fault kind {kind!r} in rule {text!r} is unknown; use one of {', '.join(FAULT_KINDS)}"
            )
        if m["part"] not in RULE_PARTS:
            raise ValueError(
                f"part {m['part']!r} in fault schedule rule {text!r} is unknown; use one of {', '.join(RULE_PARTS)}"
            )
        attempts = frozenset(int(a) for a in m["attempts"].split(",")) if m["attempts"] else None
        if attempts is not None and min(attempts) < 1:
            raise ValueError(f"attempts in fault schedule rule {text!r} count from 1; 0 never matches")
        return cls(part=m["part"], kind=kind, attempts=attempts)

    def matches(self, part: str, attempt: int) -> bool:
        return (self.part == "*" or self.part == part) and (self.attempts is None or attempt in self.attempts)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v).strip() for v in value)


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the simulator's answers. All times are multiplied by ``time_scale``."""

    profile: str = "uniform-2s"
    time_scale: float = 1.0
    seed: int = 0
    capacity: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    # How rpm/tpm are enforced (see voorbeelden.sim.ratelimit): "bucket" (one minute, refilling continuously,
    # starts full) or "quantized" (the minute's share also enforced over windows of about
    # rate_limit_quantum_s simulated seconds) or "short-window" (quantized, and the remaining/reset headers
    # count the short window); charge_rejected also charges requests answered 429.
    rate_limit_mode: str = "bucket"
    rate_limit_quantum_s: float = 1.0
    charge_rejected: bool = False
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULT_KINDS
    schedule: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    allow_remote: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    # A JSON profile (``voorbeelden calibrate`` writes one); when set it replaces ``profile``, whose value
    # becomes the file's profile name.
    profile_file: str | None = None

    def __post_init__(self) -> None:
        # Checked group by group, in field order, so the first bad value is the one reported.
        self._check_profile()
        self._check_scale_and_limits()
        self._check_rate_limit_mode()
        self._check_faults()
        self._check_server()

    def _set(self, name: str, value: Any) -> None:
        """Normalise a field of this frozen config (only while it is being validated)."""
        object.__setattr__(self, name, value)

    def _check_profile(self) -> None:
        from voorbeelden.sim.profiles import PROFILES, load_profile_file

        if self.profile_file is not None:
            loaded, _ = load_profile_file(self.profile_file)
            self._set("profile_file", str(self.profile_file))
            self._set("profile", loaded.name)
            self._set("_loaded_profile", loaded)
        elif self.profile not in PROFILES:
            raise ValueError(f"profile {self.profile!r} is unknown; use one of {', '.join(PROFILES)}")

    def _check_scale_and_limits(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not (
            isinstance(self.time_scale, int | float)
            and not isinstance(self.time_scale, bool)
            and math.isfinite(self.time_scale)
            and self.time_scale > 0
        ):
            raise ValueError(f"time_scale must be a finite number > 0, got {self.time_scale!r}")
        if self.capacity is not None and (not isinstance(self.capacity, int) or self.capacity < 1):
            raise ValueError(f"capacity must be None (unlimited) or an integer >= 1, got {self.capacity!r}")
        for name in ("rpm", "tpm"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int | float) or not math.isfinite(v) or v <= 0):
                raise ValueError(f"{name} must be None (no limit) or a number > 0, got {v!r}")

    def _check_rate_limit_mode(self) -> None:
        from voorbeelden.sim.ratelimit import RATE_LIMIT_MODES

        if self.rate_limit_mode not in RATE_LIMIT_MODES:
            raise ValueError(
                f"rate_limit_mode {self.rate_limit_mode!r} is unknown; use one of {', '.join(RATE_LIMIT_MODES)}"
            )
        q = self.rate_limit_quantum_s
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q <= 60:
            raise ValueError(f"rate_limit_quantum_s must be a number in (0, 60] simulated seconds, got {q!r}")
        if not isinstance(self.charge_rejected, bool):
            raise ValueError(f"charge_rejected must be true or false, got {self.charge_rejected!r}")

    def _check_faults(self) -> None:
        if not (isinstance(self.fault_rate, int | float) and 0.0 <= self.fault_rate <= 1.0):
            raise ValueError(f"fault_rate must be between 0 and 1, got {self.fault_rate!r}")
        faults = _split(self.faults)
        for kind in faults:
            if kind not in FAULT_KINDS:
                raise ValueError(f"fault kind {kind!r} is unknown; use one of {', '.join(FAULT_KINDS)}")
        if self.fault_rate > 0 and not faults:
            raise ValueError("fault_rate > 0 needs at least one fault kind in faults")
        self._set("faults", faults)
        schedule = (self.schedule,) if isinstance(self.schedule, str) else tuple(self.schedule)
        for rule in schedule:
            FaultRule.parse(rule)
        self._set("schedule", schedule)

    def _check_server(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535 (0 picks a free port), got {self.port!r}")
        if not is_loopback(self.host) and not self.allow_remote:
            raise ValueError(
                f"host {self.host!r} is not a loopback address; the simulator has no authentication, so binding "
                "it elsewhere needs allow_remote=True (CLI: --allow-remote)"
            )
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < MIN_MAX_BODY_BYTES:
            raise ValueError(
                f"max_body_bytes must be an integer >= {MIN_MAX_BODY_BYTES}, got {self.max_body_bytes!r}"
            )
        rt = self.read_timeout_s
        if isinstance(rt, bool) or not isinstance(rt, int | float) or not math.isfinite(rt) or rt <= 0:
            raise ValueError(f"read_timeout_s must be a finite number of seconds > 0, got {rt!r}")

    def resolved_profile(self) -> Any:
        """The :class:`~voorbeelden.sim.profiles.Profile` to serve: the file's (loaded once) or a built-in."""
        from voorbeelden.injected import with_slow_part
        from voorbeelden.sim.profiles import PROFILES

        loaded = self.__dict__.get("_loaded_profile")
        # with_slow_part: the test knob VOORBEELDEN_TEST_SLOW_PART (docs/COMPARE.md); unset, a no-op
        return with_slow_part(loaded if loaded is not None else PROFILES[self.profile])

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        return tuple(FaultRule.parse(r) for r in self.schedule)

    def with_changes(self, changes: Mapping[str, Any], *, runtime: bool = False) -> SimConfig:
        """A new validated config; ``runtime=True`` refuses fields a running server cannot change."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        if runtime:
            fixed = set(changes) - RUNTIME_FIELDS
            if fixed:
                raise ValueError(f"field(s) {', '.join(sorted(fixed))} cannot change while the server runs")
        values = dict(changes)
        if "profile" in values and "profile_file" not in values:
            values["profile_file"] = None  # naming a built-in profile leaves the file's
        for name in ("faults", "schedule"):
            if name in values and isinstance(values[name], list):
                values[name] = tuple(values[name])
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["faults"] = list(self.faults)
        d["schedule"] = list(self.schedule)
        return d

"""The server's own account of a run: llama-server's Prometheus ``/metrics`` and ``/slots``, read around a run.

Why: the client sees when each call started and ended, but not *why* parallel calls overlapped or not. A
batching server (llama.cpp's ``llama-server`` with N slots) says it itself: how many tokens it decoded, how much
decode time it spent summed over the streams, how many ``llama_decode()`` steps it ran and how many slots were
busy per step. Read before and after a run, the difference is the run's server-side truth:

* ``busy_slots_per_decode`` near 1: the calls were decoded one at a time (queued); near N: batched into shared
  decode steps.
* ``stream_tokens_per_s`` (tokens predicted / decode seconds summed over streams): what each stream saw;
  total tokens/s over the wall (client side) is what the server delivered in all.

A :class:`MetricsSampler` also polls the gauges during a run, because ``requests_processing`` and
``requests_deferred`` are instantaneous: their maxima say whether calls waited for a free slot.

Only llama-server has these endpoints (started with ``--metrics``); llama-cpp-python's server has none (and a
request to it would take its model lock), so nothing here is ever sent to that engine.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

PREFIX = "llamacpp:"
TIMEOUT_S = 5.0


class MetricsUnavailable(RuntimeError):
    """The server did not answer ``/metrics`` (not llama-server, or started without ``--metrics``)."""


@dataclass(frozen=True)
class ServerMetrics:
    """One reading of llama-server's ``/metrics`` (names as the server gives them, without ``llamacpp:``).

    Counters grow for the server's lifetime (compare two readings with :func:`metrics_delta`); the gauges are
    the moment's value, except ``busy_slots_per_decode``, the average over the server's lifetime."""

    read_at: float  # time.time() when read
    prompt_tokens_total: float = 0.0
    prompt_seconds_total: float = 0.0
    tokens_predicted_total: float = 0.0
    tokens_predicted_seconds_total: float = 0.0
    n_decode_total: float = 0.0
    busy_slots_per_decode: float = 0.0
    requests_processing: float = 0.0
    requests_deferred: float = 0.0
    raw: dict[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricsDelta:
    """What the server did between two readings (see the module docstring for how to read it)."""

    seconds: float  # wall time between the two readings
    prompt_tokens: float
    prompt_seconds: float
    tokens_predicted: float
    decode_seconds: float  # summed over streams: exceeds ``seconds`` when streams were decoded together
    n_decode: float
    busy_slots_per_decode: float | None  # None when no decode step ran

    @property
    def stream_tokens_per_s(self) -> float | None:
        """Decode speed one stream saw (tokens over its own decode time), averaged over the tokens."""
        return self.tokens_predicted / self.decode_seconds if self.decode_seconds > 0 else None

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens the server produced per second of wall time between the readings."""
        return self.tokens_predicted / self.seconds if self.seconds > 0 else None

    @property
    def batched(self) -> bool | None:
        """True when decode steps served more than one stream on average (None: nothing decoded)."""
        b = self.busy_slots_per_decode
        return None if b is None else b > 1.05

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            stream_tokens_per_s=self.stream_tokens_per_s, tokens_per_s=self.tokens_per_s, batched=self.batched
        )
        return out


def root_url(base_url: str) -> str:
    """``http://host:port`` from a base URL that may end in ``/v1``."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def parse_prometheus(text: str) -> dict[str, float]:
    """``name -> value`` for the unlabelled samples of a Prometheus text exposition (``# `` lines skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        try:
            number = float(value.split()[0])
        except (ValueError, IndexError):
            continue
        if math.isfinite(number):
            out[name.removeprefix(PREFIX)] = number
    return out


def _get(url: str, timeout_s: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise MetricsUnavailable(f"{url} did not answer: {exc}") from exc


def read_metrics(base_url: str, timeout_s: float = TIMEOUT_S) -> ServerMetrics:
    """One reading of ``/metrics`` (``base_url`` with or without ``/v1``)."""
    values = parse_prometheus(_get(root_url(base_url) + "/metrics", timeout_s).decode("utf-8", "replace"))
    if "tokens_predicted_total" not in values:
        raise MetricsUnavailable(f"{root_url(base_url)}/metrics has no llamacpp: counters")
    known = {f for f in ServerMetrics.__dataclass_fields__ if f not in ("read_at", "raw")}
    busy = values.get("n_busy_slots_per_decode", 0.0)
    picked = {k: v for k, v in values.items() if k in known}
    return ServerMetrics(read_at=time.time(), busy_slots_per_decode=busy, raw=values, **picked)


def read_slots(base_url: str, timeout_s: float = TIMEOUT_S) -> list[dict[str, Any]]:
    """``/slots``: one entry per slot (``id``, ``n_ctx``, ``is_processing``, ...), as the server gives it."""
    data = json.loads(_get(root_url(base_url) + "/slots", timeout_s))
    if not isinstance(data, list):
        raise MetricsUnavailable(f"{root_url(base_url)}/slots did not answer a list")
    return data


def metrics_delta(before: ServerMetrics, after: ServerMetrics) -> MetricsDelta:
    """What happened between two readings of the same server.

    ``busy_slots_per_decode`` of the interval is recovered from the lifetime averages:
    (after.avg x after.n - before.avg x before.n) / (after.n - before.n)."""
    n = after.n_decode_total - before.n_decode_total
    if n < 0 or after.tokens_predicted_total < before.tokens_predicted_total:
        raise ValueError("the readings are not from one server run (counters went down): was it restarted?")
    busy = None
    if n > 0:
        busy_sum = after.busy_slots_per_decode * after.n_decode_total
        busy_sum -= before.busy_slots_per_decode * before.n_decode_total
        busy = max(0.0, busy_sum / n)
    return MetricsDelta(
        seconds=max(0.0, after.read_at - before.read_at),
        prompt_tokens=after.prompt_tokens_total - before.prompt_tokens_total,
        prompt_seconds=after.prompt_seconds_total - before.prompt_seconds_total,
        tokens_predicted=after.tokens_predicted_total - before.tokens_predicted_total,
        decode_seconds=after.tokens_predicted_seconds_total - before.tokens_predicted_seconds_total,
        n_decode=n,
        busy_slots_per_decode=busy,
    )


@dataclass
class GaugePeaks:
    """The largest ``requests_processing``/``requests_deferred`` seen while sampling, and how often."""

    samples: int = 0
    max_processing: float = 0.0
    max_deferred: float = 0.0
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MetricsSampler:
    """Poll ``/metrics`` every ``interval_s`` in a thread for the duration of a ``with`` block.

    Reads the counters at entry and exit (``.before``, ``.after``, ``.delta``) and keeps the gauge peaks
    (``.peaks``): ``max_deferred > 0`` means calls waited for a slot."""

    def __init__(self, base_url: str, interval_s: float = 0.25) -> None:
        self.base_url, self.interval_s = base_url, interval_s
        self.peaks = GaugePeaks()
        self.before: ServerMetrics | None = None
        self.after: ServerMetrics | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                m = read_metrics(self.base_url, timeout_s=max(1.0, self.interval_s * 4))
            except MetricsUnavailable:
                self.peaks.errors += 1
                continue
            self.peaks.samples += 1
            self.peaks.max_processing = max(self.peaks.max_processing, m.requests_processing)
            self.peaks.max_deferred = max(self.peaks.max_deferred, m.requests_deferred)

    def __enter__(self) -> MetricsSampler:
        self.before = read_metrics(self.base_url)
        self._thread = threading.Thread(target=self._poll, name="metrics-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.after = read_metrics(self.base_url)
        except MetricsUnavailable:
            if exc_type is None:
                raise  # a run that failed keeps its own error; a server gone after a good run is one

    @property
    def delta(self) -> MetricsDelta:
        if self.before is None or self.after is None:
            raise RuntimeError("the sampler has not run yet")
        return metrics_delta(self.before, self.after)

    def summary(self) -> dict[str, Any]:
        """The run's server-side truth as plain data (for records and reports)."""
        return {"server": self.delta.to_dict(), "gauges": self.peaks.to_dict()}

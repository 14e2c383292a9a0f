"""An OpenAI-compatible chat-completions simulator: the default backend for tests, notebooks and benchmarks.

Why a simulator: strategies (sequential, parallel, hedged, ...) can only be compared honestly when the
backend's latencies, limits and failures are known and repeatable. This one answers with plausible Dutch
text of the right shape, at latencies drawn from named profiles (keyed by ``x-sim-key``/part/attempt, so
paired trials see the same draws), with optional capacity, rate limits and faults. ``docs/CONTRACTS.md``
has the protocol; :mod:`voorbeelden.sim.content` states how a request's part is recognised.

Modules, one job each: ``config`` (SimConfig, fault rules), ``profiles`` (latency distributions and their
sources), ``latency`` (keyed draws), ``ratelimit`` (RPM/TPM buckets, header formats), ``faults`` (which
fault a request gets), ``content`` (Dutch text), ``protocol`` (validation, error bodies), ``state``
(capacity gate, counters), ``app`` (routes and the per-request pipeline), ``server`` (thread/subprocess
runners), ``transport`` (an aiohttp transport for AsyncOpenAI at high concurrency), ``fidelity``
(scheduled-vs-observed latency benchmark).

Admin routes: ``GET /admin/counters`` -> ``requests_total``, ``by_status``, ``by_part``, ``faults`` (by
kind), ``open``/``queued``/``in_flight`` (now) and their ``peak_*``, ``sent_429``, ``rate_limited`` (429s
from the limiter), ``accepted_times`` (``time.monotonic()`` of requests past the limiter, last 100,000),
``loop_lag_ms_p99``/``loop_lag_ms_max``; ``GET``/``POST /admin/config`` (read / change SimConfig fields
at run time; host and port are fixed); ``POST /admin/reset`` (zero the counters).
"""

from __future__ import annotations

from voorbeelden._lazy import by_module, lazy_exports

# Imported on first access (PEP 562), so ``voorbeelden.sim.config`` or ``.profiles`` can be imported (by the
# CLI's option parsing, say) without starting on the server's aiohttp and numpy imports.
_EXPORTS = by_module(
    {
        "voorbeelden.sim.config": ("FAULT_KINDS", "FaultRule", "SimConfig"),
        "voorbeelden.sim.profiles": ("PROFILES", "LogNormal", "PartProfile", "Profile", "Sample"),
        "voorbeelden.sim.server": ("SimHandle", "running_simulator", "serve"),
    }
)

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(globals(), _EXPORTS)

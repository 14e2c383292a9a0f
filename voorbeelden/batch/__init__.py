"""Many terms under rate limits: one gate at the HTTP layer for every call, resumable JSONL output, a cache.

    summary = await generate_many("terms.jsonl", out="results.jsonl", rpm=500, tpm=200_000, cache=True)

Rate limiting, adaptive concurrency and caching sit in an ``httpx`` transport wrapped around the real one
(:class:`GatedTransport`), so :func:`voorbeelden.generate` and its retries need not know about batches.
:class:`BatchSettings` lists what :func:`generate_many` can be told, with its defaults.
"""

from __future__ import annotations

from voorbeelden.batch.adaptive import AdaptiveConcurrency, LimitChange
from voorbeelden.batch.cache import CACHE_ENV, CACHE_HEADER, ResponseCache, cache_key, default_cache_dir
from voorbeelden.batch.limiter import RateLimiter
from voorbeelden.batch.output import OutputLog, iter_results, read_results, request_key
from voorbeelden.batch.runner import BatchSummary, generate_many, generate_many_sync, peak_rss_mb
from voorbeelden.batch.settings import BatchSettings
from voorbeelden.batch.transport import GATE_WAIT_HEADER, CallEvent, GatedTransport, GateStats

__all__ = [
    "CACHE_ENV",
    "CACHE_HEADER",
    "GATE_WAIT_HEADER",
    "AdaptiveConcurrency",
    "BatchSettings",
    "BatchSummary",
    "CallEvent",
    "GateStats",
    "GatedTransport",
    "LimitChange",
    "OutputLog",
    "RateLimiter",
    "ResponseCache",
    "cache_key",
    "default_cache_dir",
    "generate_many",
    "generate_many_sync",
    "iter_results",
    "peak_rss_mb",
    "read_results",
    "request_key",
]

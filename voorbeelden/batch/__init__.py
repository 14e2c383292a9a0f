"""Many terms under rate limits: one gate at the HTTP layer for every call, resumable JSONL output, a cache.

    summary = await generate_many("terms.jsonl", out="results.jsonl", rpm=500, tpm=200_000, cache=True)

Rate limiting, adaptive concurrency and caching sit in an ``httpx`` transport wrapped around the real one
(:class:`GatedTransport`), so :func:`voorbeelden.generate` and its retries need not know about batches.
:class:`BatchSettings` lists what :func:`generate_many` can be told, with its defaults.
"""

from __future__ import annotations

from voorbeelden._lazy import by_module, lazy_dir, lazy_exports

# Lazy, so that importing a light submodule (the CLI's batch.provider options, batch.inputs) does not pull in
# aiohttp and httpx2 through the runner: `voorbeelden --help` builds every command's parser.
_EXPORTS = by_module(
    {
        "voorbeelden.batch.adaptive": ("AdaptiveConcurrency", "LimitChange"),
        "voorbeelden.batch.cache": (
            "CACHE_ENV",
            "CACHE_HEADER",
            "ResponseCache",
            "cache_key",
            "default_cache_dir",
        ),
        "voorbeelden.batch.limiter": ("RateLimiter",),
        "voorbeelden.batch.output": ("OutputLog", "iter_results", "read_results", "request_key"),
        "voorbeelden.batch.runner": ("BatchSummary", "generate_many", "generate_many_sync", "peak_rss_mb"),
        "voorbeelden.batch.settings": ("BatchSettings",),
        "voorbeelden.batch.transport": ("GATE_WAIT_HEADER", "CallEvent", "GatedTransport", "GateStats"),
    }
)

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(globals(), _EXPORTS)
__dir__ = lazy_dir(globals(), _EXPORTS)

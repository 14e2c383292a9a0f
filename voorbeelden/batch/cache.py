"""A persistent cache of chat-completion responses, keyed by what determines the answer.

A batch that is rerun (after a crash, with ``--retry-failed``, or with a few terms added) should not pay
again for calls it already made. The key is the request body's model, messages, temperature, max_tokens and
response_format: headers (the API key, ``x-sim-key``, the attempt number) do not change what the model is
asked, so they stay out. Only complete answers are stored (HTTP 200, valid JSON, ``finish_reason: stop``):
caching a truncated or malformed answer would turn one bad call into a permanent one, since the retry would
be answered from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "CACHE_HEADER", "ResponseCache", "cache_key", "default_cache_dir"]

CACHE_ENV = "VOORBEELDEN_CACHE_DIR"
CACHE_HEADER = "x-voorbeelden-cache"
KEY_FIELDS = ("model", "messages", "temperature", "max_tokens", "response_format")


def default_cache_dir() -> Path:
    """``$VOORBEELDEN_CACHE_DIR``, else ``.cache/voorbeelden`` under the current directory."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.cwd() / ".cache" / "voorbeelden"


def cache_key(body: dict[str, Any]) -> str | None:
    """The key of a chat-completion body, or None when it must not be cached (a streamed call, n > 1)."""
    if body.get("stream") or body.get("n", 1) != 1:
        return None
    subset = {k: body.get(k) for k in KEY_FIELDS}
    canonical = json.dumps(subset, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def cacheable(status: int, content: bytes) -> bool:
    if status != 200:
        return False
    try:
        data = json.loads(content)
        choices = data["choices"]
        return len(choices) == 1 and choices[0].get("finish_reason") == "stop"
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


class ResponseCache:
    """Stored responses (status, content type, body) in a :class:`diskcache.Cache` directory.

        cache = ResponseCache()            # .cache/voorbeelden under the cwd, or $VOORBEELDEN_CACHE_DIR
        hit = cache.get(key)               # (status, content_type, body) or None

    diskcache is safe across processes and threads (SQLite), so two batches may share one directory.
    Lookups take well under a millisecond, so they run inline on the event loop.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, size_limit: int = 2**32) -> None:
        import diskcache

        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(self.directory), size_limit=size_limit)
        self.hits = 0
        self.misses = 0
        self.stores = 0

    def get(self, key: str) -> tuple[int, str, bytes] | None:
        value = self._cache.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return value  # type: ignore[no-any-return]

    def put(self, key: str, status: int, content_type: str, content: bytes) -> bool:
        """Store a response if it is a complete answer; returns whether it was stored."""
        if not cacheable(status, content):
            return False
        self._cache.set(key, (status, content_type, content))
        self.stores += 1
        return True

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self._cache.close()

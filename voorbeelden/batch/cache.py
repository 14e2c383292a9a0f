"""A persistent cache of chat-completion responses, keyed by where the call went and what it asked.

A batch that is rerun (after a crash, with ``--retry-failed``, or with a few terms added) should not pay
again for calls it already made. The key is the endpoint (scheme, host, port and path: an answer of the
simulator is never served as an answer of a real endpoint, nor one model server's as another's) and every
request parameter that can change the answer (model, messages, temperature, max_tokens, response_format,
seed, top_p, ...). What cannot change it stays out: headers (the API key, ``x-sim-key``, the attempt number)
and the body fields ``user``, ``metadata``, ``store`` and ``stream_options``. Only complete answers are
stored (HTTP 200, valid JSON, ``finish_reason: stop``, and a message with text in it: an endpoint that
answers 200 with empty or null content has failed): caching a truncated, malformed or empty answer would
turn one bad call into a permanent one, since the retry (and ``--retry-failed`` after the endpoint is
fixed) would be answered from the cache. The same test is applied to what is read back, so an entry stored
by an older version under a looser rule is a miss.

The cache is an optimisation, so it may never cost a result: a store that cannot be opened or read (a path
that is a file, a read-only folder, a corrupt database) is bypassed with one warning, and an entry that
cannot be read back, or reads back as something other than a complete answer, is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CACHE_ENV", "CACHE_HEADER", "ResponseCache", "cache_key", "default_cache_dir"]

CACHE_ENV = "VOORBEELDEN_CACHE_DIR"
CACHE_HEADER = "x-voorbeelden-cache"
# Body fields that do not change the answer; every other field is part of the key.
NOT_IN_KEY = frozenset({"user", "metadata", "store", "stream_options"})
log = logging.getLogger("voorbeelden.batch.cache")


def default_cache_dir() -> Path:
    """``$VOORBEELDEN_CACHE_DIR``, else ``.cache/voorbeelden`` under the current directory."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.cwd() / ".cache" / "voorbeelden"


def endpoint_of(url: str) -> str:
    """``scheme://host:port/path`` of a request URL: the endpoint part of the cache key (no credentials,
    no query), with the default port made explicit so that one endpoint has one spelling."""
    u = urlsplit(url)
    scheme = (u.scheme or "http").lower()
    port = u.port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(u.hostname or '').lower()}:{port}{u.path or '/'}"


def cache_key(body: dict[str, Any], url: str | None = None) -> str | None:
    """The key of a chat-completion body sent to ``url``, or None when it must not be cached (a streamed
    call, n > 1). Fields set to None count as absent, as the API treats them."""
    if body.get("stream") or body.get("n", 1) not in (1, None):
        return None
    subset = {k: v for k, v in body.items() if k not in NOT_IN_KEY and k != "stream" and v is not None}
    subset["@endpoint"] = endpoint_of(url) if url else None
    canonical = json.dumps(subset, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cacheable(status: int, content: bytes) -> bool:
    if status != 200:
        return False
    try:
        data = json.loads(content)
        choices = data["choices"]
        if len(choices) != 1 or choices[0].get("finish_reason") != "stop":
            return False
        message = choices[0]["message"]
        text = message.get("content")
        return (isinstance(text, str) and bool(text.strip())) or bool(message.get("tool_calls"))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return False


class ResponseCache:
    """Stored responses (status, content type, body) in a :class:`diskcache.Cache` directory.

        cache = ResponseCache()            # .cache/voorbeelden under the cwd, or $VOORBEELDEN_CACHE_DIR
        hit = cache.get(key)               # (status, content_type, body) or None

    diskcache is safe across processes and threads (SQLite), so two batches may share one directory.
    Lookups take well under a millisecond, so they run inline on the event loop.

    It never raises: when the store cannot be opened or read, :attr:`problem` says why, one warning is
    logged, and every later lookup is a miss (the batch runs as with ``--no-cache``).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, size_limit: int = 2**32) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.problem: str | None = None
        self._cache: Any = None
        try:
            import diskcache

            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(str(self.directory), size_limit=size_limit)
        except Exception as err:  # a file in the way, no permission, not a database, ...
            self._disable(f"cannot be opened ({type(err).__name__}: {err})")

    @property
    def usable(self) -> bool:
        return self._cache is not None

    def _disable(self, why: str) -> None:
        if self.problem is None:
            self.problem = why
            log.warning("response cache %s %s; continuing without the cache", self.directory, why)
        cache, self._cache = self._cache, None
        if cache is not None:
            try:
                cache.close()
            except Exception:
                pass

    def get(self, key: str) -> tuple[int, str, bytes] | None:
        if self._cache is None:
            return None
        import sqlite3

        try:
            value = self._cache.get(key)
        except sqlite3.Error as err:  # the database itself is unreadable: stop asking it
            self._disable(f"cannot be read ({type(err).__name__}: {err})")
            value = None
        except Exception:  # one entry cannot be read back (a corrupt pickle or value file): a miss
            value = None
            self._bad_entry(key)
        if value is not None and not _complete_entry(value):
            value = None
            self._bad_entry(key)
        return value  # type: ignore[no-any-return]

    def _bad_entry(self, key: str) -> None:
        try:
            self._cache.delete(key)
        except Exception:
            pass

    def put(self, key: str, status: int, content_type: str, content: bytes) -> bool:
        """Store a response if it is a complete answer; returns whether it was stored."""
        if self._cache is None or not cacheable(status, content):
            return False
        try:
            self._cache.set(key, (status, content_type, content))
        except Exception as err:  # full disk, read-only store, corrupt database
            self._disable(f"cannot be written ({type(err).__name__}: {err})")
            return False
        return True

    def __len__(self) -> int:
        if self._cache is None:
            return 0
        try:
            return len(self._cache)
        except Exception:
            return 0

    def clear(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    def close(self) -> None:
        if self._cache is not None:
            try:
                self._cache.close()
            except Exception:
                pass


def _complete_entry(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 3
        and isinstance(value[0], int)
        and isinstance(value[1], str)
        and isinstance(value[2], bytes)
        and cacheable(value[0], value[2])
    )

"""Where calls go: an OpenAI-compatible endpoint from arguments or the environment, or the embedded simulator.

Clients are created with ``max_retries=0`` because :mod:`voorbeelden.caller` owns retries (so every attempt
is recorded), and they are created inside the coroutine that uses them: an ``AsyncOpenAI`` client is bound
to the event loop that first used it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

import openai

# Local OpenAI-compatible servers (the simulator, vLLM, Ollama) ignore the key but the SDK insists on one.
PLACEHOLDER_KEY = "no-key-needed"


class NoBackend(RuntimeError):
    """Neither a base URL nor an API key is known, so there is nowhere to send a call."""


def resolve(base_url: str | None = None, api_key: str | None = None) -> tuple[str | None, str]:
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
    if api_key is None:
        if base_url is None:
            raise NoBackend(
                "no backend: set OPENAI_API_KEY (and optionally OPENAI_BASE_URL), pass base_url=..., "
                "or pass a client"
            )
        api_key = PLACEHOLDER_KEY
    return base_url, api_key


def make_client(
    base_url: str | None = None, api_key: str | None = None, *, timeout: float | None = None
) -> openai.AsyncOpenAI:
    base_url, api_key = resolve(base_url, api_key)
    kwargs: dict[str, object] = {"api_key": api_key, "max_retries": 0}
    if base_url is not None:
        kwargs["base_url"] = base_url
    if timeout is not None:
        kwargs["timeout"] = timeout
    return openai.AsyncOpenAI(**kwargs)  # type: ignore[arg-type]


OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def describe_endpoint(
    base_url: str | None = None, *, host_only: bool = False, source_only: bool = False
) -> str:
    """Which endpoint a configured run uses and what chose it (``--base-url``, ``OPENAI_BASE_URL``, or
    ``OPENAI_API_KEY`` alone, which means OpenAI's API): host only, never a path, credentials or the key."""
    from urllib.parse import urlsplit

    if base_url:
        url, source = base_url, "--base-url"
    elif os.environ.get("OPENAI_BASE_URL"):
        url, source = os.environ["OPENAI_BASE_URL"], "OPENAI_BASE_URL"
    else:
        url, source = (
            OPENAI_DEFAULT_URL,
            "OPENAI_API_KEY, with OPENAI_BASE_URL unset: OpenAI's default endpoint",
        )
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    if host_only:
        return host
    if source_only:
        return source
    return f"the endpoint {host} (chosen by {source})"


def has_configured_backend(base_url: str | None = None) -> bool:
    return bool(base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"))


@dataclass(frozen=True)
class Backend:
    """A resolved endpoint; ``describe()`` is safe to print (it never contains the key)."""

    base_url: str | None
    api_key: str | None
    simulated: bool
    profile: str | None = None
    time_scale: float | None = None

    def describe(self) -> str:
        if self.simulated:
            return f"embedded simulator at {self.base_url} (profile {self.profile}, time_scale {self.time_scale:g})"
        return f"endpoint {self.base_url or 'https://api.openai.com/v1 (default)'}"


@contextmanager
def open_backend(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    sim_profile: str = "definitie-app",
    time_scale: float = 0.1,
    process: bool = False,
    announce: TextIO | None = sys.stderr,
) -> Iterator[Backend]:
    """Use the configured endpoint, or start the embedded simulator when none is configured, so the CLI
    works out of the box without ever sending a request somewhere the user did not choose."""
    if has_configured_backend(base_url):
        url, key = resolve(base_url, api_key)
        if announce is not None:
            print(f"using {describe_endpoint(base_url)}", file=announce)
        yield Backend(base_url=url, api_key=key, simulated=False)
        return
    from voorbeelden.sim import SimConfig, running_simulator

    with running_simulator(SimConfig(profile=sim_profile, time_scale=time_scale), process=process) as sim:
        backend = Backend(
            base_url=sim.base_url,
            api_key=PLACEHOLDER_KEY,
            simulated=True,
            profile=sim_profile,
            time_scale=time_scale,
        )
        if announce is not None:
            print(
                f"no OPENAI_BASE_URL/--base-url or OPENAI_API_KEY set: using the {backend.describe()}",
                file=announce,
            )
        yield backend

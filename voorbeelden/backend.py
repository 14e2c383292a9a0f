"""Where calls go, decided once: the environment, a base URL, the embedded simulator or the local llama.cpp
server -> an open :class:`Backend` with its client. Every caller uses this module: the ``generate`` and
``batch`` commands (``--base-url`` or the environment, else the simulator), the notebooks through
:mod:`voorbeelden.bench` and the report's up-front check.

``backend`` (a notebook parameter) is ``"sim"`` (embedded simulator), ``"auto"`` (``OPENAI_BASE_URL`` /
``OPENAI_API_KEY`` from the environment when set, else the simulator), ``"local"`` (the real local llama.cpp
server of :mod:`voorbeelden.local`: the one the report started, announced in ``VOORBEELDEN_LOCAL_LLM_URL``,
else one started for the block; needs the ``local`` extra) or a base URL. The API key is never a
parameter: papermill stores parameters in the output notebook, so the key is read from the environment here
and never printed, returned by :meth:`Backend.describe` or written anywhere.

Clients are made by :func:`make_client` only: ``max_retries=0`` because :mod:`voorbeelden.caller` owns
retries (so every attempt is recorded), over the one transport (:mod:`voorbeelden.transport`), and inside
the coroutine that uses them: an ``AsyncOpenAI`` client is bound to the event loop that first used it.
openai is imported only when a client is made, so choosing a backend stays cheap.

Only this package's simulator is sent the simulator's own headers; :func:`is_simulator` tells it apart.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from voorbeelden.consent import is_remote
from voorbeelden.redact import redact

if TYPE_CHECKING:
    import httpx2
    import openai

    from voorbeelden.sim import SimConfig

DEFAULT_REAL_BASE_URL = "https://api.openai.com/v1"
# Local OpenAI-compatible servers (the simulator, llama.cpp, vLLM, Ollama) ignore the key but the SDK insists
# on one. It does not look like a key, so redaction leaves it alone and nobody mistakes it for a secret.
PLACEHOLDER_KEY = "no-key-needed"
# Set by the report runner for its kernels when it started the local server: its URL and its description.
LOCAL_URL_ENV = "VOORBEELDEN_LOCAL_LLM_URL"
LOCAL_INFO_ENV = "VOORBEELDEN_LOCAL_LLM_INFO"
_SIMULATED_NOTE = "the text is simulated, not written by a model"


class NoBackend(RuntimeError):
    """Neither a base URL nor an API key is known, so there is nowhere to send a call."""


@dataclass(frozen=True)
class BackendSpec:
    """The resolved choice: ``kind`` is "simulated" or "real"; ``base_url`` is None for the simulator."""

    kind: str
    base_url: str | None = None
    source: str = ""  # what chose it, said on the report's backend line (e.g. "OPENAI_BASE_URL")

    @property
    def host(self) -> str | None:
        return url_host(self.base_url) if self.base_url else None


def url_host(url: str) -> str:
    """Host (and port) of a URL only: no scheme, path, user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def checked_base_url(url: str, source: str) -> str:
    """``url`` without a trailing slash if it is an http(s) URL with a host; else a ValueError naming
    ``source`` (``--base-url``, ``OPENAI_BASE_URL``). Checked before any call: ``localhost:8000`` or a typo
    would otherwise fail every call as a connection error, after all its retries."""
    text = url.strip().rstrip("/")
    example = "http://127.0.0.1:8000/v1"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (parsing the port is the check: "host:abc" raises here)
    except ValueError as exc:
        raise ValueError(
            f"{source} {url!r} is not a valid URL ({exc}); give a base URL such as {example}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        guess = "://" not in text and not any(c.isspace() for c in text)
        hint = f"; did you mean http://{text}?" if guess else f" such as {example}"
        raise ValueError(f"{source} {url!r} is not an http(s) base URL{hint}")
    return text


def resolve_backend(backend: str = "auto", environ: dict[str, str] | None = None) -> BackendSpec:
    """``"sim"`` -> simulated; a URL -> real; ``"auto"`` -> real when OPENAI_BASE_URL or OPENAI_API_KEY is
    set (the base URL defaulting to OpenAI's), else simulated."""
    env = os.environ if environ is None else environ
    choice = (backend or "auto").strip()
    if choice == "sim":
        return BackendSpec("simulated", source="backend parameter 'sim'")
    if choice == "auto":
        base = env.get("OPENAI_BASE_URL", "").strip()
        if base:
            return BackendSpec("real", checked_base_url(base, "OPENAI_BASE_URL"), source="OPENAI_BASE_URL")
        if env.get("OPENAI_API_KEY", "").strip():
            return BackendSpec(
                "real",
                DEFAULT_REAL_BASE_URL,
                source="OPENAI_API_KEY, with OPENAI_BASE_URL unset: OpenAI's default endpoint",
            )
        return BackendSpec("simulated", source="neither OPENAI_BASE_URL nor OPENAI_API_KEY set")
    if choice == "local":
        url = env.get(LOCAL_URL_ENV, "").strip()
        if not url:
            from voorbeelden.local.model import missing_extra

            why = missing_extra()
            if why is not None:
                raise ValueError(f"backend 'local' cannot start: {why}")
        return BackendSpec("local", url.rstrip("/") or None, source="backend parameter")
    if choice.startswith(("http://", "https://")):
        return BackendSpec("real", checked_base_url(choice, "backend"), source="backend parameter")
    raise ValueError(f"backend must be 'auto', 'sim', 'local' or an http(s) base URL, got {backend!r}")


def endpoint_spec(base_url: str | None = None, environ: Mapping[str, str] | None = None) -> BackendSpec:
    """What a command's ``--base-url`` and the environment choose: that URL, else ``"auto"`` (OPENAI_BASE_URL,
    else OPENAI_API_KEY alone, which means OpenAI's API, else the simulator); ``source`` names the choice.
    A URL that is not http(s) with a host is a ValueError naming where it came from."""
    if base_url:
        return BackendSpec("real", checked_base_url(base_url, "--base-url"), source="--base-url")
    return resolve_backend("auto", dict(os.environ if environ is None else environ))


def api_key_from_env(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("OPENAI_API_KEY", "").strip() or PLACEHOLDER_KEY


def resolve_endpoint(base_url: str | None = None, api_key: str | None = None) -> tuple[str | None, str]:
    """The base URL (None: the SDK's default) and key for a client, from the arguments or the environment;
    the placeholder key for a keyless local server. Raises :class:`NoBackend` when neither is known."""
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


SIM_HEALTH_KEYS = frozenset({"status", "profile", "time_scale"})  # what the simulator's /health answers


async def is_simulator(base_url: str | None, timeout_s: float = 5.0) -> bool:
    """Whether ``base_url`` is this package's simulator, which alone may be sent the simulator's own headers
    (``x-sim-attempt``, ``x-sim-key``): every other endpoint, OpenAI's included, must never see them.

    Asked only of a loopback URL (the simulator binds one unless told otherwise, and a remote endpoint must
    not get an extra request or a delay from us): one plain ``GET /health`` whose JSON names the simulator's
    profile and time scale. llama.cpp's server also answers ``/health`` but without those keys. Anything
    else (no answer, another body, a remote host, https) is "not the simulator". Callers that hold the
    simulator's handle (:class:`Backend`, the benchmarks) say so instead of asking."""
    if not base_url or is_remote(base_url):
        return False
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    host, port = parts.hostname, parts.port or 80
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                await writer.drain()
                raw = b""
                while len(raw) < 65536 and (chunk := await reader.read(65536)):
                    raw += chunk
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and SIM_HEALTH_KEYS <= data.keys()


def make_client(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    timeout: float | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    http_client: httpx2.AsyncClient | None = None,
) -> openai.AsyncOpenAI:
    """THE way an ``AsyncOpenAI`` is made, so every call (generate, the notebooks' trials, batch, the
    benchmarks) takes one path: ``max_retries=0`` (the caller owns retries, each one recorded) and the SDK's
    client sending through the one transport, :class:`voorbeelden.transport.AiohttpTransport` (chosen by
    measurement over the SDK's own httpx2 pool: ``voorbeelden bench transport``, docs/TRANSPORT.md).
    ``transport`` wraps or replaces it (the batch gate wraps it); ``http_client`` is for a benchmark that
    measures another HTTP layer on purpose."""
    import openai

    from voorbeelden.transport import http_client as sdk_http_client

    base_url, api_key = resolve_endpoint(base_url, api_key)
    kwargs: dict[str, Any] = {"api_key": api_key, "max_retries": 0}
    if base_url is not None:
        kwargs["base_url"] = base_url
    if timeout is not None:
        kwargs["timeout"] = timeout
    kwargs["http_client"] = http_client if http_client is not None else sdk_http_client(transport=transport)
    return openai.AsyncOpenAI(**kwargs)


@dataclass
class Backend:
    """An open backend. ``configure`` changes the simulator's settings at run time (simulator only).

    A simulated backend carries the simulator's whole :class:`~voorbeelden.sim.SimConfig` (``sim``), kept in
    step by ``configure``, so what a report says about it is what the simulator runs with."""

    kind: str
    base_url: str
    chosen_by: str = ""
    sim: SimConfig | None = None
    _handle: Any = field(default=None, repr=False)
    _api_key: str = field(default=PLACEHOLDER_KEY, repr=False)
    info: dict[str, Any] | None = None  # the local server's description (model, concurrency, ...)

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def simulated(self) -> bool:
        return self.kind == "simulated"

    @property
    def profile(self) -> str | None:
        return self.sim.profile if self.sim else None

    @property
    def time_scale(self) -> float | None:
        return self.sim.time_scale if self.sim else None

    @property
    def seed(self) -> int | None:
        return self.sim.seed if self.sim else None

    @property
    def host(self) -> str:
        return url_host(self.base_url)

    @property
    def clock_scale(self) -> float:
        """What the client's timeouts and backoffs are multiplied by: the simulator's ``time_scale`` (its
        clock runs that much faster), 1.0 for a real endpoint, whose clock is the wall clock."""
        return float(self.time_scale) if self.simulated and self.time_scale else 1.0

    def configure(self, **changes: Any) -> None:
        if self._handle is None:
            raise RuntimeError(
                "only the embedded simulator can be reconfigured; this backend is a real endpoint"
            )
        self._handle.configure(**changes)
        if self.sim is not None:
            known = {f.name for f in fields(self.sim)}
            self.sim = replace(self.sim, **{k: v for k, v in changes.items() if k in known})

    def counters(self) -> dict[str, Any]:
        return self._handle.counters() if self._handle is not None else {}

    def describe(self) -> dict[str, Any]:
        """What a report states about the backend: never the key, and for a real endpoint the host only."""
        if self.simulated:
            return {
                "kind": "simulated",
                "profile": self.profile,
                "time_scale": self.time_scale,
                "seed": self.seed,
                "host": self.host,
                "chosen_by": self.chosen_by,
            }
        if self.kind == "local" and self.info:
            return dict(self.info)
        return {
            "kind": "real",
            "host": self.host,
            "profile": None,
            "time_scale": None,
            "seed": None,
            "chosen_by": self.chosen_by,
        }


@contextmanager
def open_backend(
    backend: str | BackendSpec = "auto",
    *,
    profile: str = "uniform-2s",
    time_scale: float = 1.0,
    seed: int = 0,
    process: bool = True,
    announce: TextIO | None = None,
    **sim_overrides: Any,
) -> Iterator[Backend]:
    """Open the backend (a choice for :func:`resolve_backend`, or a resolved :class:`BackendSpec`, e.g. from
    :func:`endpoint_spec`). The simulator runs as a subprocess by default (``process=True``) so that it does
    not share the client's GIL; it is stopped when the block exits. ``announce`` (the commands pass stderr)
    gets one line saying where calls go and what chose it, so nothing is sent anywhere unannounced."""
    spec = backend if isinstance(backend, BackendSpec) else resolve_backend(backend)
    if spec.kind == "local":
        yield from _open_local(spec)
        return
    if spec.kind == "real":
        assert spec.base_url is not None
        if announce is not None:
            print(f"using the endpoint {spec.host} (chosen by {spec.source})", file=announce)
        yield Backend(kind="real", base_url=spec.base_url, chosen_by=spec.source, _api_key=api_key_from_env())
        return
    from voorbeelden.sim import SimConfig, running_simulator

    config = SimConfig(profile=profile, time_scale=time_scale, seed=seed, **sim_overrides)
    with running_simulator(config, process=process) as handle:
        if announce is not None:
            limits = "".join(f", {k} {sim_overrides[k]:g}" for k in ("rpm", "tpm") if sim_overrides.get(k))
            print(
                f"no OPENAI_BASE_URL/--base-url or OPENAI_API_KEY set: using the embedded simulator at "
                f"{handle.base_url} (profile {profile}, time_scale {time_scale:g}{limits}); {_SIMULATED_NOTE}",
                file=announce,
            )
        yield Backend(
            kind="simulated", base_url=handle.base_url, chosen_by=spec.source, sim=config, _handle=handle
        )


def _open_local(spec: BackendSpec) -> Iterator[Backend]:
    """Attach to the local server the report started, or start one for the block."""
    if spec.base_url is not None:
        try:
            info = json.loads(os.environ.get(LOCAL_INFO_ENV, "") or "{}")
        except ValueError:
            info = {}
        info = {"kind": "local", "host": url_host(spec.base_url), **info}
        yield Backend(kind="local", base_url=spec.base_url, info=info)
        return
    from voorbeelden.local import running_local_llm

    with running_local_llm() as llm:
        yield Backend(kind="local", base_url=llm.base_url, info=llm.describe())


def model_seconds_factor(time_scale: float | None) -> float:
    """THE one place measured seconds become model seconds: ``1 / time_scale`` for results of the simulator
    (rows tagged with its ``time_scale``), exactly 1.0 for a real endpoint (tagged ``None``): real time is
    never rescaled."""
    if time_scale is None:
        return 1.0
    ts = float(time_scale)
    return 1.0 if ts != ts or ts <= 0 else 1.0 / ts


def probe(base_url: str, timeout_s: float = 5.0) -> str | None:
    """None when ``base_url`` answers HTTP at all (any status), else why not (never mentioning the key)."""
    import httpx2

    try:
        httpx2.get(
            base_url.rstrip("/") + "/models",
            headers={"Authorization": f"Bearer {api_key_from_env()}"},
            timeout=timeout_s,
        )
    except httpx2.HTTPError as exc:
        return redact(f"{type(exc).__name__}: {exc}") if str(exc) else type(exc).__name__
    return None

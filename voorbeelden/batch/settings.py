"""What a batch is told besides its input, declared once: names, types, defaults and what each one means.

:func:`~voorbeelden.batch.generate_many` takes these as keyword arguments and hands the batch's steps the one
object, so a setting is declared in one place and not again in every helper that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voorbeelden.batch.admission import CALLS_PER_TERM
from voorbeelden.batch.inputs import RequestSource, check_source, is_path
from voorbeelden.batch.output import check_targets

if TYPE_CHECKING:
    import openai

    from voorbeelden.batch.cache import ResponseCache
    from voorbeelden.batch.transport import GatedTransport
    from voorbeelden.config import GeneratorConfig

__all__ = ["BatchSettings"]


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """The keyword arguments of :func:`~voorbeelden.batch.generate_many`, with their defaults.

    Where results go: ``out`` is a JSONL file, one line per finished term; terms already finished there are
    skipped (failed ones too, unless ``retry_failed``). Each line is compact (parts, status, errors, a
    timing summary); every call attempt goes to ``records`` (one JSON line per attempt) only when it is given.
    ``fsync`` flushes both to disk after every term; ``on_result`` sees every line as it is written;
    ``progress`` None shows a bar when stderr is a terminal.

    The endpoint: ``base_url``/``api_key`` as :func:`voorbeelden.backend.make_client` reads them. ``client``
    bypasses the gate entirely (an ungated baseline); ``transport`` supplies a prepared gate.

    Limits (used only when the gate is built here): ``rpm``/``tpm`` per ``period_s`` (60; ``60 * time_scale``
    for the simulator), at most ``max_in_flight`` calls at once, found adaptively from ``initial_in_flight``
    below that cap unless ``adaptive=False`` (then a fixed semaphore of ``max_in_flight``). ``cache`` True
    uses ``.cache/voorbeelden`` (or ``$VOORBEELDEN_CACHE_DIR``), a path or a :class:`ResponseCache` chooses
    the store. ``record_events`` keeps every attempt's timing in the gate (for plots). With a caller's own
    ``client`` and no gate, ``max_in_flight`` still sizes how many terms run at once.

    Each term: ``strategy``, ``config`` (or the default configuration with ``model``), ``call_timeout_s``,
    ``max_retries`` and ``run_id`` as :func:`voorbeelden.generate` takes them. ``terms_in_flight`` fixes how
    many terms run at once (default: as many as keep the gate's slots full, see ``admission.py``).
    """

    # where results go
    out: str | os.PathLike[str] | None = None
    records: str | os.PathLike[str] | None = None
    fsync: bool = False
    retry_failed: bool = False
    on_result: Callable[[dict[str, Any]], None] | None = None
    progress: bool | None = None
    # the endpoint
    base_url: str | None = None
    api_key: str | None = None
    client: openai.AsyncOpenAI | None = None
    transport: GatedTransport | None = None
    # the gate built here
    rpm: float | None = None
    tpm: float | None = None
    period_s: float = 60.0
    max_in_flight: int = 64
    adaptive: bool = True
    initial_in_flight: int = 16
    cache: bool | str | os.PathLike[str] | ResponseCache = False
    record_events: bool = False
    # each term
    strategy: str = "parallel"
    config: GeneratorConfig | None = None
    model: str | None = None
    call_timeout_s: float | None = None
    max_retries: int | None = None
    run_id: str = ""
    terms_in_flight: int | None = None

    def check(self, requests: RequestSource) -> int:
        """Refuse what would fail for every term, before any work; the calls one term has in flight at most.

        An unknown strategy fails here once, not as a failed record for every term; a missing or unreadable
        input, a directory, or an ``out`` that is the input itself get a message before anything opens."""
        from voorbeelden.strategies.registry import info

        strategy = info(self.strategy)
        check_source(requests)
        source = os.fspath(requests) if is_path(requests) else None  # type: ignore[call-overload]
        check_targets(source, self.out, self.records)
        return strategy.in_flight(getattr(self.config, "k", None) or 3, CALLS_PER_TERM)

    def term_config(self) -> GeneratorConfig | None:
        """``config`` as given; without one, the default configuration on ``model`` (ignored next to a config)."""
        if self.config is None and self.model:
            from voorbeelden.config import GeneratorConfig

            return GeneratorConfig().with_model(self.model)
        return self.config

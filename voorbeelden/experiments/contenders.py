"""The ways to send N terms x 6 calls into a rate-limited endpoint that the rate-limit benchmark compares.

``batch``          :func:`voorbeelden.batch.generate_many` told a limit (``--rpm``) as its starting estimate;
``batch-untold``   the same, told nothing: the endpoint's headers alone;
``naive``          every term at once (``asyncio.gather`` of :func:`voorbeelden.generate`), only the
                   generator's own retries (2, honouring ``retry-after``) between the batch and the limit;
``cookbook``       the OpenAI cookbook's parallel processor as published (:mod:`voorbeelden.experiments.cookbook`);
``cookbook-status`` the same with its rate-limit detection fixed to an HTTP 429 (so its 15 s pause happens).

Each runner takes the endpoint and the terms, returns plain numbers (parts ok and failed, its own wall time
from just before the first send) and leaves the endpoint's view (accepted requests, 429s) to the caller,
which reads it from the simulator's counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from voorbeelden.begrippen import distinct_requests
from voorbeelden.types import ALL_PARTS

__all__ = ["CONTENDER_KINDS", "run_contender_job"]

CONTENDER_KINDS: tuple[str, ...] = ("batch", "batch-untold", "naive", "cookbook", "cookbook-status")


async def _run_batch(base_url: str, n_terms: int, told_rpm: float | None, period_s: float) -> dict[str, Any]:
    from voorbeelden.backend import PLACEHOLDER_KEY
    from voorbeelden.batch import generate_many

    t_start = time.monotonic()
    summary = await generate_many(
        distinct_requests(n_terms),
        base_url=base_url,
        api_key=PLACEHOLDER_KEY,
        rpm=told_rpm,
        period_s=period_s,
        progress=False,
    )
    return {
        "t_start": t_start,
        "wall_s": time.monotonic() - t_start,
        "ok": n_terms * len(ALL_PARTS) - summary.parts_lost,
        "failed": summary.parts_lost,
        "attempts": summary.gate.get("sent", 0),
        "detail": summary.gate,
    }


async def _run_naive(base_url: str, n_terms: int) -> dict[str, Any]:
    import asyncio

    from voorbeelden.backend import PLACEHOLDER_KEY, make_client
    from voorbeelden.batch.output import request_key
    from voorbeelden.generator import generate

    terms = list(distinct_requests(n_terms))
    client = make_client(base_url, PLACEHOLDER_KEY)
    try:
        t_start = time.monotonic()
        gens = await asyncio.gather(
            *(generate(t, "parallel", client=client, sim_key=request_key(t)) for t in terms)
        )
        wall = time.monotonic() - t_start
    finally:
        await client.close()
    failed = sum(g.n_failed for g in gens)
    return {
        "t_start": t_start,
        "wall_s": wall,
        "ok": len(terms) * len(ALL_PARTS) - failed,
        "failed": failed,
        "attempts": sum(len(g.records) for g in gens),
        "detail": {},
    }


def _cookbook_requests(n_terms: int) -> Iterator[Any]:
    from voorbeelden.batch.output import request_key
    from voorbeelden.config import default_part_settings
    from voorbeelden.experiments.cookbook import CookbookRequest
    from voorbeelden.prompts import build_messages
    from voorbeelden.tokens import estimate_call_tokens

    settings = default_part_settings()
    for term in distinct_requests(n_terms):
        key = request_key(term)
        for part in ALL_PARTS:
            s = settings[part]
            body = {
                "model": s.model,
                "messages": build_messages(term, part, s),
                "temperature": s.temperature,
                "max_tokens": s.max_tokens,
            }
            yield CookbookRequest(body, estimate_call_tokens(body), headers={"x-sim-key": key})


async def _run_cookbook(
    base_url: str, n_terms: int, told_rpm: float, time_scale: float, detect: str
) -> dict[str, Any]:
    from voorbeelden.backend import PLACEHOLDER_KEY
    from voorbeelden.experiments.cookbook import process_requests

    t_start = time.monotonic()
    status = await process_requests(
        _cookbook_requests(n_terms),
        request_url=base_url.rstrip("/") + "/chat/completions",
        api_key=PLACEHOLDER_KEY,
        max_requests_per_minute=told_rpm,
        max_tokens_per_minute=1e12,  # the benchmark limits requests only
        time_scale=time_scale,
        detect=detect,
    )
    return {
        "t_start": t_start,
        "wall_s": time.monotonic() - t_start,
        "ok": status.num_tasks_succeeded,
        "failed": status.num_tasks_failed,
        "attempts": status.attempts,
        "detail": {
            "rate_limit_errors_seen": status.num_rate_limit_errors,
            "api_errors": status.num_api_errors,
            "other_errors": status.num_other_errors,
        },
    }


def _warm_imports() -> None:
    # Importing the SDK and the generator takes about a second; it belongs to no contender's wall time.
    import importlib

    for name in ("aiohttp", "openai", "voorbeelden.batch", "voorbeelden.generator", "voorbeelden.strategies"):
        importlib.import_module(name)


async def run_contender_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one contender against ``spec["base_url"]``; ``spec`` is plain JSON so it can cross a process."""
    _warm_imports()
    kind, base_url, n = spec["kind"], spec["base_url"], int(spec["n_terms"])
    time_scale, told = float(spec["time_scale"]), spec.get("told_rpm")
    if kind == "batch":
        return await _run_batch(base_url, n, float(told), 60.0 * time_scale)
    if kind == "batch-untold":
        return await _run_batch(base_url, n, None, 60.0 * time_scale)
    if kind == "naive":
        return await _run_naive(base_url, n)
    if kind in ("cookbook", "cookbook-status"):
        detect = "status" if kind == "cookbook-status" else "code-429"
        return await _run_cookbook(base_url, n, float(told), time_scale, detect)
    raise ValueError(f"unknown contender {kind!r}; use one of {', '.join(CONTENDER_KINDS)}")

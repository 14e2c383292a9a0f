"""Notebook 04's Batch API section: N terms online under a rate limit against the same N through the Batch API,
completion time and cost, both measured on the simulator.

What is measured and what is assumed. Online: ``voorbeelden batch`` (the gated client) against a fresh
simulator limited to ``rpm`` requests per simulated minute; its completion time grows with N, and its bound is
the limit (``6 N / rpm`` minutes). Batch API: :func:`voorbeelden.batch.provider.run.run_batch_api` against the
simulator's ``/v1/batches``, whose lifecycle takes ``validate + delay + finalize`` simulated seconds whatever
N is: that is the simulator's assumption, not OpenAI's promise (OpenAI promises only "within 24 hours"; real
batches take minutes to hours). So the crossover N in the plot moves with ``batch_api_delay_s``; the shape
(online linear in N, batch flat up to the provider's queue) and the cost ratio are the findings. Cost is
priced from the tokens the simulator reported, at the list price (online) and the Batch API price (half) of
the configured model, as of :data:`voorbeelden.prices.PRICES_AS_OF`; None when the model has no list price.
Every figure carries its completeness (terms ok of N) and its bound.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voorbeelden.types import ALL_PARTS

__all__ = ["BatchApiPoint", "plot_batch_api", "run_batch_api_comparison"]

VALIDATE_S = 2.0  # simulated seconds of the simulator's validating and finalizing phases
FINALIZE_S = 2.0


@dataclass(frozen=True)
class BatchApiPoint:
    """One way (``online`` or ``batch-api``) for N terms: completion time in simulated seconds, its bound,
    how many terms came back complete, the tokens and what they cost."""

    way: str
    n_terms: int
    wall_model_s: float
    bound_model_s: float
    ok: int
    failed: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    price: str

    def row(self) -> dict[str, Any]:
        return asdict(self)


def _requests(n: int, tag: str) -> list[dict[str, Any]]:
    from voorbeelden.begrippen import distinct_requests

    return [{**r.to_dict(), "begrip": f"{r.begrip} {tag}"} for r in distinct_requests(n)]


def _tokens(rows: list[dict[str, Any]]) -> tuple[int, int]:
    t_in = sum(int(r.get("timing", {}).get("tokens_in") or 0) for r in rows)
    t_out = sum(int(r.get("timing", {}).get("tokens_out") or 0) for r in rows)
    return t_in, t_out


def _cost(model: str, tokens_in: int, tokens_out: int, batch: bool) -> tuple[float | None, str]:
    from voorbeelden.prices import PRICES_AS_OF, price_of

    price = price_of(model)
    if price is None:
        return None, f"{model}: no list price"
    if batch:
        price = price.batch()
    tier = "Batch API price" if batch else "list price"
    return round(price.cost(tokens_in, tokens_out), 4), f"{model} {tier} as of {PRICES_AS_OF}"


def _online(n: int, profile: str, time_scale: float, rpm: float, seed: int, model: str) -> BatchApiPoint:
    from voorbeelden.batch import generate_many_sync
    from voorbeelden.sim import SimConfig, running_simulator

    rows: list[dict[str, Any]] = []
    config = SimConfig(profile=profile, time_scale=time_scale, seed=seed, rpm=rpm)
    with running_simulator(config) as sim:
        t0 = time.monotonic()
        summary = generate_many_sync(
            _requests(n, "online"),
            base_url=sim.base_url,
            api_key="sk-simulated",
            rpm=rpm,
            period_s=60.0 * time_scale,
            model=model,
            progress=False,
            on_result=rows.append,
        )
        wall = time.monotonic() - t0
    t_in, t_out = _tokens(rows)
    cost, price = _cost(model, t_in, t_out, batch=False)
    bound = 60.0 * n * len(ALL_PARTS) / rpm
    return BatchApiPoint(
        "online",
        n,
        wall / time_scale,
        bound,
        summary.ok,
        summary.failed,
        t_in,
        t_out,
        cost,
        price,
    )


async def _batch_runs(
    ns: list[int], profile: str, time_scale: float, delay_s: float, seed: int, model: str, folder: Path
) -> list[BatchApiPoint]:
    """Every N through one simulator's Batch API at once (the batches run side by side, as at a provider)."""
    from voorbeelden.backend import make_client
    from voorbeelden.batch.output import read_results
    from voorbeelden.batch.provider.cli import configure_sim_batches
    from voorbeelden.batch.provider.run import BatchApiSettings, run_batch_api
    from voorbeelden.config import GeneratorConfig
    from voorbeelden.sim import SimConfig, running_simulator

    with running_simulator(SimConfig(profile=profile, time_scale=time_scale, seed=seed)) as sim:
        configure_sim_batches(
            sim.base_url,
            validate_s=VALIDATE_S,
            complete_s=delay_s,
            finalize_s=FINALIZE_S,
            line_error_rate=0.0,
        )
        client = make_client(sim.base_url, "sk-simulated").with_options(max_retries=3)
        try:

            async def one(n: int) -> tuple[int, float, Any]:
                out = folder / f"batch_api_{n}.jsonl"
                src = folder / f"batch_api_{n}_in.jsonl"
                src.write_text(
                    "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _requests(n, "batch"))
                )
                settings = BatchApiSettings(
                    out=out,
                    host=sim.base_url,
                    embedded=True,
                    config=GeneratorConfig().with_model(model),
                    poll_s=max(0.01, 2.0 * time_scale),
                    progress=False,
                )
                t0 = time.monotonic()
                summary = await run_batch_api(src, client, settings)
                return n, time.monotonic() - t0, (summary, list(read_results(out).values()))

            done = await asyncio.gather(*(one(n) for n in ns))
        finally:
            await client.close()
    points = []
    for n, wall, (summary, rows) in done:
        t_in, t_out = _tokens(rows)
        cost, price = _cost(model, t_in, t_out, batch=True)
        bound = VALIDATE_S + delay_s + FINALIZE_S
        points.append(
            BatchApiPoint(
                "batch-api",
                n,
                wall / time_scale,
                bound,
                summary.complete,
                summary.failed,
                t_in,
                t_out,
                cost,
                price,
            )
        )
    return points


def run_batch_api_comparison(
    ns: list[int],
    *,
    profile: str,
    time_scale: float,
    rpm: float,
    delay_s: float,
    seed: int = 0,
    model: str = "gpt-4.1",
) -> list[BatchApiPoint]:
    """Online and Batch API for every N in ``ns`` (online one N after the other, each against a fresh limit;
    the batches side by side); points in the order online N1.., batch N1... Empty ``ns``: no runs."""
    from voorbeelden.syncrun import run_sync

    if not ns:
        return []
    points = [_online(n, profile, time_scale, rpm, seed, model) for n in ns]
    with tempfile.TemporaryDirectory(prefix="voorbeelden-batch-api-") as tmp:
        points += run_sync(_batch_runs(ns, profile, time_scale, delay_s, seed, model, Path(tmp)))
    return points


def plot_batch_api(points: list[BatchApiPoint], path: str | Path | None = None) -> Any:
    """Completion time (simulated minutes, with each way's bound dashed) and cost against N, per way."""
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(11, 3.8))
    for way, color in (("online", "tab:blue"), ("batch-api", "tab:orange")):
        pts = sorted((p for p in points if p.way == way), key=lambda p: p.n_terms)
        if not pts:
            continue
        ns = [p.n_terms for p in pts]
        done = ", ".join(f"{p.ok}/{p.n_terms}" for p in pts)
        ax_t.plot(
            ns, [p.wall_model_s / 60 for p in pts], "o-", color=color, label=f"{way} (complete: {done})"
        )
        ax_t.plot(ns, [p.bound_model_s / 60 for p in pts], "x--", color=color, lw=0.9, label=f"{way} bound")
        if all(p.cost_usd is not None for p in pts):
            ax_c.plot(ns, [p.cost_usd for p in pts], "o-", color=color, label=f"{way}: {pts[0].price}")
    ax_t.set_ylim(bottom=0)
    ax_c.set_ylim(bottom=0)
    ax_t.set_xlabel("terms (N)")
    ax_t.set_ylabel("completion time (simulated minutes)")
    ax_t.set_title("online: bound by the rate limit; batch: by the provider's queue", fontsize=9)
    ax_t.legend(fontsize=7)
    ax_c.set_xlabel("terms (N)")
    ax_c.set_ylabel("cost (USD, from the simulated tokens)")
    ax_c.set_title("same tokens; the Batch API at half the list price", fontsize=9)
    ax_c.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig

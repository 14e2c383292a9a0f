"""Paired trials: every strategy runs every (begrip, trial) against the same simulator draws.

Pairing: for each (begrip, trial) all strategies send the same ``sim_key``, so the simulator draws the same
latencies and faults for them (common random numbers: differences between strategies are not noise between
draws). The order alternates per pair, so neither strategy always goes first (warm connections, a busy
machine). Warm-up trials run first, over the first begrip, and are flagged ``warmup=True`` and excluded by the
statistics. Each generation is appended to a JSONL file as soon as it finishes (one line, with its call
records) and flushed, so a long run that dies keeps what it measured.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from voorbeelden.redact import redact_obj
from voorbeelden.types import Generation, Request

T = TypeVar("T")

GENERATION_COLUMNS = (
    "run_id",
    "scenario",
    "strategy",
    "trial",
    "begrip",
    "warmup",
    "pair",
    "order",
    "sim_key",
    "wall_s",
    "n_ok",
    "n_failed",
    "n_calls",
    "sum_latency_s",
    "max_latency_s",
)


@dataclass
class TrialResults:
    """The generations (one row each) and their call records (one row per attempt) of a run."""

    generations: pd.DataFrame
    records: pd.DataFrame
    path: Path | None = None

    def measured(self) -> TrialResults:
        """Without the warm-up trials."""
        g = self.generations
        r = self.records
        return TrialResults(
            g[~g["warmup"]].reset_index(drop=True) if len(g) else g,
            r[~r["warmup"]].reset_index(drop=True) if len(r) else r,
            self.path,
        )


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also inside a running Jupyter kernel (where
    ``asyncio.run`` raises): then it runs on a fresh event loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())  # type: ignore[arg-type]
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="voorbeelden-trials", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _generation_row(gen: Generation, meta: Mapping[str, Any]) -> dict[str, Any]:
    row = {**gen.summary_row(), **meta}
    row["records"] = gen.record_rows()
    return row


def rows_to_frames(rows: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generation rows (each with a ``records`` list) -> (generations, records) DataFrames. Every record row
    carries its generation's identifying columns and tags, so records can be grouped without a join."""
    gens: list[dict[str, Any]] = []
    recs: list[dict[str, Any]] = []
    for row in rows:
        g = {k: v for k, v in row.items() if k != "records"}
        gens.append(g)
        carry = {k: v for k, v in g.items() if k not in _SUMMARY_ONLY}
        for rec in row.get("records", []):
            recs.append({**carry, **rec, "warmup": g.get("warmup", False), "pair": g.get("pair")})
    gdf = pd.DataFrame(gens)
    rdf = pd.DataFrame(recs)
    for df in (gdf, rdf):
        if "warmup" in df:
            df["warmup"] = df["warmup"].astype(bool)
    return gdf, rdf


_SUMMARY_ONLY = {
    "wall_s",
    "n_ok",
    "n_failed",
    "n_calls",
    "sum_latency_s",
    "max_latency_s",
    "tokens_in",
    "tokens_out",
    "waited_s",
    "first_visible_s",
    "errors",
    "order",
}


def load_results(paths: str | Path | Sequence[str | Path]) -> TrialResults:
    """Read one or more JSONL files written by :func:`run_trials` back into DataFrames (missing files are
    skipped; a torn last line from a killed run is ignored)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    rows: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if not p.is_file():
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    gdf, rdf = rows_to_frames(rows)
    return TrialResults(gdf, rdf, Path(paths[0]) if len(paths) == 1 else None)


async def arun_trials(
    begrippen: Sequence[Request | Mapping[str, Any]],
    *,
    base_url: str,
    api_key: str,
    strategies: Sequence[str] = ("sequential", "parallel"),
    trials: int = 3,
    warmup: int = 1,
    out: str | Path | None = None,
    scenario: str = "",
    run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    key_prefix: str = "",
    progress: bool = False,
    **generate_kwargs: Any,
) -> TrialResults:
    """The async form of :func:`run_trials` (use it with top-level ``await`` in a notebook)."""
    from voorbeelden.generator import generate

    if trials < 1 or warmup < 0:
        raise ValueError(f"trials must be >= 1 and warmup >= 0, got trials={trials}, warmup={warmup}")
    if not strategies:
        raise ValueError("strategies is empty")
    requests = [Request.coerce(b) for b in begrippen]
    if not requests:
        raise ValueError("begrippen is empty")
    run_id = run_id or uuid.uuid4().hex[:8]
    tags = dict(tags or {})
    plan: list[tuple[bool, int, int]] = [(True, t, 0) for t in range(warmup)]
    plan += [(False, t, i) for t in range(trials) for i in range(len(requests))]

    bar = None
    if progress:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan) * len(strategies), desc=scenario or "trials", unit="gen", file=sys.stderr)

    from voorbeelden.backend import make_client

    # One client for the whole run, created on this loop: calls reuse warm connections, as a service would.
    client = make_client(base_url, api_key)
    rows: list[dict[str, Any]] = []
    sink = None
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        # Written between generations, never during one, so the blocking write does not skew timings.
        sink = Path(out).open("a", encoding="utf-8")  # noqa: ASYNC230
    # A collector pause inside a generation delays its call starts and response reads (measured: a 0.19 s
    # stall in one parallel generation in a notebook kernel). Objects that exist now (the kernel's imports) are
    # frozen out of the collector's scans, and garbage is collected between generations, outside any timing.
    gc.freeze()
    try:
        for is_warmup, t, i in plan:
            req = requests[i]
            # The same key for every strategy of this pair: identical latency and fault draws.
            sim_key = f"{key_prefix}{'warmup' if is_warmup else 'trial'}:{t}:{req.begrip}"
            order = list(strategies) if (t + i) % 2 == 0 else list(reversed(strategies))
            pair = f"{'w' if is_warmup else ''}{t}:{req.begrip}"
            for position, strategy in enumerate(order):
                gc.collect()  # the garbage of the last generation is collected here, not in this one's timing
                gen = await generate(
                    req,
                    strategy,
                    client=client,
                    sim_key=sim_key,
                    run_id=run_id,
                    scenario=scenario,
                    trial=-1 - t if is_warmup else t,
                    **generate_kwargs,
                )
                meta = {
                    **tags,
                    "run_id": run_id,
                    "scenario": scenario,
                    "trial": -1 - t if is_warmup else t,
                    "warmup": is_warmup,
                    "pair": pair,
                    "order": position,
                    "sim_key": sim_key,
                    "finished_at": time.time(),
                }
                row = redact_obj(_generation_row(gen, meta))  # the side file is an output: no keys in it
                rows.append(row)
                if sink is not None:
                    sink.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                    sink.flush()
                if bar is not None:
                    bar.update(1)
    finally:
        gc.unfreeze()
        await client.close()
        if sink is not None:
            sink.close()
        if bar is not None:
            bar.close()
    gdf, rdf = rows_to_frames(rows)
    return TrialResults(gdf, rdf, Path(out) if out is not None else None)


def run_trials(
    begrippen: Sequence[Request | Mapping[str, Any]],
    *,
    backend: Any = None,
    base_url: str | None = None,
    api_key: str | None = None,
    profile: str = "uniform-2s",
    time_scale: float = 0.01,
    seed: int = 0,
    **kwargs: Any,
) -> TrialResults:
    """Run paired trials of ``strategies`` over ``begrippen`` and return (generations, records) DataFrames.

    The backend is, in order of preference: an open :class:`~voorbeelden.backend.Backend`
    (``backend=``), a ``base_url`` (with ``api_key``, default from the environment), or else an embedded
    simulator started for this call with ``profile``/``time_scale``/``seed`` as a subprocess (so the server
    does not share the client's GIL). Other keyword arguments go to :func:`arun_trials` and from there to
    ``generate`` (``call_timeout_s``, ``max_retries``, ``deadline_s``, ``k``, ...). Works in scripts and inside
    a running Jupyter kernel.
    """
    from voorbeelden.backend import api_key_from_env, open_backend

    if backend is not None:
        url, key = backend.base_url, backend.api_key
        return run_sync(lambda: arun_trials(begrippen, base_url=url, api_key=key, **kwargs))
    if base_url is not None:
        key = api_key if api_key is not None else api_key_from_env()
        return run_sync(lambda: arun_trials(begrippen, base_url=base_url, api_key=key, **kwargs))
    with open_backend("sim", profile=profile, time_scale=time_scale, seed=seed) as be:
        tags = {"profile": profile, "time_scale": time_scale, **(kwargs.pop("tags", None) or {})}
        return run_sync(
            lambda: arun_trials(begrippen, base_url=be.base_url, api_key=be.api_key, tags=tags, **kwargs)
        )

"""Paired trials: every strategy runs every (begrip, trial) against the same simulator draws.

Pairing: for each (begrip, trial) all strategies send the same ``sim_key``, so the simulator draws the same
latencies and faults for them (common random numbers: differences between strategies are not noise between
draws). The order alternates per pair, so neither strategy always goes first (warm connections, a busy
machine). Warm-up trials run first, over the first begrip, and are flagged ``warmup=True`` and excluded by the
statistics. Each generation is appended to a JSONL file as soon as it finishes (one line, with its call
records) and flushed, so a long run that dies keeps what it measured.
"""

from __future__ import annotations

import gc
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from voorbeelden.experiments.gcpause import gc_paused
from voorbeelden.redact import redact_obj
from voorbeelden.syncrun import run_sync
from voorbeelden.types import Generation, Request

T = TypeVar("T")


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


@dataclass(frozen=True)
class _Slot:
    """One (begrip, trial) of the plan: every strategy runs it with the same simulator key."""

    warmup: bool
    trial: int
    index: int
    request: Request
    strategies: Sequence[str]
    key_prefix: str

    @property
    def trial_no(self) -> int:
        return -1 - self.trial if self.warmup else self.trial

    @property
    def sim_key(self) -> str:
        # The same key for every strategy of this pair: identical latency and fault draws.
        return f"{self.key_prefix}{'warmup' if self.warmup else 'trial'}:{self.trial}:{self.request.begrip}"

    @property
    def pair(self) -> str:
        return f"{'w' if self.warmup else ''}{self.trial}:{self.request.begrip}"

    def meta(self, position: int) -> dict[str, Any]:
        """The row's identifying columns for the strategy run at ``position`` of this pair."""
        return {
            "trial": self.trial_no,
            "warmup": self.warmup,
            "pair": self.pair,
            "order": position,
            "sim_key": self.sim_key,
            "finished_at": time.time(),
        }

    def order(self) -> list[str]:
        """Alternates per pair, so neither strategy always goes first."""
        s = list(self.strategies)
        return s if (self.trial + self.index) % 2 == 0 else s[::-1]


def _plan(
    requests: Sequence[Request], strategies: Sequence[str], trials: int, warmup: int, key_prefix: str
) -> list[_Slot]:
    """Warm-up trials over the first begrip first, then every (trial, begrip)."""
    slots = [_Slot(True, t, 0, requests[0], strategies, key_prefix) for t in range(warmup)]
    slots += [
        _Slot(False, t, i, req, strategies, key_prefix)
        for t in range(trials)
        for i, req in enumerate(requests)
    ]
    return slots


def _progress_bar(show: bool, total: int, desc: str) -> Any:
    if not show:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="gen", file=sys.stderr)


class _Sink:
    """The JSONL side file (if any), written between generations, never during one, so the blocking write does
    not skew timings; flushed per line, so a run that dies keeps what it measured."""

    def __init__(self, out: str | Path | None) -> None:
        self._file = None
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self._file = Path(out).open("a", encoding="utf-8")

    def write(self, row: Mapping[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _validate(
    begrippen: Sequence[Request | Mapping[str, Any]], strategies: Sequence[str], trials: int, warmup: int
) -> list[Request]:
    if trials < 1 or warmup < 0:
        raise ValueError(f"trials must be >= 1 and warmup >= 0, got trials={trials}, warmup={warmup}")
    if not strategies:
        raise ValueError("strategies is empty")
    requests = [Request.coerce(b) for b in begrippen]
    if not requests:
        raise ValueError("begrippen is empty")
    return requests


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
    from voorbeelden.backend import make_client
    from voorbeelden.generator import generate

    requests = _validate(begrippen, strategies, trials, warmup)
    run_id = run_id or uuid.uuid4().hex[:8]
    tags = dict(tags or {})
    plan = _plan(requests, strategies, trials, warmup, key_prefix)
    bar = _progress_bar(progress, len(plan) * len(strategies), scenario or "trials")
    # One client for the whole run, created on this loop: calls reuse warm connections, as a service would.
    client = make_client(base_url, api_key)
    rows: list[dict[str, Any]] = []
    sink = _Sink(out)
    # The collector is frozen but not disabled: garbage is collected between generations, outside any timing.
    try:
        with gc_paused(disable=False):
            for slot in plan:
                for position, strategy in enumerate(slot.order()):
                    gc.collect()  # the last generation's garbage is collected here, not in this one's timing
                    gen = await generate(
                        slot.request,
                        strategy,
                        client=client,
                        sim_key=slot.sim_key,
                        run_id=run_id,
                        scenario=scenario,
                        trial=slot.trial_no,
                        **generate_kwargs,
                    )
                    meta = {**tags, "run_id": run_id, "scenario": scenario, **slot.meta(position)}
                    row = redact_obj(_generation_row(gen, meta))  # the side file is an output: no keys in it
                    rows.append(row)
                    sink.write(row)
                    if bar is not None:
                        bar.update(1)
    finally:
        await client.close()
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
        # The backend knows whether it is the simulator: no /health question per generation.
        kwargs.setdefault("simulator", backend.simulated)
        return run_sync(arun_trials(begrippen, base_url=url, api_key=key, **kwargs))
    if base_url is not None:
        key = api_key if api_key is not None else api_key_from_env()
        return run_sync(arun_trials(begrippen, base_url=base_url, api_key=key, **kwargs))
    with open_backend("sim", profile=profile, time_scale=time_scale, seed=seed) as be:
        tags = {"profile": profile, "time_scale": time_scale, **(kwargs.pop("tags", None) or {})}
        kwargs.setdefault("simulator", True)
        return run_sync(arun_trials(begrippen, base_url=be.base_url, api_key=be.api_key, tags=tags, **kwargs))

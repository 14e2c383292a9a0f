"""Notebook 08: one model, two servers. What six parallel calls buy on a server that queues them (llama-cpp-
python, one request at a time) and on one that batches them (llama.cpp's llama-server, N slots).

Per engine, with the server started here for the engine alone (so neither measures the other's warm cache):

1. paired sequential/parallel trials (the order alternating per pair), speedup with its bootstrap 95% CI
   over complete pairs, and a Gantt of the median pair;
2. the server's own account of every generation beside the client's records (llama-server only: ``/metrics``
   read before and after, gauges polled during; :mod:`voorbeelden.local.metrics`): tokens predicted, decode
   seconds summed over streams, busy slots per decode step, the peaks of requests processing and deferred.
   That is what says whether the server batched or queued the calls, not an inference from the wall;
3. the batching curve: ``n`` identical streams at once (``n`` in ``curve_streams``), each asked for
   ``curve_tokens`` tokens, repeated ``curve_reps`` times: per-stream decode tokens/s (from the stream's own
   first-to-last token time) and total tokens/s over the wall, against ``n``.

On a simulated backend the two engines are the simulator's stand-ins (capacity 1 for the queueing one, the
``batching-6`` profile for the batching one), so the notebook runs in every report; the side file says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import statistics
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from voorbeelden.begrippen import load_begrippen
from voorbeelden.experiments import stats
from voorbeelden.experiments.speedup import _fresh, failure_reason, write_json
from voorbeelden.experiments.trials import TrialResults, rows_to_frames
from voorbeelden.redact import redact_obj
from voorbeelden.syncrun import run_sync
from voorbeelden.types import Request

NB08 = "08_local_engines"
QUEUEING, BATCHING = "llama-cpp-python", "llama-server"
SIM_STANDINS = {QUEUEING: {"capacity": 1}, BATCHING: {"profile": "batching-6"}}
# A prompt a small model answers at length; with ignore_eos (llama-server) every stream decodes exactly the
# asked number of tokens, so curve points compare like with like.
CURVE_PROMPT = "Schrijf een lang verhaal over een dag in het leven van een ambtenaar in Den Haag."


@dataclasses.dataclass
class EngineServer:
    """Where one engine's calls go while it runs."""

    engine: str
    slots: int
    base_url: str
    api_key: str
    model: str | None
    info: dict[str, Any]
    has_metrics: bool
    time_scale: float | None  # the simulator's; None on a real server


@contextlib.contextmanager
def open_engine(engine: str, P: Mapping[str, Any]) -> Iterator[EngineServer]:
    """Start ``engine`` for the block: the real local server when the backend is ``local``, else the
    simulator's stand-in for it."""
    slots = int(P["slots"]) if engine == BATCHING else 1
    if P["backend_kind"] == "local":
        from voorbeelden.local import running_local_llm

        kwargs: dict[str, Any] = {"engine": engine, "threads": P["threads"], "n_ctx": P["n_ctx"]}
        if engine == BATCHING:
            kwargs["slots"] = slots
        with running_local_llm(**kwargs) as llm:
            info = llm.describe()
            yield EngineServer(
                engine, slots, llm.base_url, "not-needed", llm.model, info, llm.has_metrics, None
            )
        return
    from voorbeelden.backend import open_backend

    standin = {"profile": P["sim_profile"], **SIM_STANDINS[engine]}
    with open_backend("sim", time_scale=P["time_scale"], seed=P["seed"], **standin) as be:
        info = {**be.describe(), "engine": engine, "standin": standin}
        yield EngineServer(engine, slots, be.base_url, be.api_key, None, info, False, be.time_scale)


# --- paired trials with the server's counters -----------------------------------------------------------


def _server_columns(sampler: Any) -> dict[str, Any]:
    d = sampler.delta
    return {
        "srv_tokens_predicted": d.tokens_predicted,
        "srv_decode_s": d.decode_seconds,
        "srv_n_decode": d.n_decode,
        "srv_busy_slots_per_decode": d.busy_slots_per_decode,
        "srv_stream_tokens_per_s": d.stream_tokens_per_s,
        "srv_max_processing": sampler.peaks.max_processing,
        "srv_max_deferred": sampler.peaks.max_deferred,
        "srv_samples": sampler.peaks.samples,
    }


async def _paired_trials(
    srv: EngineServer, requests: Sequence[Request], P: Mapping[str, Any], out: Path
) -> TrialResults:
    """Sequential and parallel on every (trial, begrip), order alternating, each generation wrapped in a
    :class:`~voorbeelden.local.metrics.MetricsSampler` when the server has ``/metrics``."""
    from voorbeelden.backend import make_client
    from voorbeelden.experiments.retries import bench_config
    from voorbeelden.generator import generate
    from voorbeelden.local.metrics import MetricsSampler

    scale = srv.time_scale or 1.0
    config = bench_config(scale, call_timeout_s=P["call_timeout_s"] * scale)
    if P["temperature"] is not None or P["sampling_seed"] is not None:
        config = config.with_sampling(temperature=P["temperature"], seed=P["sampling_seed"])
    if P["max_tokens"] is not None:
        config = config.with_max_tokens(P["max_tokens"])
    if srv.model:
        config = config.with_model(srv.model)
    run_id = uuid.uuid4().hex[:8]
    client = make_client(srv.base_url, srv.api_key)
    plan = [(True, t, 0, requests[0]) for t in range(P["warmup"])]
    plan += [(False, t, i, r) for t in range(P["trials"]) for i, r in enumerate(requests)]
    rows: list[dict[str, Any]] = []
    try:
        # One short request first: a fresh server's first call pays for paging the model in, which would
        # count against whichever strategy of the first pair went first (warm-up trials are the fuller way).
        await _one_stream(client, srv, 8, 0)
        with out.open("a", encoding="utf-8") as sink:
            for warmup, trial, index, req in plan:
                order = ["sequential", "parallel"]
                if (trial + index) % 2:
                    order.reverse()
                pair = f"{'w' if warmup else ''}{trial}:{req.begrip}"
                for position, strategy in enumerate(order):
                    gc.collect()
                    sampler = MetricsSampler(srv.base_url, interval_s=0.5) if srv.has_metrics else None
                    with sampler if sampler is not None else contextlib.nullcontext():
                        gen = await generate(
                            req, strategy, client=client, config=config, run_id=run_id, scenario=NB08,
                            sim_key=f"s{P['seed']}:{pair}", trial=-1 - trial if warmup else trial,
                        )  # fmt: skip
                    row = {**gen.summary_row(), "records": gen.record_rows()}
                    row.update(
                        engine=srv.engine, slots=srv.slots, warmup=warmup, pair=pair, order=position,
                        trial=-1 - trial if warmup else trial, run_id=run_id,
                    )  # fmt: skip
                    if sampler is not None:
                        row.update(_server_columns(sampler))
                    row = redact_obj(row)
                    rows.append(row)
                    sink.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                    sink.flush()
    finally:
        await client.close()
    return TrialResults(*rows_to_frames(rows), out)


# --- the batching curve -----------------------------------------------------------------------------------


async def _one_stream(client: Any, srv: EngineServer, tokens: int, seed: int) -> dict[str, Any]:
    extra: dict[str, Any] = {"ignore_eos": True} if srv.engine == BATCHING and srv.has_metrics else {}
    t_send = time.perf_counter()
    stream = await client.chat.completions.create(
        model=srv.model or "gpt-4o-mini",
        messages=[{"role": "user", "content": CURVE_PROMPT}],
        max_tokens=tokens,
        temperature=0.0,
        seed=seed,
        stream=True,
        extra_body=extra or None,
    )
    t_first = t_last = None
    chunks = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            now = time.perf_counter()
            t_first = t_first if t_first is not None else now
            t_last = now
            chunks += 1
    decode_s = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
    return {
        "t_send": t_send,
        "t_first": t_first,
        "t_last": t_last,
        "tokens": chunks,  # one token per streamed chunk on both llama.cpp servers
        "stream_tokens_per_s": (chunks - 1) / decode_s if decode_s > 0 and chunks > 1 else None,
    }


async def _curve(srv: EngineServer, P: Mapping[str, Any]) -> pd.DataFrame:
    from voorbeelden.backend import make_client
    from voorbeelden.local.metrics import MetricsSampler

    client = make_client(srv.base_url, srv.api_key, timeout=P["call_timeout_s"] * (srv.time_scale or 1.0))
    rows = []
    try:
        await _one_stream(client, srv, 8, 0)  # warm-up: the first request pays for loading
        for rep in range(P["curve_reps"]):
            for n in P["curve_streams"]:
                sampler = MetricsSampler(srv.base_url, interval_s=0.25) if srv.has_metrics else None
                with sampler if sampler is not None else contextlib.nullcontext():
                    streams = await asyncio.gather(
                        *(_one_stream(client, srv, P["curve_tokens"], rep * 100 + i) for i in range(n))
                    )
                ends = [s["t_last"] for s in streams if s["t_last"] is not None]
                wall = (max(ends) - min(s["t_send"] for s in streams)) if ends else float("nan")
                # A simulator's seconds are scaled: the curve is in model seconds (real / time_scale).
                scale = srv.time_scale or 1.0
                wall /= scale
                per_stream = [s["stream_tokens_per_s"] * scale for s in streams if s["stream_tokens_per_s"]]
                tokens = sum(s["tokens"] for s in streams)
                row = {
                    "engine": srv.engine,
                    "slots": srv.slots,
                    "streams": n,
                    "rep": rep,
                    "n_streams_ok": len(per_stream),
                    "tokens": tokens,
                    "wall_s": wall,
                    "stream_tokens_per_s": statistics.median(per_stream) if per_stream else float("nan"),
                    "stream_tokens_per_s_min": min(per_stream) if per_stream else float("nan"),
                    "total_tokens_per_s": tokens / wall if wall and wall > 0 else float("nan"),
                }
                if sampler is not None:
                    row.update(_server_columns(sampler))
                rows.append(row)
    finally:
        await client.close()
    return pd.DataFrame(rows)


def curve_summary(curve: pd.DataFrame) -> pd.DataFrame:
    """Per engine and number of streams: the median over repetitions, and their min-max (the spread)."""
    if curve.empty:
        return curve
    agg: dict[str, Any] = {
        "reps": ("rep", "count"),
        "stream_tokens_per_s": ("stream_tokens_per_s", "median"),
        "stream_tokens_per_s_lo": ("stream_tokens_per_s", "min"),
        "stream_tokens_per_s_hi": ("stream_tokens_per_s", "max"),
        "total_tokens_per_s": ("total_tokens_per_s", "median"),
        "total_tokens_per_s_lo": ("total_tokens_per_s", "min"),
        "total_tokens_per_s_hi": ("total_tokens_per_s", "max"),
    }
    if "srv_busy_slots_per_decode" in curve:
        agg["busy_slots_per_decode"] = ("srv_busy_slots_per_decode", "median")
        agg["max_deferred"] = ("srv_max_deferred", "max")
    out = curve.groupby(["engine", "slots", "streams"], sort=False).agg(**agg).reset_index()
    solo = out[out["streams"] == 1].set_index("engine")["total_tokens_per_s"]
    out["throughput_gain"] = [
        r.total_tokens_per_s / solo.get(r.engine, float("nan")) for r in out.itertuples(index=False)
    ]
    return out


# --- the experiment ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class EnginesExperiment:
    results: TrialResults
    summary: pd.DataFrame
    server: pd.DataFrame
    curve: pd.DataFrame
    curve_summary: pd.DataFrame
    backends: dict[str, dict[str, Any]]
    seconds: float
    ok: bool = True
    reason: str | None = None


def server_summary(gens: pd.DataFrame) -> pd.DataFrame:
    """Per engine and strategy, over measured generations: the server's counters (llama-server only)."""
    g = gens[~gens["warmup"]] if "warmup" in gens else gens
    if "srv_busy_slots_per_decode" not in g or g.empty:
        return pd.DataFrame()
    g = g[g["srv_busy_slots_per_decode"].notna()]
    return (
        g.groupby(["engine", "strategy"], sort=False)
        .agg(
            n=("wall_s", "count"),
            wall_median_s=("wall_s", "median"),
            busy_slots_per_decode=("srv_busy_slots_per_decode", "median"),
            stream_tokens_per_s=("srv_stream_tokens_per_s", "median"),
            tokens_predicted=("srv_tokens_predicted", "median"),
            decode_s=("srv_decode_s", "median"),
            max_processing=("srv_max_processing", "max"),
            max_deferred=("srv_max_deferred", "max"),
        )
        .reset_index()
    )


def verdict(summary: pd.DataFrame, server: pd.DataFrame) -> list[str]:
    """One sentence per engine from the measured numbers: the speedup with its CI, and what the server says."""
    lines = []
    for row in summary.to_dict(orient="records"):
        if not row.get("n_pairs"):
            lines.append(f"{row['engine']}: no complete pair, so no speedup.")
            continue
        line = (
            f"{row['engine']} ({int(row['slots'])} slot(s)): parallel {row['speedup_median']:.2f}x faster than "
            f"sequential (95% CI {row['ci_low']:.2f}-{row['ci_high']:.2f}, {row['pairs_complete']} pairs), "
            f"bound {row['trial_bound_median']:.2f}x."
        )
        srv = (
            server[(server["engine"] == row["engine"]) & (server["strategy"] == "parallel")]
            if len(server)
            else []
        )
        if len(srv):
            s = srv.iloc[0]
            how = "batched them" if s["busy_slots_per_decode"] > 1.05 else "served them one at a time"
            line += (
                f" The server {how}: {s['busy_slots_per_decode']:.2f} busy slots per decode step, "
                f"up to {int(s['max_processing'])} requests processing and {int(s['max_deferred'])} deferred."
            )
        lines.append(line)
    return lines


def engines_experiment(P: Mapping[str, Any]) -> EnginesExperiment:
    """Both engines, one after the other: paired trials, server counters, the batching curve. Writes
    ``08_local_engines.jsonl`` (one line per generation, with its records), ``08_local_engines_curve.csv``
    and the summary ``08_local_engines.json``."""
    t0 = time.monotonic()
    out_dir = Path(P["out_dir"])
    jsonl = _fresh(out_dir / f"{NB08}.jsonl")
    requests = [Request.coerce(b) for b in load_begrippen(P["n_begrippen"])]
    frames: list[TrialResults] = []
    curves: list[pd.DataFrame] = []
    backends: dict[str, dict[str, Any]] = {}
    for engine in P["engines"]:
        with open_engine(engine, P) as srv:
            backends[engine] = srv.info
            frames.append(run_sync(_paired_trials(srv, requests, P, jsonl)))
            if P["curve_streams"]:
                curves.append(run_sync(_curve(srv, P)))
    gens = pd.concat([f.generations for f in frames], ignore_index=True)
    recs = pd.concat([f.records for f in frames], ignore_index=True)
    results = TrialResults(gens, recs, jsonl)
    pairs = stats.paired_speedups(gens, by=("engine", "slots"))
    summary = stats.speedup_summary(pairs, by=("engine", "slots"), n_boot=P["n_boot"], seed=P["seed"])
    server = server_summary(gens)
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    csum = curve_summary(curve)
    if len(curve):
        curve.to_csv(out_dir / f"{NB08}_curve.csv", index=False)
    reason = failure_reason(stats.headline_problems(summary, label="engine"), gens[~gens["warmup"]])
    exp = EnginesExperiment(results, summary, server, curve, csum, backends, time.monotonic() - t0)
    exp.ok, exp.reason = reason is None, reason
    measured = gens[~gens["warmup"]]
    write_json(
        out_dir / f"{NB08}.json",
        {
            "notebook": NB08,
            "ok": exp.ok,
            "reason": reason,
            "simulated": P["backend_kind"] != "local",
            "n_generations": len(measured),
            "n_complete_generations": int(stats.is_complete(measured).sum()),
            "engines": backends,
            "speedup": summary.to_dict(orient="records"),
            "server": server.to_dict(orient="records"),
            "curve": csum.to_dict(orient="records"),
            "verdict": verdict(summary, server),
            "params": dict(P),
            "seconds": exp.seconds,
        },
    )
    return exp


def plot_curve(csum: pd.DataFrame) -> Any:
    """Two panels against concurrent streams: per-stream decode tokens/s (what each caller sees) and total
    tokens/s (what the server delivers), one line per engine, with the min-max over repetitions as bars."""
    from voorbeelden.experiments.plots import _figure, _style

    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    for engine, df in csum.groupby("engine", sort=False):
        label = f"{engine} ({int(df['slots'].iloc[0])} slot(s))"
        for ax, col in ((left, "stream_tokens_per_s"), (right, "total_tokens_per_s")):
            err = [df[col] - df[f"{col}_lo"], df[f"{col}_hi"] - df[col]]
            ax.errorbar(df["streams"], df[col], yerr=err, marker="o", capsize=4, label=label)
    left.set_title("per-stream decode speed", loc="left", fontweight="bold")
    right.set_title("total throughput", loc="left", fontweight="bold")
    for ax in (left, right):
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("tokens/s (median; bars: min-max over repetitions)")
        ax.set_xticks(sorted(set(csum["streams"])))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        _style(ax)
    right.legend(loc="best")
    return fig

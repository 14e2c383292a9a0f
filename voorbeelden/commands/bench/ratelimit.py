"""``voorbeelden bench ratelimit``: every contender against fresh rate-limited simulators, and the batch's memory.

Thin over :mod:`voorbeelden.experiments.ratelimit` and :mod:`voorbeelden.experiments.memory`. Prints, per setting, the
table (contender x wall, ok, failed, 429s, share of the limit, peak RSS) and the goals met or not; then the
RSS of a long batch at its checkpoints. Exits 1 when a goal is not met, so a regression is not a silent one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


HELP = "batch vs naive gather vs the cookbook processor under rate limits; memory of a long batch"
DESCRIPTION = (
    "Setting a: 100 terms (600 calls of 2 s), rpm 300, time scale 1 (ideal about 62 s). Setting b: the "
    "same at time scale 0.05 and rpm 30, the batch told 600 and told 30. Every contender runs against "
    "a fresh simulator in every rate-limit mode (bucket, quantized, each with and without charged "
    "rejections), in a process of its own so its peak RSS is its own."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import at_least_one, count, positive
    from voorbeelden.experiments.contenders import CONTENDER_KINDS

    p.add_argument("--settings", type=_csv, default=["a", "b"], help="settings to run (default a,b)")
    p.add_argument("--modes", type=_csv, default=None, help="simulator modes (default all four)")
    p.add_argument(
        "--contenders",
        type=_csv,
        default=None,
        help=(
            f"contenders (default batch,batch-untold,naive,cookbook; also {CONTENDER_KINDS[-1]}: the cookbook with "
            "its documented 15 s pause after a 429, slow on quantized limits)"
        ),
    )
    p.add_argument("--n-terms", type=at_least_one, default=None, help="terms per run (default 100)")
    p.add_argument("--memory-terms", type=count, default=100_000, help="terms of the memory run (0: skip it)")
    p.add_argument(
        "--memory-checkpoints",
        type=_csv,
        default=None,
        help="finished-term counts at which RSS is sampled (default 10%%, 25%%, 50%%, 75%%, 100%% of the run)",
    )
    p.add_argument(
        "--max-memory-growth", type=positive, default=20.0, help="MiB allowed after the first checkpoint"
    )
    p.add_argument("--out", type=Path, default=None, help="write JSON summaries and plots here")
    p.add_argument("--in-process", action="store_true", help="run contenders in this process (no peak RSS)")


def _params(args: argparse.Namespace) -> list[Any]:
    from voorbeelden.experiments.ratelimit import SETTINGS, RateLimitParams
    from voorbeelden.outpaths import check_folder_target

    if args.out:  # before minutes of measurements, not when the first plot is saved
        check_folder_target(args.out, "--out")
    out = []
    for name in args.settings:
        if name not in SETTINGS:
            raise ValueError(f"unknown setting {name!r}; use {', '.join(SETTINGS)}")
        values = SETTINGS[name].model_dump()
        for key, value in (("modes", args.modes), ("contenders", args.contenders), ("n_terms", args.n_terms)):
            if value is not None:
                values[key] = value
        values["isolate"] = not args.in_process
        values["out_dir"] = str(args.out) if args.out else ""
        out.append(RateLimitParams(**values))
    return out


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from voorbeelden.experiments.memory import measure_memory
    from voorbeelden.experiments.ratelimit import check_goals, format_table, plot_accepted, run_experiment

    try:
        settings = _params(args)
        checkpoints = [int(c) for c in args.memory_checkpoints] if args.memory_checkpoints else None
    except (ValueError, ValidationError) as err:
        print(f"voorbeelden bench ratelimit: {err}", file=sys.stderr)
        return 2
    all_met = True
    for p in settings:

        def progress(r: Any) -> None:
            print(
                f"  {r.setting}/{r.mode}: {r.contender}: {r.wall_s:.1f} s, {r.failed} failed, "
                f"{r.sent_429} 429s, {r.share:.1%} of the limit",
                file=sys.stderr,
                flush=True,
            )

        print(
            f"setting {p.setting}: {p.n_terms} terms x 6 calls, rpm {p.rpm:g}, time scale {p.time_scale:g}",
            file=sys.stderr,
        )
        results = run_experiment(p, progress)
        print(
            f"\nsetting {p.setting}: rpm {p.rpm:g} per {p.minute_s:g} s, {p.calls} calls, profile {p.profile}"
        )
        print(format_table(results))
        for goal in check_goals(results, p):
            print(goal.describe())
            all_met &= goal.met
        if args.out:
            plot_accepted(results, p, args.out / f"ratelimit_{p.setting}.png")
    if args.memory_terms:
        n = args.memory_terms
        marks = checkpoints or [n // 10, n // 4, n // 2, 3 * n // 4, n]
        print(f"memory: {n:,} terms at no rate limit, RSS sampled at {marks}", file=sys.stderr, flush=True)
        mem = measure_memory(n, marks, isolate=not args.in_process)
        print(f"\nmemory: {mem.describe()}")
        for done, rss, t in mem.samples:
            print(f"  {done:>9,} terms: RSS {rss:7.1f} MiB after {t:7.1f} s")
        growth = mem.growth_mb
        met = growth is not None and growth <= args.max_memory_growth and mem.failed == 0
        all_met &= met
        print(
            f"[{'met' if met else 'NOT met'}] RSS growth {growth:+.1f} MiB (bound {args.max_memory_growth:g} MiB)"
        )
        if args.out:
            import json

            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "memory.json").write_text(json.dumps(mem.to_dict(), indent=2), encoding="utf-8")
    return 0 if all_met else 1

"""``voorbeelden bench fidelity``: measure how closely the simulator keeps its latency schedule under load,
so a benchmark run on it can state the error bar of its backend."""

from __future__ import annotations

import argparse
import json

HELP = "measure the simulator's scheduled-vs-observed latency error under load"
DESCRIPTION = "Send N requests at once to a simulator subprocess and report the latency error."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import (
        at_least_one,
        integer,
        non_negative,
        one_of,
        positive,
        profile_names,
    )

    p.add_argument("--requests", type=at_least_one, default=1000, help="number of requests (default 1000)")
    p.add_argument("--concurrency", type=at_least_one, default=None, help="in flight at once (default: all)")
    p.add_argument(
        "--profile",
        type=one_of(profile_names, "profile"),
        default="uniform-2s",
        help="latency profile (default uniform-2s)",
    )
    p.add_argument("--time-scale", type=positive, default=1.0, help="time scale, > 0 (default 1.0)")
    p.add_argument("--seed", type=integer(), default=0)
    p.add_argument(
        "--no-warmup", action="store_true", help="include opening the connections in the measurement"
    )
    p.add_argument(
        "--transport",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="HTTP layer under AsyncOpenAI: aiohttp (default; O(1) pool) or the SDK's default httpx pool",
    )
    p.add_argument(
        "--ramp",
        type=non_negative,
        default=0.0,
        metavar="SECONDS",
        help="spread the launches evenly over this many seconds (0 = one burst); with latencies longer than "
        "the ramp all requests are still in flight at once",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    import sys

    from voorbeelden.bench.fidelity import run_fidelity

    try:
        result = run_fidelity(
            requests=args.requests,
            concurrency=args.concurrency,
            profile=args.profile,
            time_scale=args.time_scale,
            seed=args.seed,
            warmup=not args.no_warmup,
            transport=args.transport,
            ramp_s=args.ramp,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0 if result.errors == 0 else 1
    r = result
    print(
        f"simulator fidelity: {r.requests} requests, {r.concurrency} at once, profile {r.profile}, "
        f"time_scale {r.time_scale}, transport {r.transport}, ramp {r.ramp_s:g} s, warm-up {'on' if r.warmup else 'off'}"
    )
    print(
        f"  ok {r.ok}, errors {r.errors}, wall {r.wall_s:.2f} s, {r.requests_per_s:.0f} requests/s, "
        f"peak in flight (server) {r.peak_in_flight}"
    )
    print(f"  scheduled p50 {r.scheduled_ms_p50:.1f} ms, observed p50 {r.observed_ms_p50:.1f} ms")
    print(
        f"  observed - scheduled: p50 {r.error_ms_p50:.2f} ms, p90 {r.error_ms_p90:.2f} ms, "
        f"p99 {r.error_ms_p99:.2f} ms, max {r.error_ms_max:.2f} ms, min {r.error_ms_min:.2f} ms"
    )
    print(
        f"  event-loop lag: client p99 {r.client_lag_ms_p99:.1f} ms (max {r.client_lag_ms_max:.1f}), "
        f"server p99 {r.server_lag_ms_p99:.1f} ms (max {r.server_lag_ms_max:.1f})"
    )
    return 0 if r.errors == 0 else 1

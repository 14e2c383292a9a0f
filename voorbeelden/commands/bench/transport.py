"""``voorbeelden bench transport``: aiohttp under the SDK against the SDK's own httpx2 pool, on the same
parallel generations and the same burst of calls, so the package's one transport stays a measured choice
(the figures live in docs/TRANSPORT.md)."""

from __future__ import annotations

import argparse
import json
import sys

from voorbeelden.commands._options import at_least_one, integer, number

HELP = "compare the two HTTP transports (aiohttp, the SDK's httpx2 pool) on generations and a burst"
DESCRIPTION = (
    "Run parallel generations and a burst of calls at once against a simulator subprocess, once over "
    "aiohttp (the package's transport) and once over the SDK's own httpx2 pool, alternating over rounds; "
    "print wall/slowest call and the burst's latency error per transport, with how many generations and "
    "calls each figure covers."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--generations", type=integer(1, 10_000), default=30, metavar="N", help="per transport and round"
    )
    p.add_argument(
        "--time-scale", type=number(0, 10, lo_open=True), default=0.1, help="of the generations (uniform-2s)"
    )
    p.add_argument(
        "--calls", type=integer(0, 5000), default=1000, help="calls at once in the burst (0: none)"
    )
    p.add_argument(
        "--burst-time-scale", type=number(0, 10, lo_open=True), default=1.0, help="of the burst (uniform-2s)"
    )
    p.add_argument("--rounds", type=at_least_one, default=2, help="rounds, alternating the order (default 2)")
    p.add_argument(
        "--in-process", action="store_true", help="run the simulator in this process (shares the GIL)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from voorbeelden.bench.transport import TransportParams, render, run_benchmark
    from voorbeelden.experiments.params import problems_of

    values = {
        "generations": args.generations,
        "time_scale": args.time_scale,
        "calls": args.calls,
        "burst_time_scale": args.burst_time_scale,
        "rounds": args.rounds,
        "process": not args.in_process,
    }
    problems = problems_of(TransportParams, values)
    if problems:
        print("voorbeelden bench transport: " + "; ".join(problems), file=sys.stderr)
        return 2
    result = run_benchmark(TransportParams(**values))
    print(json.dumps(result, indent=2) if args.json else render(result))
    failed = any(
        c["generations"]["failed"] or c["burst"]["errors"] for c in result["candidates"]
    )  # a figure over failed calls is not the figure it claims to be: said by the exit code
    return 1 if failed else 0

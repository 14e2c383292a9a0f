"""``voorbeelden bench overhead``: orchestration overhead and paired speedups against the simulator."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "measure orchestration overhead and paired sequential/parallel speedups"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--generations", type=int, default=30, metavar="N", help="parallel generations for overhead"
    )
    p.add_argument(
        "--time-scale", type=float, default=0.1, help="time scale for the overhead runs (uniform-2s)"
    )
    p.add_argument("--pairs", type=int, default=8, help="paired generations per profile for the speedups")
    p.add_argument("--speedup-time-scale", type=float, default=0.05, help="time scale for the speedup runs")
    p.add_argument(
        "--in-process", action="store_true", help="run the simulator in this process (shares the GIL)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from voorbeelden.bench.overhead import OverheadParams, render, run_benchmark
    from voorbeelden.experiments.params import problems_of

    values = {
        "generations": args.generations,
        "time_scale": args.time_scale,
        "pairs": args.pairs,
        "speedup_time_scale": args.speedup_time_scale,
        "process": not args.in_process,
    }
    problems = problems_of(OverheadParams, values)
    if problems:
        print("voorbeelden bench overhead: " + "; ".join(problems), file=sys.stderr)
        return 2
    result = run_benchmark(OverheadParams(**values))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result))
    return 0

"""``voorbeelden bench faults``: every fault kind x rate x strategy against the embedded simulator; counts
crashes and late generations (both must be 0) and compares parts delivered with 1 - p^(retries+1)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "fault kinds x rates x strategies against the simulator: crashes, late generations, delivery"
DESCRIPTION = (
    "Run N generations per (fault kind, fault rate, strategy) against the embedded simulator at a "
    "small time scale with a deadline. Exit 1 if any generation raised or returned more than 50 ms "
    "after its deadline."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import at_least_one, count, positive

    p.add_argument("--reduced", action="store_true", help="rates 0 and 0.5 only, 2 generations per cell")
    p.add_argument(
        "-n", type=at_least_one, default=None, help="generations per cell, >= 1 (default 5; 2 with --reduced)"
    )
    p.add_argument(
        "--time-scale", type=positive, default=0.01, help="simulator time scale, > 0 (default 0.01)"
    )
    p.add_argument(
        "--deadline", type=positive, default=1.0, metavar="S", help="deadline per generation (> 0)"
    )
    p.add_argument("--call-timeout", type=positive, default=0.15, metavar="S", help="per-call timeout (> 0)")
    p.add_argument("--max-retries", type=count, default=2, help="retries per call, >= 0 (default 2)")
    p.add_argument("--json", action="store_true", help="print the cells as JSON")


def run(args: argparse.Namespace) -> int:
    from voorbeelden.bench.faultmatrix import (
        FAULT_KINDS,
        RATES,
        REDUCED_RATES,
        MatrixSettings,
        render_table,
        run_matrix,
    )

    n = args.n if args.n is not None else (2 if args.reduced else 5)  # every value was range-checked
    settings = MatrixSettings(
        n=n,
        time_scale=args.time_scale,
        deadline_s=args.deadline,
        call_timeout_s=args.call_timeout,
        max_retries=args.max_retries,
    )
    cells = run_matrix(FAULT_KINDS, REDUCED_RATES if args.reduced else RATES, settings=settings)
    bad = sum(c.crashes + c.past_deadline for c in cells)
    if args.json:
        json.dump({"settings": vars(settings), "cells": [c.to_dict() for c in cells]}, sys.stdout, indent=2)
        print()
    else:
        print(render_table(cells))
        print(
            f"{sum(c.generations for c in cells)} generations; {sum(c.crashes for c in cells)} crashes, "
            f"{sum(c.past_deadline for c in cells)} past the deadline + 50 ms",
            file=sys.stderr,
        )
    for c in cells:
        for ex in c.crash_examples:
            print(f"crash in {c.fault_kind}/{c.fault_rate:g}/{c.strategy}: {ex}", file=sys.stderr)
    return 1 if bad else 0

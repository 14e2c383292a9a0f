"""``voorbeelden bench NAME``: the side benchmarks, questions about the rig itself (one module per NAME)."""

from __future__ import annotations

import argparse
import sys

HELP = "side benchmarks of the rig itself: overhead, fidelity, faults, ratelimit, transport"
DESCRIPTION = (
    "Side benchmarks: what orchestration costs (overhead), whether the simulator keeps its own schedule "
    "(fidelity), every fault kind x rate x strategy under a deadline (faults), and every way to fill a "
    "rate limit (ratelimit), and which HTTP transport carries the calls (transport). The strategies themselves are measured by the report's notebooks."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    import voorbeelden.commands.bench as group
    from voorbeelden.cli import add_commands

    add_commands(p.add_subparsers(dest="bench", metavar="NAME"), group)


def run(args: argparse.Namespace) -> int:
    # Reached only without NAME: each benchmark's parser sets its own ``func``.
    print(
        "voorbeelden bench: name a benchmark: overhead, fidelity, faults, ratelimit or transport",
        file=sys.stderr,
    )
    return 2

"""``voorbeelden sim``: run the OpenAI-compatible simulator in the foreground.

The first line on stdout is the base URL (flushed), because ``running_simulator(process=True)`` and
scripts read it to learn the port picked by ``--port 0``. Ctrl-C or SIGTERM stops it cleanly with exit 0:
stopping a simulator is the normal way to end it, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

HELP = "run the OpenAI-compatible simulator (prints its base URL first)"
DESCRIPTION = "Run the OpenAI-compatible simulator in the foreground; the first stdout line is its URL."


def add_arguments(p: argparse.ArgumentParser) -> None:
    _add_server_options(p.add_argument_group("server"))
    _add_rate_limit_options(p.add_argument_group("rate limits"))
    _add_fault_options(p.add_argument_group("faults"))
    _add_request_limits(p.add_argument_group("limits per request"))
    p.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help=argparse.SUPPRESS,  # set by running_simulator(process=True): stop when the parent's pipe closes
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="print only the base URL (no banner on stderr; errors still show)",
    )


def _add_server_options(g: argparse._ArgumentGroup) -> None:
    """Where it listens and how it answers: address, latency profile, clock, seed, capacity."""
    from voorbeelden.commands._options import at_least_one, integer, one_of, positive, profile_names

    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    g.add_argument(
        "--port", type=integer(0, 65535), default=8000, help="port (0 picks a free one; default 8000)"
    )
    g.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (no authentication!)"
    )
    g.add_argument(
        "--profile",
        type=one_of(lambda: sorted(profile_names()), "profile"),
        default="uniform-2s",
        help="latency profile",
    )
    g.add_argument(
        "--profile-file",
        default=None,
        metavar="JSON",
        help="serve a profile from a file (voorbeelden calibrate writes one); its capacity applies unless "
        "--capacity is given",
    )
    g.add_argument(
        "--time-scale",
        type=positive,
        default=1.0,
        help="multiply every time by this, a finite number > 0 (0.01 = 100x faster)",
    )
    g.add_argument("--seed", type=integer(), default=0, help="seed of the keyed draws")
    g.add_argument(
        "--capacity", type=at_least_one, default=None, help="requests served at once (default unlimited)"
    )


def _add_rate_limit_options(g: argparse._ArgumentGroup) -> None:
    """The limits a provider enforces, and how (docs/CONTRACTS.md, the simulator's rate-limit modes)."""
    from voorbeelden.commands._options import number, one_of, positive
    from voorbeelden.sim.ratelimit import RATE_LIMIT_MODES

    g.add_argument("--rpm", type=positive, default=None, help="requests per minute limit")
    g.add_argument("--tpm", type=positive, default=None, help="tokens per minute limit")
    g.add_argument(
        "--rate-limit-mode",
        type=one_of(RATE_LIMIT_MODES, "rate-limit mode"),
        default="bucket",
        help="bucket: one minute, refilling continuously, starts full (default); quantized: the minute's "
        "share is also enforced over windows of --quantum seconds (short bursts get 429s); short-window: "
        "quantized, and x-ratelimit-remaining/reset count that short window while x-ratelimit-limit names "
        "the minute",
    )
    g.add_argument(
        "--quantum",
        type=number(0, 60, lo_open=True),
        default=1.0,
        metavar="S",
        help="window of the quantized mode in simulated seconds, > 0 and <= 60 (default 1: 1 request/s for 60 rpm)",
    )
    g.add_argument(
        "--charge-rejected",
        action="store_true",
        help="requests answered 429 count toward the limit too (default: they cost nothing)",
    )


def _add_fault_options(g: argparse._ArgumentGroup) -> None:
    from voorbeelden.commands._options import number
    from voorbeelden.sim.config import FAULT_KINDS

    g.add_argument(
        "--fault-rate", type=number(0, 1), default=0.0, help="probability of a random fault per request"
    )
    g.add_argument(
        "--faults", default=",".join(FAULT_KINDS), help="fault kinds to draw from, comma-separated"
    )
    g.add_argument(
        "--fault-schedule",
        action="extend",
        nargs="+",
        default=[],
        metavar="RULE",
        help="deterministic fault rule PART=KIND[@N,...], e.g. synoniemen=503@1 or '*=429@1' (several allowed)",
    )


def _add_request_limits(g: argparse._ArgumentGroup) -> None:
    """What the server puts up with from one client: body size, time to send a request."""
    from voorbeelden.commands._options import integer, positive
    from voorbeelden.sim.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_READ_TIMEOUT_S, MIN_MAX_BODY_BYTES

    g.add_argument(
        "--max-body-bytes",
        type=integer(MIN_MAX_BODY_BYTES),
        default=None,
        help=f"largest accepted request body, >= {MIN_MAX_BODY_BYTES} (default {DEFAULT_MAX_BODY_BYTES})",
    )
    g.add_argument(
        "--read-timeout",
        type=positive,
        default=DEFAULT_READ_TIMEOUT_S,
        metavar="S",
        help=f"seconds a client has to send a whole request head or announced body (default {DEFAULT_READ_TIMEOUT_S:g})",
    )


def config_from_args(args: argparse.Namespace) -> Any:
    from voorbeelden.sim.config import DEFAULT_MAX_BODY_BYTES, SimConfig

    capacity = args.capacity
    profile_file = getattr(args, "profile_file", None)
    if profile_file is not None and capacity is None:
        from voorbeelden.sim.profiles import load_profile_file

        capacity = load_profile_file(profile_file)[1].get("capacity")
    return SimConfig(
        profile=args.profile,
        profile_file=profile_file,
        time_scale=args.time_scale,
        seed=args.seed,
        capacity=capacity,
        rpm=args.rpm,
        tpm=args.tpm,
        rate_limit_mode=args.rate_limit_mode,
        rate_limit_quantum_s=args.quantum,
        charge_rejected=args.charge_rejected,
        fault_rate=args.fault_rate,
        faults=args.faults,
        schedule=tuple(args.fault_schedule),
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES if args.max_body_bytes is None else args.max_body_bytes,
        read_timeout_s=args.read_timeout,
    )


def _stop_at_end_of_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when stdin reaches end of file: the parent holds the only write end of that pipe, so end of file
    means the parent is gone, however it died (SIGKILL included)."""
    import os

    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


def run(args: argparse.Namespace) -> int:
    from voorbeelden.sim.config import is_loopback
    from voorbeelden.sim.server import serve

    try:
        config = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not is_loopback(config.host):
        print(
            f"warning: binding {config.host}: the simulator has no authentication and is reachable from the network",
            file=sys.stderr,
        )

    def ready(url: str) -> None:
        print(url, flush=True)
        if args.quiet:
            return
        print(
            f"simulator: profile={config.profile}"
            + (
                f" (from {config.profile_file}, capacity {config.capacity or 'unlimited'})"
                if config.profile_file
                else ""
            )
            + f" time_scale={config.time_scale} seed={config.seed}; "
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if getattr(args, "exit_with_stdin", False):
            _stop_at_end_of_stdin(loop, stop)
        await serve(config, stop, ready, manage_gc=True)

    try:
        asyncio.run(main())  # not syncrun.run_sync: the signal handlers need the main thread's loop
    except OSError as e:  # port in use, address not available
        print(f"error: cannot start the simulator on {config.host}:{config.port}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0

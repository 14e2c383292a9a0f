"""``voorbeelden load``: many users at once against one backend; per level the generation's latency,
throughput and goodput, per strategy the knee (the highest load whose p95 stays within the SLO).

Thin over :mod:`voorbeelden.experiments.load_sweep`. Without a configured endpoint it starts the embedded simulator
the way ``batch`` does (``--sim-profile``, ``--time-scale``, ``--sim-capacity``, ``--sim-rpm``), but with a
finite capacity by default (4 calls at once; a batching profile uses its own batch): a server that serves any
number of calls at once has no knee to find.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from voorbeelden.consent import EXIT_NO_CONSENT
from voorbeelden.redact import redact, redact_obj

DEFAULT_USERS = (1, 2, 4, 8)
DEFAULT_CAPACITY = 4
EXIT_CODES_HELP = f"""exit codes:
  0  every measured generation complete (all six parts delivered)
  1  no part delivered at all (every call failed)
  2  bad input (arguments): nothing was sent
  3  partial: some measured generations lost parts or were cut when the drain ran out (see "generations")
  {EXIT_NO_CONSENT}  stopped before any call: a remote (possibly paid) endpoint needs --yes
  130  interrupted (Ctrl-C): the levels finished so far are printed (with "interrupted": true)

All times are model seconds: on the simulator, real seconds divided by --time-scale."""

HELP = "many users at once: latency, throughput and goodput per load level, and the knee per strategy"
DESCRIPTION = (
    "Load a backend one level at a time, closed loop (--users: each user starts its next generation when the "
    "last one ends) or open loop (--rate: Poisson arrivals, generations per minute), per strategy. Each "
    "level runs a warm-up (in a closed loop also until every user has finished one generation), then "
    "--duration seconds of measurement; per level it reports p50/p95/p99 generation wall, time to first "
    "visible part, parts delivered, generations/min, goodput/min (complete generations within --slo), "
    "calls/min, 429s and calls in flight. The knee is the highest load whose p95 wall stays within --slo, "
    "interpolated between levels, with a 95% bootstrap interval; a strategy's sweep stops past saturation "
    "(p95 climbing while throughput stays flat) or far past the knee (p95 over twice --slo)."
)
EPILOG = EXIT_CODES_HELP


def _list_of(parse: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    def parse_list(text: str) -> tuple[Any, ...]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"needs one or more {what}, comma-separated, got {text!r}")
        values = tuple(parse(t) for t in items)
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"has a repeated value: {text!r}")
        return values

    parse_list.__name__ = what
    return parse_list


def add_arguments(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import at_least_one, count, integer, non_negative, one_of, positive
    from voorbeelden.strategies.registry import names

    load = p.add_argument_group("load (one of --users or --rate; default --users 1,2,4,8)")
    how = load.add_mutually_exclusive_group()
    how.add_argument(
        "--users", type=_list_of(at_least_one, "users (integers >= 1)"), default=None, metavar="N,N,...",
        help="closed loop: concurrent users per level",
    )  # fmt: skip
    how.add_argument(
        "--rate", type=_list_of(positive, "rates (numbers > 0)"), default=None, metavar="R,R,...",
        help="open loop: generations per minute per level (Poisson arrivals from --seed)",
    )  # fmt: skip
    load.add_argument("--think", type=non_negative, default=0.0, metavar="S", help="closed loop: pause (s)")
    load.add_argument(
        "--strategies",
        type=_list_of(one_of(names, "strategy"), "strategies"),
        default=("sequential", "parallel"),
        help="comma-separated (default sequential,parallel): " + ", ".join(names()),
    )
    load.add_argument(
        "-k", type=integer(1, 6), default=3, help="calls at once for 'bounded' (1-6, default 3)"
    )
    load.add_argument(
        "--slo", type=positive, default=15.0, metavar="S", help="seconds for a whole generation (default 15)"
    )
    load.add_argument(
        "--duration", type=positive, default=30.0, metavar="S", help="measured seconds per level (default 30)"
    )
    load.add_argument("--warmup", type=non_negative, default=10.0, metavar="S", help="per level (default 10)")
    load.add_argument(
        "--windows",
        type=integer(1, 20),
        default=3,
        help="windows per level: per-window knees, a second view of the spread (default 3)",
    )
    load.add_argument(
        "--drain", type=positive, default=None, metavar="S",
        help="after a level, how long running generations may take before they are cut (default 3x --slo, "
        "at least 30)",
    )  # fmt: skip
    load.add_argument(
        "--no-stop", action="store_true", help="run every level, also past saturation or the knee"
    )
    load.add_argument("--seed", type=count, default=0, help="arrivals and the simulator's draws (default 0)")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL)")
    p.add_argument(
        "--call-timeout",
        type=positive,
        default=None,
        metavar="S",
        help="per call attempt (default 60, or VOORBEELDEN_CALL_TIMEOUT_S)",
    )
    p.add_argument("--max-retries", type=count, default=2, help="retries per call (default 2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout; no progress bar")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--yes", action="store_true", help="consent to loading a remote (possibly paid) endpoint")
    _add_sim_options(p)


def _add_sim_options(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import add_embedded_sim_options, at_least_one, positive

    sim = p.add_argument_group("embedded simulator (used when no endpoint is configured)")
    add_embedded_sim_options(
        sim, "latency profile (default uniform-2s)", "simulated time x this (default 0.1)"
    )
    sim.add_argument(
        "--sim-capacity", type=at_least_one, default=None,
        help=f"calls the simulator serves at once, the rest queue (default {DEFAULT_CAPACITY}; none for a "
        "batching profile such as batching-6, whose own max_batch queues the rest)",
    )  # fmt: skip
    sim.add_argument("--sim-rpm", type=positive, default=None, help="the simulator's requests/min limit")
    # 0.2: at capacity 4 the client sends ~10 calls per real second, which a small shared machine keeps up
    # with; at 0.1 and capacity 8 (40 a second) the client's own CPU, not the server, set the knee
    p.set_defaults(sim_profile="uniform-2s", time_scale=0.2)


def _settings(args: argparse.Namespace) -> Any:
    from voorbeelden.experiments.load_sweep import LoadSettings

    users = args.users if args.users is not None or args.rate is not None else DEFAULT_USERS
    return LoadSettings(
        strategies=tuple(args.strategies),
        users=tuple(users or ()),
        rates=tuple(args.rate or ()),
        think_s=args.think,
        slo_s=args.slo,
        duration_s=args.duration,
        warmup_s=args.warmup,
        windows=args.windows,
        k=args.k,
        seed=args.seed,
        call_timeout_s=args.call_timeout,
        max_retries=args.max_retries,
        drain_s=args.drain,
        stop_when_saturated=not args.no_stop,
    )


def _fail(message: str) -> int:
    print(f"voorbeelden load: {redact(message)}", file=sys.stderr)
    return 2


def exit_code(generations: dict[str, int], parts_delivered: int) -> int:
    if generations["measured"] and generations["incomplete"] == 0:
        return 0
    return 3 if parts_delivered else 1


def run(args: argparse.Namespace) -> int:
    from voorbeelden.backend import endpoint_spec, open_backend
    from voorbeelden.consent import is_remote
    from voorbeelden.experiments.load_sweep import SweepResult, sweep

    try:
        settings = _settings(args)
        spec = endpoint_spec(args.base_url)
    except ValueError as err:
        return _fail(str(err))
    if spec.kind == "real" and is_remote(spec.base_url) and not args.yes:
        print(
            f"voorbeelden load: {spec.host} (chosen by {spec.source}) is a remote, possibly paid endpoint, and a "
            "load run sends as many calls as it can for every level; pass --yes to go ahead, or unset "
            "OPENAI_API_KEY and OPENAI_BASE_URL for the embedded simulator",
            file=sys.stderr,
        )
        return EXIT_NO_CONSENT
    result = SweepResult(settings)
    bar = None
    if not (args.json or args.no_progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(settings.strategies) * len(settings.levels), unit="level", file=sys.stderr)

    def on_level(lv: dict[str, Any]) -> None:
        if bar is not None:
            p95 = lv["wall_p95_s"]
            bar.set_postfix_str(f"{lv['strategy']} {lv[settings.load_key]:g}: p95 {_s(p95)}")
            bar.update(1)

    from voorbeelden.experiments.load import capacity_for

    capacity = args.sim_capacity or capacity_for(args.sim_profile, DEFAULT_CAPACITY)
    sim = {"profile": args.sim_profile, "time_scale": args.time_scale, "process": True}
    interrupted = False
    backend: dict[str, Any] | None = None
    try:
        with open_backend(spec, announce=sys.stderr, capacity=capacity, rpm=args.sim_rpm, **sim) as be:
            backend = be.describe()
            if be.simulated:
                served = f"{capacity} calls at once (--sim-capacity)" if capacity else "its profile's batch"
                print(f"voorbeelden load: the simulator serves {served}; the rest queue", file=sys.stderr)
                backend["capacity"] = capacity
                backend["rpm"] = args.sim_rpm
            sweep(be, settings, on_level=on_level, result=result)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return _report(args, result, backend, interrupted)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _report(args: argparse.Namespace, result: Any, backend: dict[str, Any] | None, interrupted: bool) -> int:
    data = result.to_dict()
    delivered = sum(lv["parts_delivered"] for lv in result.levels)
    code = 130 if interrupted else exit_code(data["generations"], delivered)
    data.update(backend=backend, exit_code=code, interrupted=interrupted)
    data = redact_obj(data)
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
        print()
        _notes(data, result, interrupted)
        return code
    s = result.settings
    print(
        f"{'strategy':<11} {s.load_key:>7} {'p50':>7} {'p95':>7} {'p99':>7} {'1st part':>8} {'parts':>9} "
        f"{'gen/min':>7} {'good/min':>8} {'calls/min':>9} {'429':>4} {'in flight':>9}"
    )
    for lv in result.levels:
        parts = f"{lv['parts_delivered']}/{lv['parts_asked']}"
        print(
            f"{lv['strategy']:<11} {lv[s.load_key]:>7g} {_s(lv['wall_p50_s']):>7} {_s(lv['wall_p95_s']):>7} "
            f"{_s(lv['wall_p99_s']):>7} {_s(lv['first_visible_p50_s']):>8} {parts:>9} "
            f"{lv['generations_per_min']:>7.1f} {lv['goodput_per_min']:>8.1f} {lv['calls_per_min']:>9.1f} "
            f"{lv['rate_limited_429']:>4} {lv['calls_in_flight_mean']:>5.1f}/{lv['calls_in_flight_peak']:<3}"
        )
    for strategy, knee in result.knees.items():
        print(f"knee ({strategy}, p95 within {s.slo_s:g} s): {knee.describe(s.unit)}")
    stops = result.parallel_stops_paying
    if stops is not None:
        print(f"parallel stops paying (no goodput or median-wall edge over sequential) at {stops:g} {s.unit}")
    _notes(data, result, interrupted)
    return code


def _notes(data: dict[str, Any], result: Any, interrupted: bool) -> None:
    """What the user should know beside the figures (stderr): where sweeps stopped, what was lost."""
    for strategy, why in result.stopped.items():
        print(f"{strategy}: stopped {why}", file=sys.stderr)
    g = data["generations"]
    if g["incomplete"]:
        print(
            f"voorbeelden load: {g['incomplete']} of {g['measured']} measured generations incomplete "
            f"({g['cut']} cut when the drain ran out)",
            file=sys.stderr,
        )

"""``voorbeelden generate``: the six parts for one term, with a per-call timing table.

Without a configured endpoint it starts the embedded simulator and says so on stderr, so the command works
on a fresh checkout and never sends a request anywhere the user did not choose.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from voorbeelden.backend import BackendSpec, NoBackend, endpoint_spec, open_backend
from voorbeelden.commands._options import (
    add_embedded_sim_options,
    at_least_one,
    integer,
    non_negative,
    number,
    positive,
)
from voorbeelden.config import GeneratorConfig
from voorbeelden.redact import redact, redact_obj
from voorbeelden.strategies.registry import info, names
from voorbeelden.types import ALL_PARTS, Generation, InvalidRequest, Part, Request, busy_time_s

# Exit codes (also in the README). "Delivered" means the part has a value; a list part with fewer items than
# asked is delivered but marked "short" in the table and in ``shortfalls`` of --json.
EXIT_COMPLETE = 0  # all six parts delivered
EXIT_NONE = 1  # no part delivered
EXIT_BAD_INPUT = 2  # invalid arguments or request, no backend: nothing was sent
EXIT_PARTIAL = 3  # some parts delivered, some lost (see the table and "errors")
EXIT_CODES_HELP = """exit codes:
  0  all six parts delivered (a list part with fewer items than asked is marked "short", not lost)
  1  no part delivered (every call failed: see the table)
  2  bad input (invalid arguments or request, no backend): nothing was sent
  3  partial: some parts delivered, some lost
  130  interrupted (Ctrl-C)"""


def exit_code(gen: Generation) -> int:
    """The exit code for a generation: see :data:`EXIT_CODES_HELP`."""
    if gen.n_ok == len(ALL_PARTS):
        return EXIT_COMPLETE
    return EXIT_PARTIAL if gen.n_ok else EXIT_NONE


HEADINGS = {
    Part.VOORBEELDZINNEN: "Voorbeeldzinnen",
    Part.PRAKTIJKVOORBEELDEN: "Praktijkvoorbeelden",
    Part.TEGENVOORBEELDEN: "Tegenvoorbeelden",
    Part.SYNONIEMEN: "Synoniemen",
    Part.ANTONIEMEN: "Antoniemen",
    Part.TOELICHTING: "Toelichting",
}


HELP = "generate the six voorbeelden parts for one term"
DESCRIPTION = "Generate the six voorbeelden parts for one term and print them with a per-call timing table."
EPILOG = EXIT_CODES_HELP


# Options that only mean something for some strategies: the option -> (its argparse dest, the strategy option
# it sets). A strategy that does not list that option in the registry would silently ignore it, so using it
# there is an error.
STRATEGY_OPTIONS = {"-k": ("k", "k"), "--hedge-delay": ("hedge_delay", "hedge_delay_s")}
# Options of the embedded simulator: meaningless (and an error) when calls go to a real endpoint.
SIM_OPTIONS = {"--sim-profile": "sim_profile", "--time-scale": "time_scale"}
SIM_DEFAULTS = {"sim_profile": "definitie-app", "time_scale": 0.1}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("begrip", help="the term, e.g. besluit")
    p.add_argument("--definitie", default="", help="the term's definition")
    p.add_argument(
        "--organisatorisch", action="append", default=[], metavar="X", help="organisational context"
    )
    p.add_argument("--juridisch", action="append", default=[], metavar="X", help="legal context")
    p.add_argument("--wettelijk", action="append", default=[], metavar="X", help="statutory context")
    p.add_argument("--strategy", default="parallel", choices=names())
    p.add_argument(
        "--hedge-delay",
        type=non_negative,
        default=None,
        help="seconds before --strategy hedged sends a backup request (default: no backup until latencies are known)",
    )
    p.add_argument(
        "-k", type=at_least_one, default=None, help="max calls in flight for --strategy bounded (>= 1)"
    )
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL)")
    p.add_argument("--model", default=None, help="model for every part (default: OPENAI_MODEL or gpt-4.1)")
    p.add_argument(
        "--temperature",
        type=number(0, 2),
        default=None,
        help="sampling temperature for every part, 0..2 (default: each part's own)",
    )
    p.add_argument(
        "--seed",
        type=integer(0),
        default=None,
        help="sent as the request's seed (>= 0); a part asked again after an unusable answer gets the next seed",
    )
    p.add_argument(
        "--max-retries",
        type=integer(0, 100),
        default=None,
        metavar="N",
        help="retries per call after an endpoint failure, 0..100 (default 2); an answer with no usable item "
        "is asked once more on top",
    )
    p.add_argument(
        "--deadline", type=positive, default=None, metavar="S", help="deadline for the generation (> 0)"
    )
    p.add_argument("--json", action="store_true", help="print the whole Generation as JSON")
    add_embedded_sim_options(
        p,
        "profile of the embedded simulator (default definitie-app; only without an endpoint)",
        "time scale of the embedded simulator, > 0 (default 0.1; only without an endpoint)",
    )
    # None means "not given": an option of the simulator given for a real endpoint is refused in run().
    p.set_defaults(sim_profile=None, time_scale=None)


def _fail(message: str) -> int:
    print(f"voorbeelden generate: {redact(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def ineffective_options(args: argparse.Namespace, spec: BackendSpec) -> list[str]:
    """What was given but would do nothing: a strategy option the chosen strategy does not take, a simulator
    option when calls go to an endpoint. Said, not ignored: a user who asked for ``-k 2`` with
    ``--strategy parallel`` believes they ran two at a time."""
    problems = []
    takes = info(args.strategy).options
    for flag, (dest, option) in STRATEGY_OPTIONS.items():
        if getattr(args, dest) is not None and option not in takes:
            users = ", ".join(n for n in names() if option in info(n).options)
            problems.append(f"{flag} has no effect with --strategy {args.strategy} (only with {users})")
    if spec.kind != "simulated":
        for flag, dest in SIM_OPTIONS.items():
            if getattr(args, dest) is not None:
                problems.append(
                    f"{flag} has no effect: calls go to the endpoint {spec.host} (chosen by {spec.source}), "
                    "not the embedded simulator"
                )
    return problems


def run(args: argparse.Namespace) -> int:
    from voorbeelden.generator import generate_sync  # imports openai: not for --help

    context = {
        "organisatorisch": args.organisatorisch,
        "juridisch": args.juridisch,
        "wettelijk": args.wettelijk,
    }
    try:
        request = Request(begrip=args.begrip, definitie=args.definitie, context=context)
        spec = endpoint_spec(args.base_url)
        config = GeneratorConfig().with_policy(
            deadline_s=args.deadline, max_retries=args.max_retries, k=args.k
        )
        if args.model:
            config = config.with_model(args.model)
        if args.temperature is not None or args.seed is not None:
            config = config.with_sampling(args.temperature, args.seed)
    except (InvalidRequest, ValueError) as err:
        return _fail(str(err))
    problems = ineffective_options(args, spec)
    if problems:
        return _fail("; ".join(problems))
    sim = {
        dest: default if getattr(args, dest) is None else getattr(args, dest)
        for dest, default in SIM_DEFAULTS.items()
    }
    try:
        with open_backend(
            spec,
            profile=sim["sim_profile"],
            time_scale=sim["time_scale"],
            process=False,
            announce=sys.stderr,
        ) as backend:
            gen = generate_sync(
                request,
                args.strategy,
                base_url=backend.base_url,
                api_key=backend.api_key,
                config=config,
                simulator=True if backend.simulated else None,
                options={"hedge_delay_s": args.hedge_delay} if args.hedge_delay is not None else None,
            )
    except NoBackend as err:
        return _fail(str(err))
    if args.json:
        json.dump(redact_obj(gen.to_dict()), sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(redact(render_text(gen)))
    return exit_code(gen)


def render_text(gen: Generation) -> str:
    out = [f"Begrip: {gen.request.begrip}", ""]
    for part, heading in HEADINGS.items():
        out.append(f"== {heading} ==")
        value = gen.parts.get(part, part.empty())
        if part in gen.errors:
            out.append(f"  (niet beschikbaar: {gen.errors[part]})")
        elif isinstance(value, str):
            out.append(f"  {value}")
        else:
            out.extend(f"  {i}. {item}" for i, item in enumerate(value, 1))
            short = gen.shortfalls.get(part, 0)
            if short:
                out.append(f"  (onvolledig: {len(value)} van {len(value) + short} gevraagd)")
        out.append("")
    out.append(render_timing(gen))
    return "\n".join(out)


def part_status(gen: Generation, part: Part) -> str:
    """The status column: derived from the part's outcome (not its last attempt), so it agrees with the
    error shown above the table: ``ok``, ``short (2 of 3)``, or the kind of failure (``timeout``, ``auth``...)."""
    if part in gen.errors:
        head = gen.errors[part].split(":", 1)[0].strip()
        return f"FAILED ({head})" if head and " " not in head else "FAILED"
    value = gen.parts.get(part, part.empty())
    short = gen.shortfalls.get(part, 0)
    truncated = any(
        r.error_kind == "truncated" for r in gen.records if r.part == part.value and r.status == "ok"
    )
    note = ", truncated" if truncated else ""
    if short and isinstance(value, list):
        return f"short ({len(value)} of {len(value) + short}{note})"
    return f"ok{' (truncated)' if truncated else ''}"


def render_timing(gen: Generation) -> str:
    """One row per part (and one for a combined call): call attempts made, the part's latency as its critical path
    (the time its calls were in flight: retries add up, concurrent split calls count once), the time spent
    waiting to retry (Retry-After or backoff) and the part's status."""
    rows = []
    labels = [str(p) for p in HEADINGS]
    extra = sorted({r.part for r in gen.records} - set(labels))  # e.g. "combined"
    for label in [*extra, *labels]:
        recs = [r for r in gen.records if r.part == label and not r.hedge]
        part = Part(label) if label in labels else None
        status = part_status(gen, part) if part is not None else _call_status(recs)
        if not recs:
            via = ", ".join(extra) if part is not None and part not in gen.errors and extra else ""
            rows.append((label, "0", "-", "-", f"{status} (via {via})" if via else status))
            continue
        waited = sum(r.waited_s for r in recs)
        rows.append(
            (
                label,
                str(len(recs)),
                f"{busy_time_s(recs):.2f} s",
                f"{waited:.2f} s" if waited else "-",
                status,
            )
        )
    header = ("part", "attempts", "latency", "waited", "status")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    delivered = sum(1 for p in ALL_PARTS if p not in gen.errors)
    short = sum(1 for p in ALL_PARTS if p not in gen.errors and gen.shortfalls.get(p))
    # "sum of waits" is over all parts, like "sum of calls": parts that run at once wait at once, so it can
    # exceed the wall time
    lines.append(
        f"{delivered} of {len(ALL_PARTS)} parts delivered"
        + (f" ({short} short)" if short else "")
        + f"; wall {gen.wall_s:.2f} s ({gen.strategy}); sum of calls {gen.sum_latency_s:.2f} s, "
        f"slowest part {gen.max_latency_s:.2f} s (critical path)"
        + (f"; sum of waits {gen.waited_s:.2f} s to retry (Retry-After/backoff)" if gen.waited_s else "")
    )
    return "\n".join(lines)


def _call_status(recs: list[Any]) -> str:
    if not recs:
        return "not started"
    last = max(recs, key=lambda r: (r.t_end, r.attempt))
    return last.status if not last.error_kind else f"{last.status} ({last.error_kind})"

"""``voorbeelden generate``: the six parts for one term, with a per-call timing table.

Without a configured endpoint it starts the embedded simulator and says so on stderr, so the command works
on a fresh checkout and never sends a request anywhere the user did not choose.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from voorbeelden.types import Generation, InvalidRequest, Part

HEADINGS = {
    Part.VOORBEELDZINNEN: "Voorbeeldzinnen",
    Part.PRAKTIJKVOORBEELDEN: "Praktijkvoorbeelden",
    Part.TEGENVOORBEELDEN: "Tegenvoorbeelden",
    Part.SYNONIEMEN: "Synoniemen",
    Part.ANTONIEMEN: "Antoniemen",
    Part.TOELICHTING: "Toelichting",
}


def register(subparsers: Any) -> None:
    from voorbeelden.commands._options import at_least_one, non_negative, one_of, positive
    from voorbeelden.sim.profiles import PROFILES

    p = subparsers.add_parser("generate", help="generate the six voorbeelden parts for one term")
    p.add_argument("begrip", help="the term, e.g. besluit")
    p.add_argument("--definitie", default="", help="the term's definition")
    p.add_argument(
        "--organisatorisch", action="append", default=[], metavar="X", help="organisational context"
    )
    p.add_argument("--juridisch", action="append", default=[], metavar="X", help="legal context")
    p.add_argument("--wettelijk", action="append", default=[], metavar="X", help="statutory context")
    from voorbeelden.strategies import STRATEGIES

    p.add_argument("--strategy", default="parallel", choices=sorted(STRATEGIES))
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
        "--deadline", type=positive, default=None, metavar="S", help="deadline for the generation (> 0)"
    )
    p.add_argument("--json", action="store_true", help="print the whole Generation as JSON")
    p.add_argument(
        "--sim-profile",
        type=one_of(PROFILES, "profile"),
        default="definitie-app",
        help="profile of the embedded simulator",
    )
    p.add_argument(
        "--time-scale", type=positive, default=0.1, help="time scale of the embedded simulator (> 0)"
    )
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"voorbeelden generate: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from voorbeelden.client import NoBackend, open_backend
    from voorbeelden.config import GeneratorConfig
    from voorbeelden.generator import generate_sync
    from voorbeelden.types import Request

    context = {
        "organisatorisch": args.organisatorisch,
        "juridisch": args.juridisch,
        "wettelijk": args.wettelijk,
    }
    try:
        request = Request(begrip=args.begrip, definitie=args.definitie, context=context)
        config = GeneratorConfig(deadline_s=args.deadline, k=3 if args.k is None else args.k)
    except (InvalidRequest, ValueError) as err:
        return _fail(str(err))
    if args.model:
        config = config.with_model(args.model)
    try:
        with open_backend(args.base_url, sim_profile=args.sim_profile, time_scale=args.time_scale) as backend:
            gen = generate_sync(
                request,
                args.strategy,
                base_url=backend.base_url,
                api_key=backend.api_key,
                config=config,
                options={"hedge_delay_s": args.hedge_delay} if args.hedge_delay is not None else None,
            )
    except NoBackend as err:
        return _fail(str(err))
    if args.json:
        json.dump(gen.to_dict(), sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(render_text(gen))
    return 0 if gen.n_ok else 1


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
        out.append("")
    out.append(render_timing(gen))
    return "\n".join(out)


def render_timing(gen: Generation) -> str:
    rows = []
    for part in HEADINGS:
        recs = [r for r in gen.records if r.part == str(part) and not r.hedge]
        if not recs:
            rows.append((str(part), "0", "-", "not started"))
            continue
        last = max(recs, key=lambda r: r.attempt)
        latency = sum(r.latency_s for r in recs)
        status = last.status if not last.error_kind else f"{last.status} ({last.error_kind})"
        rows.append((str(part), str(len(recs)), f"{latency:.2f} s", status))
    header = ("part", "attempts", "latency", "status")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(
        f"wall {gen.wall_s:.2f} s ({gen.strategy}); sum of calls {gen.sum_latency_s:.2f} s, "
        f"slowest part {gen.max_latency_s:.2f} s"
    )
    return "\n".join(lines)

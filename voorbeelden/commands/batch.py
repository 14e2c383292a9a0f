"""``voorbeelden batch INPUT.jsonl --out OUTPUT.jsonl``: many terms under rate limits, resumable.

Thin over :func:`voorbeelden.batch.generate_many`. Without a configured endpoint it starts the embedded
simulator (optionally rate limited with ``--sim-rpm``/``--sim-tpm``) and says so on stderr; the client's
rate window is then scaled by the same ``--time-scale`` so that ``--rpm`` means the same thing on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from voorbeelden.commands._options import at_least_one, count, one_of, positive
    from voorbeelden.sim.profiles import PROFILES
    from voorbeelden.strategies import STRATEGIES

    p = subparsers.add_parser(
        "batch",
        help="generate voorbeelden for every term in a JSONL file, under rate limits, resumably",
        description=(
            "Read one request per line (begrip, definitie, context: the fields of `generate`), append one "
            "result line per term to --out, and resume from --out when rerun. Lines that are not valid "
            "requests (bad encoding, bad JSON, missing fields) get a status 'invalid' record with their line "
            "number; the batch goes on. --out must be a new file or a results file of an earlier batch, and "
            "only one batch at a time may write it. Exit 2: refused before any work (a bad option, an "
            "unusable input or output, --out in use by another batch)."
        ),
    )
    p.add_argument("input", type=Path, help="JSONL file (or /dev/stdin), one request per line")
    p.add_argument("--out", type=Path, required=True, help="JSONL results (appended; resumed when present)")
    p.add_argument("--rpm", type=positive, default=None, help="requests per minute for the whole batch")
    p.add_argument(
        "--tpm", type=positive, default=None, help="tokens per minute (prompt chars/4 + max_tokens)"
    )
    p.add_argument(
        "--max-in-flight",
        type=at_least_one,
        default=64,
        help="hard cap on calls at once (default 64); found adaptively below it",
    )
    p.add_argument(
        "--fixed", action="store_true", help="no adaptive concurrency: always --max-in-flight calls at once"
    )
    p.add_argument(
        "--strategy",
        type=one_of(sorted(STRATEGIES), "strategy"),
        default="parallel",
        help="per-term strategy: " + ", ".join(sorted(STRATEGIES)),
    )
    p.add_argument("--no-cache", action="store_true", help="do not answer identical calls from the cache")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache directory (default .cache/voorbeelden)"
    )
    p.add_argument("--retry-failed", action="store_true", help="rerun terms recorded as failed in --out")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL)")
    p.add_argument("--model", default=None, help="model for every part (default: OPENAI_MODEL or gpt-4.1)")
    p.add_argument(
        "--call-timeout", type=positive, default=None, metavar="S", help="per-call timeout in seconds (> 0)"
    )
    p.add_argument(
        "--max-retries", type=count, default=None, help="retries per call, >= 0 (default: the generator's)"
    )
    p.add_argument("--fsync", action="store_true", help="fsync after every line (survives power loss)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout; no progress bar")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim = p.add_argument_group("embedded simulator (used when no endpoint is configured)")
    sim.add_argument(
        "--sim-profile", type=one_of(PROFILES, "profile"), default="definitie-app", help="latency profile"
    )
    sim.add_argument(
        "--time-scale", type=positive, default=0.1, help="multiply every simulated time by this (> 0)"
    )
    sim.add_argument("--sim-rpm", type=positive, default=None, help="the simulator's own requests/min limit")
    sim.add_argument("--sim-tpm", type=positive, default=None, help="the simulator's own tokens/min limit")
    sim.add_argument(
        "--sim-capacity", type=at_least_one, default=None, help="calls the simulator serves at once (>= 1)"
    )
    sim.add_argument("--sim-process", action="store_true", help="run the simulator as a separate process")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"voorbeelden batch: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from voorbeelden.batch import generate_many
    from voorbeelden.batch.inputs import check_source, same_file
    from voorbeelden.batch.output import check_output
    from voorbeelden.client import PLACEHOLDER_KEY, NoBackend, has_configured_backend, resolve

    # Everything that can be checked is checked before a simulator starts or a file changes.
    try:
        check_source(args.input)
        if same_file(args.input, args.out):
            return _fail(f"--out {args.out} is the input file itself; choose another --out")
        check_output(args.out)
    except ValueError as err:
        return _fail(str(err))

    with ExitStack() as stack:
        period = 60.0
        if has_configured_backend(args.base_url):
            try:
                base_url, api_key = resolve(args.base_url, None)
            except NoBackend as err:
                return _fail(str(err))
        else:
            from voorbeelden.sim import SimConfig, running_simulator

            cfg = SimConfig(
                profile=args.sim_profile,
                time_scale=args.time_scale,
                rpm=args.sim_rpm,
                tpm=args.sim_tpm,
                capacity=args.sim_capacity,
            )
            handle = stack.enter_context(running_simulator(cfg, process=args.sim_process))
            base_url, api_key = handle.base_url, PLACEHOLDER_KEY
            period = 60.0 * args.time_scale
            limits = ", ".join(
                f"{k} {v:g}" for k, v in (("rpm", args.sim_rpm), ("tpm", args.sim_tpm)) if v is not None
            )
            print(
                f"no OPENAI_BASE_URL/--base-url or OPENAI_API_KEY set: using the embedded simulator at {base_url} "
                f"(profile {args.sim_profile}, time_scale {args.time_scale:g}{', ' + limits if limits else ''}); "
                "the text is simulated, not written by a model",
                file=sys.stderr,
            )
        cache: bool | Path = False if args.no_cache else (args.cache_dir or True)
        try:
            summary = asyncio.run(
                generate_many(
                    args.input,
                    out=args.out,
                    strategy=args.strategy,
                    base_url=base_url,
                    api_key=api_key,
                    rpm=args.rpm,
                    tpm=args.tpm,
                    period_s=period,
                    max_in_flight=args.max_in_flight,
                    adaptive=not args.fixed,
                    cache=cache,
                    retry_failed=args.retry_failed,
                    model=args.model,
                    call_timeout_s=args.call_timeout,
                    max_retries=args.max_retries,
                    progress=False if (args.json or args.no_progress) else None,
                    fsync=args.fsync,
                )
            )
        except ValueError as err:  # refused output (not ours, in use), an unusable input, an invalid limit
            return _fail(str(err))
    data = summary.to_dict()
    if data["torn_bytes_cut"]:
        print(
            f"voorbeelden batch: cut a torn last line ({data['torn_bytes_cut']} bytes, a write interrupted by a "
            f"kill) from {args.out}; that term was run again",
            file=sys.stderr,
        )
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        gate = data["gate"]
        print(
            f"{data['generated']} terms generated ({data['ok']} ok, {data['failed']} failed), "
            f"{data['invalid']} invalid lines, {data['skipped']} already done, {data['duplicates']} duplicates; "
            f"{gate.get('sent', 0)} calls ({gate.get('cache_hits', 0)} from cache, {gate.get('throttled', 0)} "
            f"answered 429, {gate.get('retries', 0)} retries) in {data['wall_s']:.1f} s; results in {args.out}",
            file=sys.stderr,
        )
    return 0 if data["failed"] == 0 and data["invalid"] == 0 else 1

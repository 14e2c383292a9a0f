"""``voorbeelden batch INPUT.jsonl --out OUTPUT.jsonl``: many terms under rate limits, resumable.

Thin over :func:`voorbeelden.batch.generate_many`. Without a configured endpoint it starts the embedded
simulator (optionally rate limited with ``--sim-rpm``/``--sim-tpm``) and says so on stderr; the client's
rate window is then scaled by the same ``--time-scale`` so that ``--rpm`` means the same thing on both sides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voorbeelden.consent import BATCH_CONSENT_CALLS, EXIT_NO_CONSENT
from voorbeelden.redact import redact, redact_obj

if TYPE_CHECKING:
    from voorbeelden.backend import BackendSpec

# Exit codes (also in the README), judged over the terms this run generated (terms skipped because --out
# already has them are not re-judged). A term is "complete" when all six parts were delivered.
EXIT_CODES_HELP = f"""exit codes:
  0  every term of this run complete (all six parts delivered), no invalid lines
  1  no part delivered for any term (every call failed, or every line invalid)
  2  bad input (arguments, missing input file): nothing was sent
  3  partial: some terms incomplete or some lines invalid (see "terms" in --json, and --out)
  {EXIT_NO_CONSENT}  stopped before any call: over {BATCH_CONSENT_CALLS} calls to a remote (possibly paid) endpoint need --yes
  130  interrupted (Ctrl-C): the lines finished so far are kept; run again to resume"""


def term_entry(row: dict[str, Any]) -> dict[str, Any]:
    """One term's status for the summary: complete (six parts), partial, failed (no part) or invalid."""
    if row.get("status") == "invalid":
        return {"line": row.get("line"), "status": "invalid", "error": row.get("error")}
    parts = row.get("parts") or {}
    errors = row.get("errors") or {}
    delivered = sum(1 for name in parts if name not in errors) if parts else 0
    status = "complete" if parts and not errors else ("partial" if delivered else "failed")
    entry: dict[str, Any] = {
        "line": row.get("line"),
        "begrip": row.get("begrip"),
        "status": status,
        "parts_delivered": delivered,
        "parts_short": len(row.get("shortfalls") or {}),
    }
    if errors or row.get("error"):
        entry["error"] = row.get("error") or next(iter(errors.values()))
    return entry


def batch_exit_code(terms: list[dict[str, Any]]) -> int:
    if all(t["status"] == "complete" for t in terms):
        return 0
    if not any(t["status"] in ("complete", "partial") for t in terms):
        return 1
    return 3


HELP = "generate voorbeelden for every term in a JSONL file, under rate limits, resumably"
DESCRIPTION = (
    "Read one request per line (begrip, definitie, context: the fields of `generate`), append one "
    "result line per term to --out, and resume from --out when rerun. Lines that are not valid "
    "requests (bad encoding, bad JSON, missing fields) get a status 'invalid' record with their line "
    "number; the batch goes on. --out must be a new file or a results file of an earlier batch, and "
    "only one batch at a time may write it. Exit 2: refused before any work (a bad option, an "
    "unusable input or output, --out in use by another batch)."
)
EPILOG = EXIT_CODES_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import count, one_of, positive
    from voorbeelden.strategies.registry import names

    p.add_argument("input", type=Path, help="JSONL file (or /dev/stdin), one request per line")
    p.add_argument("--out", type=Path, required=True, help="JSONL results (appended; resumed when present)")
    p.add_argument(
        "--strategy",
        type=one_of(names(), "strategy"),
        default="parallel",
        help="per-term strategy: " + ", ".join(names()),
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
    _add_pacing_options(p.add_argument_group("pacing (rate limits, concurrency, cache)"))
    _add_output_options(p)
    _add_embedded_sim_options(p)
    from voorbeelden.batch.provider import cli as batch_api  # --via openai-batch, --export/--import, --cancel

    batch_api.add_arguments(p)


def _add_pacing_options(g: argparse._ArgumentGroup) -> None:
    """How fast the batch may go: the limits it starts from (the endpoint's headers correct them) and the
    concurrency it searches below its cap."""
    from voorbeelden.commands._options import at_least_one, positive

    g.add_argument(
        "--rpm",
        type=positive,
        default=None,
        help="requests per minute for the whole batch: the starting estimate; the endpoint's "
        "x-ratelimit-* headers correct it as answers arrive",
    )
    g.add_argument(
        "--tpm", type=positive, default=None, help="tokens per minute (prompt chars/4 + max_tokens), likewise"
    )
    g.add_argument(
        "--max-in-flight",
        type=at_least_one,
        default=64,
        help="hard cap on calls at once (default 64); found adaptively below it",
    )
    g.add_argument(
        "--fixed", action="store_true", help="no adaptive concurrency: always --max-in-flight calls at once"
    )
    g.add_argument("--no-cache", action="store_true", help="do not answer identical calls from the cache")
    g.add_argument(
        "--cache-dir", type=Path, default=None, help="cache directory (default .cache/voorbeelden)"
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--records",
        type=Path,
        default=None,
        metavar="FILE",
        help="also append every call attempt (timing, status, tokens) as a JSON line to FILE; result lines "
        "in --out stay compact (parts, status, errors, a timing summary)",
    )
    p.add_argument("--fsync", action="store_true", help="fsync after every line (survives power loss)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout; no progress bar")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"consent in advance to more than {BATCH_CONSENT_CALLS} calls to a remote (possibly paid) endpoint",
    )


def _add_embedded_sim_options(p: argparse.ArgumentParser) -> None:
    from voorbeelden.commands._options import (
        Given,
        GivenFlag,
        add_embedded_sim_options,
        at_least_one,
        one_of,
        positive,
    )

    sim = p.add_argument_group(
        "embedded simulator (used when no endpoint is configured; with one, these options are an error)"
    )
    add_embedded_sim_options(sim, "latency profile", "multiply every simulated time by this (> 0)")
    sim.add_argument(
        "--sim-rpm", type=positive, default=None, action=Given, help="the simulator's own requests/min limit"
    )
    sim.add_argument(
        "--sim-tpm", type=positive, default=None, action=Given, help="the simulator's own tokens/min limit"
    )
    sim.add_argument(
        "--sim-capacity",
        type=at_least_one,
        default=None,
        action=Given,
        help="calls the simulator serves at once (>= 1)",
    )
    sim.add_argument(
        "--sim-rate-limit-mode",
        type=one_of(("bucket", "quantized", "short-window"), "rate-limit mode"),
        default="bucket",
        action=Given,
        help="how the simulator enforces --sim-rpm/--sim-tpm (see `voorbeelden sim --help`)",
    )
    sim.add_argument(
        "--sim-charge-rejected", action=GivenFlag, help="the simulator counts requests it answers 429"
    )
    sim.add_argument("--sim-process", action=GivenFlag, help="run the simulator as a separate process")


def _check_options_have_effect(args: argparse.Namespace, spec: BackendSpec) -> None:
    """Refuse (ValueError, exit 2) an option that would do nothing here: the embedded simulator's options
    when an endpoint is configured, its rate-limit mode without a limit to enforce, a cache folder without
    the cache."""
    from voorbeelden.commands._options import given

    used = given(args)
    sim_options = [o for d, o in used.items() if d.startswith("sim_") or d == "time_scale"]
    if spec.kind == "real" and sim_options:
        raise ValueError(
            f"{sim_options[0]} has no effect: an endpoint is configured ({spec.source}), so no simulator "
            "starts. Drop the option, or unset the endpoint (--base-url, OPENAI_BASE_URL, OPENAI_API_KEY) to "
            "use the embedded simulator"
        )
    if args.sim_rpm is None and args.sim_tpm is None:
        for dest in ("sim_rate_limit_mode", "sim_charge_rejected"):
            if dest in used:
                raise ValueError(
                    f"{used[dest]} has no effect without --sim-rpm or --sim-tpm (no limit to enforce)"
                )
    if args.no_cache and args.cache_dir is not None:
        raise ValueError("--cache-dir has no effect with --no-cache")


def _consented(args: argparse.Namespace, spec: BackendSpec) -> bool:
    """Above BATCH_CONSENT_CALLS calls to a remote endpoint, say what will happen and ask (voorbeelden.consent)."""
    from voorbeelden.batch.inputs import count_lines
    from voorbeelden.config import default_model
    from voorbeelden.consent import Plan, confirm, is_remote
    from voorbeelden.consent_plan import per_generation

    if spec.kind != "real" or not is_remote(spec.base_url):
        return True
    counted = count_lines(args.input)  # None for a pipe: never read twice, so the count is unknown
    calls, tokens_in, tokens_out = per_generation(args.strategy)
    if counted is not None and counted * calls <= BATCH_CONSENT_CALLS:
        return True
    terms = counted if counted is not None else 1
    per_term = f"{calls} calls per term ({args.strategy})"
    plan = Plan(
        action=f"voorbeelden batch {args.input.name}",
        host=spec.host or "",
        chosen_by=spec.source,
        calls=terms * calls,
        tokens_in=terms * tokens_in,
        tokens_out_max=terms * tokens_out,
        model=args.model or default_model(),
        batch_api=getattr(args, "via", "online") == "openai-batch",
        details=(
            f"{terms:,} input lines x {per_term}; terms already in --out are skipped, retries come on top"
            if counted is not None
            else f"the input is a pipe, so the number of terms is unknown: the figures above are for ONE "
            f"term ({per_term})",
        ),
    )
    how = "To try it on a few terms first, give a shorter input file; the embedded simulator is free (unset "
    how += "OPENAI_API_KEY and OPENAI_BASE_URL)."
    return confirm(plan, yes=args.yes, how_to_avoid=how)


def _fail(message: str) -> int:
    print(f"voorbeelden batch: {redact(message)}", file=sys.stderr)
    return 2


def _check_before_work(args: argparse.Namespace) -> BackendSpec:
    """Everything that can be checked, before a simulator starts or a file changes (ValueError: a message)."""
    from voorbeelden.backend import endpoint_spec
    from voorbeelden.batch.inputs import check_source
    from voorbeelden.batch.output import check_output, check_targets

    check_source(args.input)
    check_targets(args.input, args.out, args.records)
    check_output(args.out)
    spec = endpoint_spec(args.base_url)
    _check_options_have_effect(args, spec)
    return spec


def run(args: argparse.Namespace) -> int:
    from voorbeelden.backend import open_backend
    from voorbeelden.batch import generate_many
    from voorbeelden.batch.provider import cli as batch_api
    from voorbeelden.syncrun import run_sync

    code = batch_api.run(args, _check_before_work, _consented)  # None: not a Batch API run
    if code is not None:
        return code

    try:
        spec = _check_before_work(args)
    except ValueError as err:
        return _fail(str(err))
    if not _consented(args, spec):
        return EXIT_NO_CONSENT

    # Used only when no endpoint is configured: the embedded simulator, with its own limits if asked.
    sim = {"profile": args.sim_profile, "time_scale": args.time_scale, "process": args.sim_process}
    limits = {"rpm": args.sim_rpm, "tpm": args.sim_tpm, "capacity": args.sim_capacity}
    limits |= {"rate_limit_mode": args.sim_rate_limit_mode, "charge_rejected": args.sim_charge_rejected}
    with open_backend(spec, announce=sys.stderr, **sim, **limits) as backend:
        base_url, api_key = backend.base_url, backend.api_key
        # The simulator's clock runs time_scale times faster: the client's rate window shrinks with it, so
        # --rpm means the same on both sides.
        period = 60.0 * backend.clock_scale
        cache: bool | Path = False if args.no_cache else (args.cache_dir or True)
        terms: list[dict[str, Any]] = []
        try:
            summary = run_sync(
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
                    records=args.records,
                    on_result=lambda row: terms.append(term_entry(row)),
                )
            )
        except ValueError as err:  # refused output (not ours, in use), an unusable input, an invalid limit
            return _fail(str(err))
    return _report(args, summary.to_dict(), terms)


def _report(args: argparse.Namespace, data: dict[str, Any], terms: list[dict[str, Any]]) -> int:
    """Say how the batch went (stderr, or the whole summary as JSON on stdout) and return its exit code."""
    if data["torn_bytes_cut"]:
        print(
            f"voorbeelden batch: cut a torn last line ({data['torn_bytes_cut']} bytes, a write interrupted by a "
            f"kill) from {args.out}; that term was run again",
            file=sys.stderr,
        )
    code = batch_exit_code(terms)
    if data.get("stopped") or data.get("records_problem"):
        # stopped early: 1 when the endpoint refused the key (nothing will work until it is fixed), else
        # partial (a full disk: the lines written are whole and kept); lost call records are partial too
        if "refused the key" in (data.get("stopped") or ""):
            code = 1
        elif code == 0:
            code = 3
        if data.get("lines_unwritten"):
            data["stopped"] += f" ({data['lines_unwritten']} finished terms could not be written)"
        for what in ("stopped", "records_problem"):
            if data.get(what):
                print(f"voorbeelden batch: {redact(data[what])}", file=sys.stderr)
    counts = {
        k: sum(1 for t in terms if t["status"] == k) for k in ("complete", "partial", "failed", "invalid")
    }
    data.update(exit_code=code, term_status=counts, terms=sorted(terms, key=lambda t: t.get("line") or 0))
    data = redact_obj(data)
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        gate = data["gate"]
        print(
            f"{data['generated']} terms generated ({counts['complete']} complete, {counts['partial']} partial, "
            f"{counts['failed']} with no part), "
            f"{data['invalid']} invalid lines, {data['skipped']} already done, {data['duplicates']} duplicates; "
            f"{gate.get('sent', 0)} calls ({gate.get('cache_hits', 0)} from cache, {gate.get('throttled', 0)} "
            f"answered 429, {data.get('retries', 0)} retries) in {data['wall_s']:.1f} s; results in {args.out}",
            file=sys.stderr,
        )
        incomplete = [t for t in data["terms"] if t["status"] != "complete"]
        for t in incomplete[:20]:
            what = t.get("begrip") or "(invalid line)"
            print(f"  line {t['line']}: {t['status']}: {what}: {t.get('error', '')}", file=sys.stderr)
        if len(incomplete) > 20:
            print(f"  ... and {len(incomplete) - 20} more (--json lists every term)", file=sys.stderr)
    return code

"""``voorbeelden compare BASE NEW``: did a change make generation slower, or is it noise? (see
voorbeelden.report.compare)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from voorbeelden.commands._options import at_least_one

HELP = "compare two report folders: each figure's change with a bootstrap CI, and a regression verdict"
DESCRIPTION = (
    "For every headline figure two report folders share (speedup per profile, wall p50/p95 per strategy and "
    "profile, time to first part, completeness, 429 share where present): the change new/base as a ratio "
    "with a 95% bootstrap CI computed from the per-trial records in results.jsonl (paired by trial when both "
    "runs hold the same trials), and a verdict: 'regression' when the whole CI lies beyond the threshold in "
    "the bad direction, 'improvement' the other way, else 'no change detected'. Reports that measured "
    "different things (backend, profile, time_scale, seed, model or notebook parameters differ) are not "
    "compared unless --force."
)
EPILOG = """exit codes:
  0  no regression
  1  at least one regression (a figure the base has and the new report lost counts as one)
  2  not comparable (what differs is listed), or bad input (missing folder, not a report, unreadable file)

example (a CI gate):
  voorbeelden compare baseline/ reports/latest/ --threshold 5% --html compare.html"""


def threshold(text: str) -> float:
    """``"5%"`` or ``"0.05"`` -> 0.05; anything else, or outside (0, 100%), is refused naming what is accepted."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"must be a percentage such as 5% or a fraction such as 0.05 (in (0, 1)), got {text!r}"
        )
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE", help="the baseline report folder (reports/<timestamp>)")
    p.add_argument("new", metavar="NEW", help="the report folder to judge against it")
    p.add_argument(
        "--threshold",
        type=threshold,
        default="5%",
        metavar="PCT",
        help="a change counts only when the whole CI is beyond this (default 5%%; also 0.05)",
    )
    p.add_argument("--html", metavar="FILE", help="also write a page with both runs' charts and the deltas")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON instead of the table")
    p.add_argument(
        "--force",
        action="store_true",
        help="compare reports that are not comparable; differences printed first",
    )
    p.add_argument(
        "--n-boot", type=at_least_one, default=4000, metavar="N", help="bootstrap resamples (default 4000)"
    )


def run(args: argparse.Namespace) -> int:
    from voorbeelden.redact import redact
    from voorbeelden.report.compare import NotComparable, compare_reports, format_table
    from voorbeelden.report.compare_figures import NotAReport

    try:
        result = compare_reports(
            args.base, args.new, threshold=args.threshold, force=args.force, n_boot=args.n_boot
        )
    except NotAReport as exc:
        print(f"compare: {redact(str(exc))}", file=sys.stderr)
        return 2
    except NotComparable as exc:
        print(f"compare: {redact(str(exc))}\n(--force compares them anyway)", file=sys.stderr)
        return 2
    if args.html:
        from voorbeelden.report.compare_page import write_page

        try:
            write_page(result, args.html)
        except OSError as exc:
            print(f"compare: --html {args.html}: cannot write it ({exc.strerror or exc})", file=sys.stderr)
            return 2
    if args.json:
        print(redact(json.dumps(result.as_json(), indent=1, ensure_ascii=False)))
    else:
        print(redact(format_table(result)))
        if args.html:
            print(f"page: {args.html}")
    return result.exit_code

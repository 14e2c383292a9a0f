"""``voorbeelden report``: run the notebook suite and write ``reports/<timestamp>/`` (see voorbeelden.bench.report)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="run the benchmark notebooks and write an HTML report",
        description=(
            "Execute the notebooks with papermill and write reports/<timestamp>/ (executed notebooks, HTML, PNG "
            "plots, results.jsonl, summary.json, index.html); reports/latest points to the newest. The backend is "
            "the embedded simulator unless OPENAI_BASE_URL / OPENAI_API_KEY are set (backend: auto)."
        ),
    )
    p.add_argument(
        "--params", metavar="FILE", help="YAML parameters (default: notebooks/params/default.yaml)"
    )
    p.add_argument("--out", metavar="DIR", help="folder for report runs (default: reports/)")
    p.add_argument("--notebooks", metavar="DIR", help="folder with the notebooks (default: the project's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from voorbeelden.bench.report import run_report

    try:
        result = run_report(
            args.params, args.out, notebooks_dir=args.notebooks, progress=not args.no_progress
        )
    except (OSError, ValueError) as exc:  # a missing file, an unusable --out, invalid parameters
        print(f"report: {exc}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:
        print(f"report: the parameter file is not valid YAML: {exc}", file=sys.stderr)
        return 2
    s = result.summary
    print(f"report: {result.report_dir}/index.html ({s['duration_s']:.0f} s)")
    print(f"backend: {s['backend_line']}")
    for profile, sp in s["speedup"].items():
        print(
            f"  {profile}: speedup {sp['median']:.2f}x (95% CI {sp['ci_low']:.2f}-{sp['ci_high']:.2f}), "
            f"per-trial bound {sp['trial_bound']:.2f}x, expected bound "
            + (f"{sp['expected_bound']:.2f}x" if sp["expected_bound"] is not None else "n/a")
        )
    for run_ in result.runs:
        if run_.status != "ok":
            print(f"  FAILED {run_.name}: {run_.error}", file=sys.stderr)
    return result.exit_code

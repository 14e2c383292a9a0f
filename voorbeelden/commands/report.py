"""``voorbeelden report``: run the notebook suite and write ``reports/<timestamp>/`` (see voorbeelden.report.runner)."""

from __future__ import annotations

import argparse
import sys

from voorbeelden.consent import EXIT_NO_CONSENT
from voorbeelden.redact import redact

EXIT_CODES_HELP = f"""exit codes:
  0  every notebook ran and every headline figure rests on complete pairs
  1  a notebook failed, or a headline has no complete pair (summary.json: ok false, with the reason)
  2  bad parameters: nothing was run
  {EXIT_NO_CONSENT}  stopped before any call: a remote (possibly paid) endpoint needs consent (--yes)
  130  interrupted (Ctrl-C): the report folder is marked INCOMPLETE and reports/latest is not moved"""


HELP = "run the benchmark notebooks and write an HTML report"
DESCRIPTION = (
    "Execute the notebooks with papermill and write reports/<timestamp>/ (executed notebooks, HTML, PNG "
    "plots, results.jsonl, summary.json, index.html); reports/latest points to the newest. The backend is "
    "the embedded simulator unless OPENAI_BASE_URL / OPENAI_API_KEY are set (backend: auto). Before any "
    "call to a remote endpoint (not this machine) it says what it will do (calls, tokens, estimated cost) "
    "and asks; --yes answers for you."
)
EPILOG = EXIT_CODES_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params", metavar="FILE", help="YAML parameters (default: notebooks/params/default.yaml)"
    )
    p.add_argument("--out", metavar="DIR", help="folder for report runs (default: reports/)")
    p.add_argument("--notebooks", metavar="DIR", help="folder with the notebooks (default: the project's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--yes", action="store_true", help="consent in advance to calls to a remote (possibly paid) endpoint"
    )


def _consented(args: argparse.Namespace) -> bool:
    """Ask before a remote endpoint is called (see voorbeelden.consent); True when nothing needs asking."""
    from pathlib import Path

    from voorbeelden.consent import confirm
    from voorbeelden.consent_plan import quietly, report_plan
    from voorbeelden.report.plan import (
        DEFAULT_PARAMS,
        NOTEBOOKS_DIR,
        load_params,
        notebook_names,
        plan_parameters,
    )

    params = Path(args.params) if args.params else DEFAULT_PARAMS
    nb_dir = Path(args.notebooks) if args.notebooks else NOTEBOOKS_DIR
    config = load_params(params)
    try:
        names = notebook_names(config, nb_dir, params)
    except FileNotFoundError:  # run_report says so, with exit 2
        return True
    # The same checked parameters the run will use: invalid ones stop here (exit 2) before anyone is asked.
    plan = report_plan(
        quietly(plan_parameters, config, names, nb_dir, params),
        nb_dir,
        action=f"voorbeelden report with {params.name}",
    )
    if plan is None:
        return True
    return confirm(
        plan,
        yes=args.yes,
        how_to_avoid=(
            "To measure the embedded simulator instead (free), unset OPENAI_API_KEY and OPENAI_BASE_URL, "
            "or set 'backend: sim' under 'common' in the parameter file."
        ),
    )


def run(args: argparse.Namespace) -> int:
    import yaml

    from voorbeelden.report.runner import run_report

    try:
        if not _consented(args):
            return EXIT_NO_CONSENT
        result = run_report(
            args.params, args.out, notebooks_dir=args.notebooks, progress=not args.no_progress
        )
    except (OSError, ValueError) as exc:  # a missing file, an unusable --out, invalid parameters
        print(f"report: {redact(str(exc))}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:
        print(f"report: the parameter file is not valid YAML: {exc}", file=sys.stderr)
        return 2
    s = result.summary
    lines = [
        f"report: {result.report_dir}/index.html ({s['duration_s']:.0f} s)",
        f"backend: {s['backend_line']}",
    ]
    lines += speedup_lines(s)
    unit = "model s" if (s.get("backend") or {}).get("kind") == "simulated" else "s"
    lines += [
        f"  {row['profile']} / {row['strategy']}: "
        + (
            f"wall p50 {row['wall_p50_s']:.2f} {unit}, p95 {row['wall_p95_s']:.2f} {unit} over "
            f"{row['n_complete']} of {row['n']} complete generations"
            if row.get("n_complete") and _finite(row.get("wall_p50_s"))
            else f"no figure: {row.get('n_complete') or 0} of {row.get('n')} generations complete"
        )
        for row in s.get("strategies", [])
    ]
    lines.append(
        "OK: every notebook ran, every headline has complete pairs" if result.ok else "NOT OK (exit 1):"
    )
    lines += [f"  {reason}" for reason in s.get("reasons") or []]
    print(redact("\n".join(lines)))
    return result.exit_code


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and value == value


def speedup_lines(summary: dict) -> list[str]:
    """One line per profile: the speedup with its completeness (complete pairs of pairs run), or why none."""
    out = []
    for profile, sp in summary["speedup"].items():
        pairs = f"{sp['n_pairs']} of {sp.get('n_pairs_total', sp['n_pairs'])}"
        if not sp["n_pairs"] or not _finite(sp.get("median")):
            out.append(f"  {profile}: no speedup: {pairs} sequential/parallel pairs complete")
            continue
        expected = sp.get("expected_bound")
        out.append(
            f"  {profile}: speedup {sp['median']:.2f}x (95% CI {sp['ci_low']:.2f}-{sp['ci_high']:.2f}) over "
            f"{pairs} complete pairs, per-trial bound {sp['trial_bound']:.2f}x, expected bound "
            + (f"{expected:.2f}x" if _finite(expected) else "n/a")
        )
    return out

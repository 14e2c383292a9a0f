"""The A/A and A/B campaign behind docs/COMPARE.md: does ``voorbeelden compare`` stay quiet on noise and
flag a real slowdown?

One baseline report A0, then, interleaved so that both kinds see the same drift in the machine's load:

* A/A: reports of the same commit and parameters, each compared with A0 (the way a CI job uses a baseline
  artifact); a ``regression`` verdict here is a false alarm;
* A/B slow part: ``VOORBEELDEN_TEST_SLOW_PART=praktijkvoorbeelden:1.2`` (the simulator serves that part 20%
  slower), compared with A0; exit 1 (a regression) is a detection;
* A/B slow client: ``VOORBEELDEN_TEST_CALL_DELAY_MS=50`` (the client waits 50 ms before every request).

Every report is a real ``voorbeelden report`` run (subprocess, embedded simulator) with
``scripts/compare_params.yaml``; every comparison a real ``voorbeelden compare --json``. Results are appended to
``OUT/campaign.jsonl`` as they come (a rerun with the same ``--out`` continues where it stopped), and the
counts are printed at the end. Usage::

    .venv/bin/python scripts/compare_campaign.py --out /tmp/compare-campaign --aa 20 --ab 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "scripts" / "compare_params.yaml"
KINDS = {
    "A/A": {},
    "A/B slow part": {"VOORBEELDEN_TEST_SLOW_PART": "praktijkvoorbeelden:1.2"},
    "A/B slow client": {"VOORBEELDEN_TEST_CALL_DELAY_MS": "50"},
}


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOORBEELDEN_TEST_"))}
    env["MPLBACKEND"] = "agg"
    return {**env, **extra}


def make_report(out: Path, params: Path, extra: dict[str, str]) -> tuple[Path, float]:
    """One report into ``out``; its folder and how long it took. Raises on a failed report."""
    before = set(out.glob("2*")) if out.exists() else set()
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voorbeelden",
            "report",
            "--params",
            str(params),
            "--out",
            str(out),
            "--no-progress",
        ],
        env=_env(extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    took = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"report failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    (folder,) = set(out.glob("2*")) - before
    return folder, took


def compare(base: Path, new: Path, threshold: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voorbeelden",
            "compare",
            str(base),
            str(new),
            "--json",
            "--threshold",
            threshold,
        ],
        env=_env({}),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"compare failed (exit {proc.returncode}): {proc.stderr}")
    return proc.returncode, json.loads(proc.stdout)


def plan(aa: int, ab: int) -> list[str]:
    """The order of the runs after A0: the B runs spread evenly among the A runs."""
    kinds = ["A/A"] * aa
    step = max(1, aa // max(1, ab))
    for i in range(ab):
        for n, kind in enumerate(("A/B slow part", "A/B slow client")):
            kinds.insert(min(len(kinds), (i + 1) * step + 2 * i + n), kind)
    return kinds


def summarise(rows: list[dict], base: Path) -> None:
    print(f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, baseline {base}")
    for kind in KINDS:
        done = [r for r in rows if r["kind"] == kind]
        if done:
            hit = sum(r["exit"] == 1 for r in done)
            what = "false alarms (exit 1)" if kind == "A/A" else "flagged (exit 1)"
            print(f"{kind:16s}: {hit} of {len(done)} {what}")


def recompare(log: Path, threshold: str) -> int:
    """Every report of a campaign judged again against its A0 (the verdicts of one version of the code)."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    base = Path(rows[0]["report"])
    for row in rows[1:]:
        row["exit"], result = compare(base, Path(row["report"]), threshold)
        row["flagged"] = [
            f["name"] for f in result["figures"] if f["verdict"] in ("regression", "missing in new")
        ]
        print(f"{row['kind']:16s} exit {row['exit']}  flagged: {', '.join(row['flagged']) or '-'}")
    summarise(rows[1:], base)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the reports and campaign.jsonl")
    ap.add_argument("--params", type=Path, default=PARAMS)
    ap.add_argument("--aa", type=int, default=20, help="A/A comparisons (default 20)")
    ap.add_argument("--ab", type=int, default=5, help="A/B comparisons of each kind (default 5)")
    ap.add_argument("--threshold", default="5%")
    ap.add_argument(
        "--recompare",
        action="store_true",
        help="make no report: judge the reports in OUT/campaign.jsonl again with the code checked out now",
    )
    args = ap.parse_args(argv)
    if args.recompare:
        return recompare(args.out / "campaign.jsonl", args.threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "campaign.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if not done:
        base, took = make_report(args.out, args.params, {})
        done.append({"kind": "A0", "report": str(base), "seconds": took})
        with log.open("a") as f:
            f.write(json.dumps(done[-1]) + "\n")
    base = Path(done[0]["report"])
    for i, kind in enumerate(plan(args.aa, args.ab)):
        if i + 1 < len(done):
            continue
        folder, took = make_report(args.out, args.params, KINDS[kind])
        code, result = compare(base, folder, args.threshold)
        flagged = [f["name"] for f in result["figures"] if f["verdict"] in ("regression", "missing in new")]
        row = {"kind": kind, "report": str(folder), "seconds": took, "exit": code, "flagged": flagged}
        done.append(row)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{len(done) - 1:3d} {kind:16s} exit {code} {took:5.0f} s  flagged: {', '.join(flagged) or '-'}"
        )
    summarise(done[1:], base)
    return 0


if __name__ == "__main__":
    sys.exit(main())

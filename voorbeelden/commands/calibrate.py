"""``voorbeelden calibrate RESULTS.jsonl --out profile.json``: fit a simulator profile from call records.

Reads trials/report JSONL (generation rows with their call records, or one record per line), fits per part
the time to first token, output tokens and tokens/s, and the server's effective concurrency or, when
concurrent calls slowed each other, its batching curve (see :mod:`voorbeelden.sim.calibrate` and
:mod:`voorbeelden.sim.calibrate_batching`), writes the profile file and prints what it fitted. Serve the
result with ``voorbeelden sim --profile-file profile.json``.
"""

from __future__ import annotations

import argparse
import sys

HELP = (
    "fit a simulator profile (per-part TTFT, tokens, tokens/s, server concurrency or batching curve) from "
    "call records"
)
DESCRIPTION = (
    "Fit a simulator profile from measured call records (any backend) and write it as JSON; "
    "serve it with 'voorbeelden sim --profile-file FILE'."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS.jsonl", help="trials or report JSONL file(s)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the profile (JSON)")
    p.add_argument("--name", default=None, help="profile name (default: calibrated-<first file's stem>)")


def run(args: argparse.Namespace) -> int:
    from voorbeelden.outpaths import OutputPathError, check_file_target
    from voorbeelden.sim.calibrate import CalibrationError, calibrate_files, write_profile

    inputs = {f"input {name}": name for name in args.results}
    try:
        check_file_target(args.out, "--out", not_same_as=inputs, example="profile.json")
        cal = calibrate_files(args.results, name=args.name)
    except (CalibrationError, OutputPathError) as e:
        print(f"calibrate: {e}", file=sys.stderr)
        return 2
    path = write_profile(cal, args.out)
    cap = cal.concurrency
    print(f"calibrate: wrote {path} (profile {cal.name}, {cal.n_records} call records)")
    busy = "n/a" if cap.busy_median is None else f"{cap.busy_median:.2f}"
    print(
        f"  server concurrency: {cap.capacity if cap.capacity is not None else 'no limit observed'} "
        f"(mean requests in service while calls overlapped: {busy}, over {cap.n_generations} generations)"
    )
    fit = cal.batching_fit
    if fit is not None and fit.batching is not None:
        curve = fit.batching
        speeds = ", ".join(f"{n}: {v:.2f}" for n, v in enumerate(curve.speed, 1))
        print(
            f"  batching: concurrent calls slow each other; per-stream speed by streams served ({speeds}), "
            f"up to {curve.max_batch} at once, more queue (replay error {fit.error_s:.2f} s vs "
            f"{fit.error_no_slowdown_s:.2f} s without slowdown, over {fit.n_calls} calls)"
        )
    print(f"  decode: {1 / cal.seconds_per_token:.1f} tokens/s (residual sigma {cal.residual_sigma:.2f})")
    table = cal.table()
    for row in table.itertuples(index=False):
        print(
            f"  {row.part:20s} n={row.records:<3d} ttft {row.ttft_s:6.3f} s ({row.ttft_source}), "
            f"tokens {row.tokens:7.1f}, service {row.service_s:6.2f} s"
        )
    for note in cal.notes:
        print(f"  note: {note}")
    return 0

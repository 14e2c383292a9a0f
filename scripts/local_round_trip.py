"""The figures behind docs/MEASUREMENTS.md's llama-server sections, on the real local servers.

* ``curve``: the batching curve of llama-server (per-stream and total decode tokens/s at 1, 2, 3 and 6
  concurrent streams, every stream decoding exactly ``--tokens`` tokens), notebook 08's code path;
* ``calibrate``: notebook 06's round trip on one server (``llama-server:6`` or ``llama-server:1``): paired
  sequential/parallel/bounded trials, the simulator profile fitted from their records, the same trials on
  the simulator serving it, and the predicted against the measured wall and speedup.

Needs the local extra and the llama-server binary (``make install-local``). Usage::

    .venv/bin/python scripts/local_round_trip.py curve --threads 1 --tokens 64
    .venv/bin/python scripts/local_round_trip.py calibrate --server llama-server:6 --trials 3 --out /tmp/rt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path


def curve(args: argparse.Namespace) -> None:
    from voorbeelden.experiments import engines

    P = {"backend_kind": "local", "threads": args.threads, "n_ctx": 2048, "slots": 6, "call_timeout_s": 300,
         "curve_reps": args.reps, "curve_streams": [1, 2, 3, 6], "curve_tokens": args.tokens}  # fmt: skip
    with engines.open_engine(engines.BATCHING, P) as srv:
        table = engines.curve_summary(asyncio.run(engines._curve(srv, P)))
    cols = ["streams", "reps", "stream_tokens_per_s", "total_tokens_per_s", "total_tokens_per_s_lo",
            "total_tokens_per_s_hi", "throughput_gain", "busy_slots_per_decode"]  # fmt: skip
    print(table[cols].round(3).to_string(index=False))


def calibrate(args: argparse.Namespace) -> None:
    from voorbeelden.experiments.calibration import calibration_experiment
    from voorbeelden.experiments.params import validate_params

    P = validate_params(
        "06_calibration", backend="local", local_servers=[args.server], profile="uniform-2s",
        sim_capacity=None, strategies=["sequential", "parallel", "bounded"], time_scale=1.0,
        predict_time_scale=0.25, seed=0, trials=args.trials, warmup=1, n_begrippen=2, k=3, temperature=0.0,
        sampling_seed=1, max_tokens=args.max_tokens, call_timeout_s=180.0, goal=0.15, out_dir=str(args.out),
    )  # fmt: skip
    exp = calibration_experiment(P)
    cols = ["strategy", "n", "wall_median_s", "predicted_wall_median_s", "wall_error", "measured_speedup",
            "ci_low", "ci_high", "n_pairs", "predicted_speedup", "error", "within_goal"]  # fmt: skip
    print(exp.table[cols].round(3).to_string(index=False))
    print("\n".join(exp.conclusion))
    fit = exp.calibration.batching_fit
    print("fit:", json.dumps(None if fit is None else fit.to_dict(), default=str))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("curve", help="llama-server's batching curve")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--tokens", type=int, default=64)
    c.add_argument("--reps", type=int, default=2)
    k = sub.add_parser("calibrate", help="notebook 06's round trip on one local server")
    k.add_argument("--server", default="llama-server:6")
    k.add_argument("--trials", type=int, default=3)
    k.add_argument("--max-tokens", type=int, default=96)
    k.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.monotonic()
    {"curve": curve, "calibrate": calibrate}[args.what](args)
    print(f"took {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

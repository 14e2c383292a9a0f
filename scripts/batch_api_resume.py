"""N terms (default 10,000) through the simulator's Batch API: SIGKILL while polling, rerun, count every term.

Usage: .venv/bin/python scripts/batch_api_resume.py [N] [FOLDER]   (docs/BATCH_API.md has the figures)
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from voorbeelden.batch.provider.cli import configure_sim_batches
from voorbeelden.sim import SimConfig, running_simulator

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
D = Path(sys.argv[2] if len(sys.argv) > 2 else "batch_api_resume")
D.mkdir(parents=True, exist_ok=True)


def env_without_openai():
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}


inp, out = D / "in.jsonl", D / "out.jsonl"
for p in (out, D / "out.jsonl.batches.json"):
    p.unlink(missing_ok=True)
inp.write_text(
    "".join(
        json.dumps({"begrip": f"term {i}", "definitie": f"definitie van term {i}"}) + "\n" for i in range(N)
    )
)
cmd = [
    sys.executable,
    "-m",
    "voorbeelden",
    "batch",
    str(inp),
    "--out",
    str(out),
    "--via",
    "openai-batch",
    "--no-progress",
    "--poll-interval",
    "0.5",
]
with running_simulator(SimConfig(time_scale=0.01), process=True) as sim:
    configure_sim_batches(sim.base_url, complete_s=3000.0)  # 30 s in progress at time_scale 0.01
    t0 = time.monotonic()
    p1 = subprocess.Popen(
        [*cmd, "--base-url", sim.base_url], env=env_without_openai(), stderr=subprocess.PIPE, text=True
    )
    state = Path(str(out) + ".batches.json")
    while True:
        if state.exists():
            e = json.loads(state.read_text())["entries"]
            if (
                len(e) == -(-N // 8333)
                and all(x["batch_id"] for x in e)
                and any(x["status"] == "in_progress" for x in e)
            ):
                break
        time.sleep(0.2)
    t_created = time.monotonic() - t0
    time.sleep(3)
    p1.send_signal(signal.SIGKILL)
    p1.wait()
    t_kill = time.monotonic() - t0
    before = json.loads(state.read_text())["entries"]
    rows_before = len(out.read_text().splitlines()) if out.exists() else 0
    t1 = time.monotonic()
    p2 = subprocess.run(
        [*cmd, "--base-url", sim.base_url, "--json"], env=env_without_openai(), capture_output=True, text=True
    )
    t_rerun = time.monotonic() - t1
    wall = time.monotonic() - t0
    summary = json.loads(p2.stdout)
    entries = json.loads(state.read_text())["entries"]
    sent = Counter(c for x in entries for c in x["custom_ids"])
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    keys = Counter(r["key"] for r in rows)
    print(
        json.dumps(
            {
                "terms": N,
                "rc_rerun": p2.returncode,
                "created_s": round(t_created, 1),
                "killed_at_s": round(t_kill, 1),
                "status_at_kill": [x["status"] for x in before],
                "rows_at_kill": rows_before,
                "rerun_s": round(t_rerun, 1),
                "wall_s": round(wall, 1),
                "files_uploaded_total": len({x["input_file_id"] for x in entries}),
                "batches_total": len(entries),
                "batches_created_in_rerun": summary["batches_created"],
                "lines_sent_in_rerun": summary["lines_sent"],
                "lines_per_batch": [len(x["custom_ids"]) for x in entries],
                "distinct_lines_sent": len(sent),
                "max_sends_per_line": max(sent.values()),
                "rows": len(rows),
                "distinct_keys": len(keys),
                "max_rows_per_key": max(keys.values()),
                "ok": sum(r["status"] == "ok" for r in rows),
                "parts_short": sum(len(r.get("shortfalls") or {}) for r in rows),
                "stderr_tail": p2.stderr[-600:],
            },
            indent=1,
        )
    )

"""Export -> every line through the simulator's /v1/chat/completions (as vllm run-batch would) -> import.

Usage: .venv/bin/python scripts/batch_api_roundtrip.py [N] [FOLDER]   (docs/BATCH_API.md has the figures)
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import openai

from voorbeelden.sim import SimConfig, running_simulator

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
D = Path(sys.argv[2] if len(sys.argv) > 2 else "batch_api_roundtrip")
D.mkdir(parents=True, exist_ok=True)


def env_without_openai():
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}


inp, out, req, res = D / "in.jsonl", D / "out.jsonl", D / "requests.jsonl", D / "results.jsonl"
for p in (out, req, res):
    p.unlink(missing_ok=True)
inp.write_text(
    "".join(json.dumps({"begrip": f"term {i}", "definitie": f"definitie {i}"}) + "\n" for i in range(N))
)
base = [sys.executable, "-m", "voorbeelden", "batch", str(inp), "--out", str(out)]
t = time.monotonic()
e = subprocess.run(
    [*base, "--export-requests", str(req), "--json"], env=env_without_openai(), capture_output=True, text=True
)
t_exp = time.monotonic() - t


async def answer(url):
    c = openai.AsyncOpenAI(base_url=url, api_key="sk-sim", max_retries=2)
    sem = asyncio.Semaphore(64)
    lines = [json.loads(x) for x in req.read_text().splitlines()]

    async def one(i, line):
        async with sem:
            body = await c.post("/chat/completions", cast_to=dict, body=line["body"])
        return {
            "id": f"vllm-{i}",
            "custom_id": line["custom_id"],
            "response": {"status_code": 200, "request_id": f"r{i}", "body": body},
            "error": None,
        }

    rows = await asyncio.gather(*(one(i, line) for i, line in enumerate(lines)))
    await c.close()
    res.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.001)) as sim:
    t = time.monotonic()
    asyncio.run(answer(sim.base_url))
    t_ans = time.monotonic() - t
t = time.monotonic()
i = subprocess.run(
    [*base, "--import-results", str(res), "--json"], env=env_without_openai(), capture_output=True, text=True
)
t_imp = time.monotonic() - t
rows = [json.loads(x) for x in out.read_text().splitlines()]
keys = Counter(r["key"] for r in rows)
again = subprocess.run(
    [*base, "--import-results", str(res), "--json"], env=env_without_openai(), capture_output=True, text=True
)
print(
    json.dumps(
        {
            "terms": N,
            "export_rc": e.returncode,
            "export": json.loads(e.stdout),
            "export_s": round(t_exp, 1),
            "request_lines": len(req.read_text().splitlines()),
            "answer_s": round(t_ans, 1),
            "import_rc": i.returncode,
            "import": json.loads(i.stdout),
            "import_s": round(t_imp, 1),
            "rows": len(rows),
            "distinct": len(keys),
            "max_per_key": max(keys.values()),
            "ok": sum(r["status"] == "ok" for r in rows),
            "reimport": json.loads(again.stdout),
        },
        indent=1,
    )
)

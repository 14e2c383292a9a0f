"""A reduced fault matrix in CI: no fault kind at any rate makes generate() raise or overrun its deadline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from voorbeelden.bench.faultmatrix import (
    FAULT_KINDS,
    REDUCED_RATES,
    MatrixSettings,
    predicted_delivery,
    run_matrix,
)

ROOT = Path(__file__).resolve().parents[2]


def test_predicted_delivery() -> None:
    assert predicted_delivery(0.0, 2) == 1.0
    assert predicted_delivery(0.5, 2) == 0.875
    assert predicted_delivery(0.5, 2, "malformed") == 0.5  # not retried by design
    assert predicted_delivery(0.9, 2, "truncated") == 1.0  # kept as a partial part


def test_reduced_matrix_has_no_crashes_and_no_late_generations() -> None:
    cells = run_matrix(FAULT_KINDS, REDUCED_RATES, settings=MatrixSettings(n=2))
    assert len(cells) == len(FAULT_KINDS) * len(REDUCED_RATES) * 2
    for c in cells:
        where = f"{c.fault_kind}/{c.fault_rate}/{c.strategy}: {c.to_dict()}"
        assert c.generations == 2 and c.parts_total == 12, where
        assert c.crashes == 0, where
        assert c.past_deadline == 0, where
        if c.fault_rate == 0.0:
            assert c.delivered == 1.0, where
    by = {(c.fault_kind, c.fault_rate, c.strategy): c for c in cells}
    for kind in ("500", "503", "429", "drop"):  # the faults really fired, and were retried
        assert by[(kind, 0.5, "parallel")].retries > 0, kind
        assert by[(kind, 0.5, "parallel")].delivered >= 0.5, kind
    assert by[("malformed", 0.5, "parallel")].delivered < 1.0


def test_cli_reduced_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voorbeelden", "bench", "faults", "--reduced", "--json", "-n", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["cells"]) == len(FAULT_KINDS) * len(REDUCED_RATES) * 2
    assert sum(c["crashes"] + c["past_deadline"] for c in data["cells"]) == 0


def test_generate_returns_by_its_deadline_counted_from_the_call() -> None:
    # Every call hangs: generate() must come back at the deadline as the caller measures it, including the
    # time to build its own client (~50 ms for the SDK's SSL context; the clock used to start after that).
    import asyncio
    import time

    from voorbeelden.bench.faultmatrix import _config
    from voorbeelden.generator import generate
    from voorbeelden.sim import SimConfig, running_simulator

    cfg = _config(MatrixSettings(deadline_s=0.3))
    sim_cfg = SimConfig(profile="uniform-2s", time_scale=0.01, fault_rate=1.0, faults=("hang",))
    with running_simulator(sim_cfg) as sim:

        async def main() -> list[float]:
            walls = []
            for strategy in ("sequential", "parallel") * 3:
                t0 = time.monotonic()
                gen = await generate(
                    {"begrip": "besluit"}, strategy, base_url=sim.base_url, api_key="x", config=cfg
                )
                walls.append(time.monotonic() - t0)
                assert gen.n_ok == 0
            return walls

        walls = asyncio.run(main())
    assert max(walls) <= 0.3 + 0.05, walls

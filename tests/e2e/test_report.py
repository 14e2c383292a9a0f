"""`voorbeelden report` end to end with the CI parameters: artifacts, headline figures, secrets, bad parameters."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from _fake_keys import fake_key
from conftest import run_report

from voorbeelden.sim import SimConfig, running_simulator

ROOT = Path(__file__).resolve().parents[2]
CI_PARAMS = ROOT / "notebooks" / "params" / "ci.yaml"
SECRET = fake_key("SECRET")


def _report(out: Path, params: Path = CI_PARAMS, **env: str) -> subprocess.CompletedProcess[str]:
    return run_report(out, params, env=env)


@pytest.mark.slow
def test_report_with_ci_params_writes_every_artifact(tmp_path: Path) -> None:
    done = _report(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "latest").resolve()
    assert report.parent == tmp_path.resolve() and re.fullmatch(r"\d{8}-\d{6}(-\d+)?", report.name)
    stems = [name.removesuffix(".ipynb") for name in yaml.safe_load(CI_PARAMS.read_text())["notebooks"]]
    assert {
        "01_sequential_vs_parallel",
        "02_failure_injection",
        "03_report",
        "04_scale_and_rate_limits",
        "05_strategies",
        "06_calibration",
        "07_under_load",
    } <= set(stems)
    for stem in stems:
        assert (report / f"{stem}.ipynb").is_file() and (report / f"{stem}.html").stat().st_size > 10_000
    for name in ("results.jsonl", "summary.json", "index.html"):
        assert (report / name).stat().st_size > 0

    pngs = sorted(report.glob("*.png"))
    names = {p.name for p in pngs}
    assert {"01_speedup_vs_bound.png", "01_latency_by_part.png", "02_completeness_vs_fault_rate.png"} <= names
    assert {"01_gantt_uniform-2s.png", "01_gantt_definitie-app.png"} <= names
    index = (report / "index.html").read_text()
    for png in pngs:
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0.01, png.name
        assert f"src='{png.name}'" in index, png.name
    first_screen = index[: index.index("<h2>")]
    assert "SIMULATED" in first_screen and "time_scale 0.01" in first_screen
    assert f"All {len(stems)} notebooks ran" in first_screen
    # the verdict in words (status, speedup, strategies) on the first screen, then the headline charts
    s = json.loads((report / "summary.json").read_text())
    assert len(s["verdict"]) == 3 and all(line in first_screen for line in s["verdict"]), s["verdict"]
    assert s["verdict"][1].startswith("Parallel vs sequential: ") and "pairs complete" in s["verdict"][1]
    charts = index[index.index("id='charts'") : index.index("id='speedup'")]
    assert "src='01_speedup_vs_bound.png'" in charts and "src='05_pareto.png'" in charts
    # notebook 07's side file, through the registry
    assert "src='07_goodput.png'" in charts and "id='load'" in index
    assert {k["strategy"] for k in s["load"]["knees"]} == {"sequential", "parallel"}

    # A clean run is quiet: no parser or kernel warnings in the terminal, no stderr blocks in the notebooks.
    for noise in ("Unable to parse", "Passed unknown parameter", "without encryption", "Traceback"):
        assert noise not in done.stderr, done.stderr[-3000:]
    for executed in report.glob("0*.ipynb"):
        streams = [
            o
            for c in json.loads(executed.read_text())["cells"]
            for o in c.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stderr"
        ]
        assert not [o for o in streams if "simulator:" in "".join(o["text"])], executed.name

    s = json.loads((report / "summary.json").read_text())
    assert s["ok"] is True
    assert {
        "speedup",
        "overhead_median_ms",
        "faults",
        "backend",
        "params",
        "environment",
        "notebooks",
    } <= set(s)
    assert s["backend"]["kind"] == "simulated" and s["backend"]["time_scale"] == 0.01
    assert set(s["speedup"]) == {"uniform-2s", "definitie-app"}
    for sp in s["speedup"].values():
        assert sp["ci_low"] <= sp["median"] <= sp["ci_high"]
        assert 1.0 < sp["median"] < 6.5 and 1.0 < sp["expected_bound"] <= 6.0
    field = s["speedup"]["definitie-app"]
    assert 1.4 < field["median"] < 2.0 and 1.5 < field["expected_bound"] < 1.9  # the slowest part bounds it
    assert s["speedup"]["uniform-2s"]["expected_bound"] > 5.5
    assert {(f["fault_kind"], f["fault_rate"]) for f in s["faults"]} == {
        ("500", 0.0),
        ("500", 0.3),
        ("hang", 0.0),
        ("hang", 0.3),
    }
    assert all(0.0 <= f["parts_delivered"] <= 1.0 for f in s["faults"])
    assert s["environment"]["packages"]["papermill"]
    rows = [json.loads(line) for line in (report / "results.jsonl").read_text().splitlines()]
    assert {r["notebook"] for r in rows} == {
        "01_sequential_vs_parallel",
        "02_failure_injection",
        "05_strategies",
        "06_calibration",
        "08_local_engines",  # the engines' paired trials (the simulator's stand-ins here)
    }
    # one call per part, except notebook 05's combined strategy, which asks for all six in one call
    assert all(len(r["records"]) >= 6 for r in rows if r.get("strategy") != "combined")
    assert all(len(r["records"]) >= 1 for r in rows)


@pytest.mark.slow
def test_the_api_key_is_used_but_never_written(tmp_path: Path) -> None:
    with running_simulator(SimConfig(profile="uniform-2s", time_scale=0.005)) as sim:
        done = _report(tmp_path, OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=sim.base_url)
        calls = sim.counters()
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    report = (tmp_path / "latest").resolve()
    s = json.loads((report / "summary.json").read_text())
    assert s["backend"]["kind"] == "real"  # backend "auto" took the environment's endpoint and key
    assert s["backend"]["host"] == sim.base_url.split("//")[1].removesuffix("/v1")
    assert calls  # the kernels' calls reached the test's simulator
    assert "REAL backend" in (report / "index.html").read_text()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 8
    secret = SECRET.encode()
    leaked = [str(p) for p in files if secret in p.read_bytes()]
    assert not leaked, f"the API key was written to {leaked}"


@pytest.mark.slow
def test_bad_parameters_injected_by_papermill_fail_in_the_validation_cell(tmp_path: Path) -> None:
    """`voorbeelden report` refuses bad values before any kernel (tests/test_report_params.py); a notebook run
    by papermill directly, or from JupyterLab, still stops in the cell right after the parameters."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = tmp_path / "01.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        pm.execute_notebook(
            str(ROOT / "notebooks" / "01_sequential_vs_parallel.ipynb"),
            str(out),
            parameters={"trials": -1, "profiles": ["uniform-2s", "gpt-9"], "out_dir": str(tmp_path)},
            kernel_name="python3",
            cwd=str(ROOT / "notebooks"),
            progress_bar=False,
            execution_timeout=120,
        )
    assert info.value.ename == "ValueError"
    assert "trials: Input should be greater than or equal to 1" in info.value.evalue
    assert "unknown profile 'gpt-9'" in info.value.evalue
    executed = json.loads(out.read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    failing = [
        i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    assert failing == [2]  # the cell right after the parameters and the injected parameters cell

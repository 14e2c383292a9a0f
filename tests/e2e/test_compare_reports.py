"""``voorbeelden compare`` on real (tiny) reports: two ``voorbeelden report`` runs on the embedded simulator, one
of them with a client that waits 50 ms before every call (the documented test knob
``VOORBEELDEN_TEST_CALL_DELAY_MS``), compared through the command line as a CI job would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_report, run_voorbeelden

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PARAMS = """\
execution_timeout: 120
common: {backend: sim, time_scale: 0.02, seed: 0}
notebooks:
  01_sequential_vs_parallel.ipynb:
    profiles: [uniform-2s]
    trials: 1
    warmup: 0
    n_begrippen: 4
    n_boot: 100
    mc_samples: 100
"""


def _report(tmp: Path, name: str, extra_env: dict[str, str]) -> Path:
    params = tmp / "params.yaml"
    params.write_text(PARAMS)
    out = tmp / name
    proc = run_report(out, params, env=extra_env, timeout=500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (out / "latest").resolve()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("compare")
    return _report(tmp, "a", {}), _report(tmp, "b", {"VOORBEELDEN_TEST_CALL_DELAY_MS": "50"})


def test_a_slower_client_is_a_regression_exit_1_with_json_and_html(reports, tmp_path):
    base, slow = reports
    page = tmp_path / "compare.html"
    proc = run_voorbeelden(["compare", str(base), str(slow), "--json", "--html", str(page)])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    verdicts = {f["name"]: f["verdict"] for f in data["figures"]}
    # 50 ms x 6 calls on six 40 ms calls (time_scale 0.02): the sequential wall more than doubles; the tiny
    # profile keeps the CI clear of the threshold even with 4 pairs on a loaded machine
    assert verdicts["wall p50 01 uniform-2s/sequential"] == "regression"
    assert verdicts["completeness 01"] == "no change detected"
    html = page.read_text()
    assert "wall p50 01 uniform-2s/sequential" in html and html.count("01_speedup_vs_bound.png") >= 1


def test_the_same_report_is_no_change_exit_0(reports):
    base, _ = reports
    proc = run_voorbeelden(["compare", str(base), str(base)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression (exit 0)" in proc.stdout


def test_a_report_with_other_parameters_is_exit_2_unless_forced(reports, tmp_path):
    base, _ = reports
    other = tmp_path / "other"
    shutil.copytree(base, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["params"]["01_sequential_vs_parallel.ipynb"]["n_begrippen"] = 5
    (other / "summary.json").write_text(json.dumps(summary))
    proc = run_voorbeelden(["compare", str(base), str(other)])
    assert proc.returncode == 2 and "n_begrippen: 4 in base, 5 in new" in proc.stderr
    forced = run_voorbeelden(["compare", str(base), str(other), "--force"])
    assert forced.returncode == 0 and "NOT COMPARABLE, compared anyway" in forced.stdout

"""The report's parameters are checked before any kernel starts, against one model per notebook, and the
notebooks' parameters cells are what papermill itself reads."""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml
from conftest import env_without_openai

from voorbeelden.experiments.params import MODELS, declared_defaults, model_for, problems_of
from voorbeelden.report.runner import load_params, plan_parameters

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAM_FILES = sorted((ROOT / "notebooks" / "params").glob("*.yaml"))


def _assigned_names(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return [
        t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_of_every_notebook(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="papermill"):
        inspected = papermill.inspect_notebook(str(path))
    assert list(inspected) == _assigned_names(path)
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()], caplog.text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_has_a_model_whose_fields_are_its_parameters(path: Path) -> None:
    model = model_for(path.name)
    assert model is not None, f"{path.name} has no parameter model in voorbeelden.experiments.params.MODELS"
    defaults = declared_defaults(path)
    assert set(defaults) == set(model.model_fields)
    assert problems_of(model, defaults) == [], "the notebook's own defaults must pass its model"


def test_every_model_belongs_to_a_notebook() -> None:
    assert {f"{stem}.ipynb" for stem in MODELS} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.stem)
def test_every_shipped_parameter_file_passes_the_up_front_check(path: Path) -> None:
    config = load_params(path)
    names = list(config["notebooks"])
    if path.stem == "local" and importlib.util.find_spec("llama_cpp") is None:
        # Without the optional extra the local report must refuse up front, saying how to install it.
        with pytest.raises(ValueError, match=re.escape("pip install -e '.[local]'")):
            plan_parameters(config, names, ROOT / "notebooks", path)
        return
    plan = plan_parameters(config, names, ROOT / "notebooks", path)
    assert list(plan) == names


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    config = yaml.safe_load((ROOT / "notebooks" / "params" / "ci.yaml").read_text(encoding="utf-8"))
    config["common"]["tme_scale"] = 0.1
    config["notebooks"]["01_sequential_vs_parallel.ipynb"].update(triials=2, n_begrippen=1000)
    config["notebooks"]["02_failure_injection.ipynb"]["trials"] = "three"
    config["notebooks"]["05_strategies.ipynb"]["strategies"] = ["parallel", "teleport"]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_up_front_check_names_file_notebook_and_key(tmp_path: Path) -> None:
    path = _bad_file(tmp_path)
    config = load_params(path)
    with pytest.raises(ValueError) as info:
        plan_parameters(config, list(config["notebooks"]), ROOT / "notebooks", path)
    text = str(info.value)
    assert str(path) in text and "nothing was run" in text
    for fragment in (
        "01_sequential_vs_parallel.ipynb: triials: unknown parameter",
        "01_sequential_vs_parallel.ipynb: n_begrippen: asks for 1000 begrippen",
        "02_failure_injection.ipynb: trials: must be a number, got 'three'",
        "05_strategies.ipynb: strategies: unknown strategy 'teleport'",
        "common: tme_scale: no notebook in the run declares this parameter",
    ):
        assert fragment in text


def test_report_refuses_bad_parameters_without_starting_a_kernel(tmp_path: Path) -> None:
    path = _bad_file(tmp_path)
    out = tmp_path / "reports"
    env = env_without_openai()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "voorbeelden",
            "report",
            "--params",
            str(path),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "triials" in done.stderr
    assert not out.exists() or not any(out.iterdir()), "no report folder for a run that never started"


def test_invalid_yaml_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("common: {backend: sim\nnotebooks: [", encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_params(path)


def test_nothing_in_the_product_reads_outside_the_repository() -> None:
    pattern = re.compile(r"\.\./shared|parents\[\d\]\s*/\s*[\"']shared|\.parent\s*/\s*[\"']shared")
    offenders = []
    for folder in ("voorbeelden", "notebooks", "tests"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".ipynb", ".yaml", ".json"} and path != Path(__file__):
                if pattern.search(path.read_text(encoding="utf-8", errors="replace")):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []

"""What a report will run: the parameter file read and checked, and each notebook's parameters planned.

Parameters come from a YAML file::

    execution_timeout: 300        # seconds per cell
    common: {backend: auto, time_scale: 0.02, seed: 0}   # given to every notebook that declares the name
    notebooks:                    # run in this order; per-notebook values override common ones
      01_sequential_vs_parallel.ipynb: {trials: 3}

``out_dir`` is always the report folder. The API key is never a parameter (papermill writes parameters into
the output notebook): notebooks read ``OPENAI_API_KEY`` from the environment. Two optional blocks,
``local_llm:`` (start the real local model server once for the run) and ``generation:`` (run-wide request
overrides such as temperature 0 and a seed), are described in :mod:`voorbeelden.report.run_env`.

Everything here runs before any kernel starts, so a bad file stops the run in about a second (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from voorbeelden.begrippen import PROJECT_ROOT

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DEFAULT_PARAMS = NOTEBOOKS_DIR / "params" / "default.yaml"
DEFAULT_EXECUTION_TIMEOUT_S = 600
_TOP_LEVEL_KEYS = {"execution_timeout", "common", "notebooks", "description", "local_llm", "generation"}


def load_params(path: str | Path | None) -> dict[str, Any]:
    """Read and check the YAML parameter file's shape (values are checked by each notebook)."""
    path = Path(path) if path is not None else DEFAULT_PARAMS
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    from voorbeelden.experiments.params import check_report_file

    check_report_file(data, path)  # an empty file, an execution_timeout that is no number of seconds
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with common/notebooks/execution_timeout")
    unknown = set(data) - _TOP_LEVEL_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; use {sorted(_TOP_LEVEL_KEYS)}")
    for key in ("common", "notebooks"):
        if not isinstance(data.get(key) or {}, dict):
            raise ValueError(f"{path}: {key!r} must be a mapping")
    for name, values in (data.get("notebooks") or {}).items():
        if not isinstance(values or {}, dict):
            raise ValueError(f"{path}: parameters of {name} must be a mapping")
    return data


def plan_parameters(
    config: Mapping[str, Any], names: Sequence[str], nb_dir: Path, params_path: Path
) -> dict[str, dict[str, Any]]:
    """The parameters each notebook will get, checked before any kernel starts.

    ``common`` values go to every notebook that declares the name (papermill's own inspection of the
    ``parameters`` cell says which); per-notebook values must be declared by that notebook. Every notebook's
    full set (its defaults + these) is checked against its model in :mod:`voorbeelden.experiments.params`, so a typo,
    a wrong type or a count the data set cannot meet stops the run in about a second, with the file, the
    notebook and the key named. Raises one ValueError that lists every problem.
    """
    from voorbeelden.experiments.params import declared_defaults, model_for, problems_of

    common = dict(config.get("common") or {})
    plan: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    used_common: set[str] = set()
    for name in names:
        defaults = declared_defaults(nb_dir / name)
        own = dict((config.get("notebooks") or {}).get(name) or {})
        for key in own:
            if key not in defaults:
                problems.append(
                    f"{name}: {key}: unknown parameter; the notebook declares {', '.join(sorted(defaults))}"
                )
        parameters = {k: v for k, v in common.items() if k in defaults}
        used_common |= set(parameters)
        parameters.update((k, v) for k, v in own.items() if k in defaults)
        model = model_for(name)
        if model is not None:
            problems += [
                f"{name}: {p}" for p in problems_of(model, {**defaults, **parameters, "out_dir": ""})
            ]
        plan[name] = parameters
    for key in sorted(set(common) - used_common):
        problems.append(f"common: {key}: no notebook in the run declares this parameter")
    from voorbeelden.report.run_env import check_blocks

    problems += check_blocks(config)
    if problems:
        raise ValueError(
            f"{params_path}: invalid parameters; nothing was run:\n  - " + "\n  - ".join(problems)
        )
    return plan


def notebook_names(config: Mapping[str, Any], nb_dir: Path, params_path: Path) -> list[str]:
    """The notebooks the parameters name (default: every numbered one), each checked to exist."""
    if not nb_dir.is_dir():
        raise FileNotFoundError(
            f"notebooks folder {nb_dir} not found (run from a source checkout or pass it)"
        )
    names = list(config.get("notebooks") or {}) or sorted(p.name for p in nb_dir.glob("[0-9]*.ipynb"))
    missing = [n for n in names if not (nb_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"notebook(s) {missing} named in {params_path} are not in {nb_dir}")
    return names

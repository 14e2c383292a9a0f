"""The dependency list lives in pyproject.toml; environment.yml must mirror it line for line."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _normalise(spec: str) -> tuple[str, str]:
    spec = spec.replace(" ", "")
    match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)(.*)$", spec)
    assert match, f"unparseable requirement {spec!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, ",".join(sorted(match.group(2).split(",")))


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return dict(_normalise(s) for s in specs)


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    specs = [s for s in pip_section if not s.startswith("-")]
    return dict(_normalise(s) for s in specs)


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    pyproject = _pyproject_requirements()
    environment = _environment_requirements()
    missing = sorted(set(pyproject) - set(environment))
    extra = sorted(set(environment) - set(pyproject))
    differing = sorted(n for n in set(pyproject) & set(environment) if pyproject[n] != environment[n])
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differing, "ranges differ: " + ", ".join(
        f"{n}: pyproject {pyproject[n]} vs environment {environment[n]}" for n in differing
    )


def test_the_user_named_packages_are_dependencies() -> None:
    names = set(_pyproject_requirements())
    for wanted in (
        "openai",
        "matplotlib",
        "papermill",
        "pytest",
        "nbval",
        "jupyterlab",
        "ipykernel",
        "pandas",
    ):
        assert wanted in names, wanted
    # nest-asyncio is not among them on purpose: voorbeelden.syncrun runs sync calls inside a running kernel
    # on a private loop in a worker thread, without patching the kernel's loop (see its docstring).
    assert not {"nest-asyncio", "nest-asyncio2"} & names, "declared but never imported"


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert {"make report", "make test", "make test-local"} <= set(commands)
    assert commands.index("make report") < commands.index("make test")
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make report" in readme
    assert readme.index("make report") < 2000, "the two commands must be the first thing a newcomer sees"


# Runtime dependencies that voorbeelden/ needs without importing them, and why.
NEEDED_WITHOUT_IMPORT = {
    "ipykernel": "the kernel papermill starts for every notebook of the report",
    "jupyterlab": "the notebook UI for notebooks/ (one of the packages the user named)",
}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files of voorbeelden/ importing it (also inside functions and TYPE_CHECKING)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "voorbeelden").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "voorbeelden" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _declared(*groups: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) if "runtime" in groups else []
    for group in groups:
        specs.extend(project.get("optional-dependencies", {}).get(group, []))
    return {re.sub(r"\[.*\]", "", _normalise(s)[0]) for s in specs}


def test_declared_runtime_dependencies_are_the_ones_voorbeelden_imports() -> None:
    """Each runtime dependency maps to an import in voorbeelden/ (or a stated reason), and each third-party
    import in voorbeelden/ to a declaration (runtime, or the local extra for the real model)."""
    dists = importlib.metadata.packages_distributions()
    imports = _third_party_imports()
    assert {"openai", "httpx2", "aiohttp"} <= set(imports), sorted(imports)  # the scan sees imports at all
    providers = {m: {_normalise(d)[0] for d in dists.get(m, [])} for m in imports}
    not_installed = sorted(m for m, ds in providers.items() if not ds)
    assert not not_installed, f"imported by voorbeelden/ but not installed: {not_installed}"
    allowed = _declared("runtime", "local")
    undeclared = {m: sorted(imports[m]) for m, ds in providers.items() if not ds & allowed}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    imported = set().union(*providers.values())
    runtime = _declared("runtime")
    unused = sorted(runtime - imported - set(NEEDED_WITHOUT_IMPORT))
    assert not unused, f"declared runtime dependencies nothing in voorbeelden/ imports: {unused}"
    stale = sorted(set(NEEDED_WITHOUT_IMPORT) - runtime)
    assert not stale, f"NEEDED_WITHOUT_IMPORT names undeclared packages: {stale}"

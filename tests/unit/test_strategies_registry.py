"""The strategy registry: every entry names a real runner, says how many calls a generation plans and how many
it has in flight, and can be listed without importing openai; the package has no import cycle."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import voorbeelden.strategies as strategies_package
from voorbeelden.config import GeneratorConfig
from voorbeelden.strategies import REGISTRY, get_strategy, info, names
from voorbeelden.strategies.registry import DEFAULT_SPLIT_PARTS, check_options
from voorbeelden.types import ALL_PARTS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "voorbeelden" / "strategies"
COUNTS = {p: GeneratorConfig().settings(p).count for p in ALL_PARTS}


def test_names_are_the_seven_strategies() -> None:
    assert names() == tuple(sorted(REGISTRY))
    assert set(names()) == {"sequential", "parallel", "bounded", "streaming", "split", "combined", "hedged"}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_entry_loads_a_strategy_coroutine_of_its_name(name: str) -> None:
    runner = get_strategy(name)
    assert inspect.iscoroutinefunction(runner)
    assert runner.__name__ == name
    assert list(inspect.signature(runner).parameters) == ["run", "parts"]
    assert get_strategy(name) is runner  # the same function each time: the module is imported once


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'teleport'; choose one of bounded, combined"):
        get_strategy("teleport")
    with pytest.raises(ValueError, match="unknown strategy 'teleport'"):
        info("teleport")


def test_one_lookup_of_a_runner() -> None:
    """get_strategy is the one way from a name to a runner: no name -> runner mapping, no load() beside it."""
    assert not hasattr(strategies_package, "STRATEGIES")
    assert not hasattr(info("parallel"), "load")


def test_calls_in_flight_per_strategy() -> None:
    """What the batch runner's admission gate counts per term (one, k, or one per part)."""
    assert info("sequential").in_flight(k=3) == 1
    assert info("bounded").in_flight(k=2) == 2
    assert info("bounded").in_flight(k=0) == 1
    for name in ("parallel", "streaming", "split", "combined", "hedged"):
        assert info(name).in_flight(k=2) == len(ALL_PARTS)


def test_planned_calls_per_generation() -> None:
    assert info("combined").call_plan(COUNTS) == {"combined": 1}
    for name in ("sequential", "parallel", "bounded", "streaming", "hedged"):
        assert info(name).call_plan(COUNTS) == {p.value: 1 for p in ALL_PARTS}
    split = info("split").call_plan(COUNTS)
    assert split == {p.value: COUNTS[p] if p in DEFAULT_SPLIT_PARTS else 1 for p in ALL_PARTS}
    assert info("split").calls_per_generation(COUNTS) == 4 + sum(COUNTS[p] for p in DEFAULT_SPLIT_PARTS)


def test_only_streaming_streams() -> None:
    assert [s.name for s in REGISTRY.values() if s.streams] == ["streaming"]


def test_listing_names_imports_no_openai() -> None:
    code = (
        "import sys\n"
        "from voorbeelden.strategies import names, info, get_strategy\n"
        "assert len(names()) == 7 and info('split').calls_per_generation\n"
        "heavy = sorted(m for m in ('openai', 'numpy', 'pandas', 'pydantic') if m in sys.modules)\n"
        "print(heavy)\n"
        "get_strategy('parallel')\n"
        "print('openai' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["[]", "True"]  # nothing heavy until a runner is loaded


def _imports(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports, anywhere in the file (imports for type checkers only,
    under ``if TYPE_CHECKING:``, do not run and are left out)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m.rsplit(".", 1)[-1] for m in found if m.startswith("voorbeelden.strategies.")}


def test_no_import_cycle_in_the_package() -> None:
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py")}
    assert graph["registry"] == set()  # the light module imports no strategy (runners by path only)
    assert graph["context"] == set()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for dep in graph.get(module, set()):
            visit(dep, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
    assert not (ROOT / "voorbeelden" / "strategies.py").exists()
    assert not (ROOT / "voorbeelden" / "strategies_extra.py").exists()


def test_no_module_level_latency_state() -> None:
    """The hedge history lives on the run (LatencyHistory passed in), not in a module global."""
    import voorbeelden.strategies.hedged as hedged

    for name, value in vars(hedged).items():
        assert not (isinstance(value, dict | list) and not name.startswith("__")), name


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"hedge_delay_s": float("nan")}, "hedge_delay_s"),
        ({"hedge_delay_s": -1.0}, "hedge_delay_s"),
        ({"hedge_percentile": 101}, "hedge_percentile"),
        ({"hedge_min_samples": 2.5}, "hedge_min_samples"),
        ({"split_max_calls": float("inf")}, "split_max_calls"),
        ({"combined_max_tokens": True}, "combined_max_tokens"),
    ],
)
def test_numeric_strategy_options_must_be_finite_and_in_range(options: dict[str, object], name: str) -> None:
    from voorbeelden.generator import generate_sync

    with pytest.raises(ValueError, match=f"strategy option {name} must be"):
        check_options(options)
    with pytest.raises(ValueError, match=name):  # refused by generate() before any call (no server here)
        generate_sync({"begrip": "besluit"}, "hedged", options=options, base_url="http://127.0.0.1:9/v1")


def test_good_and_foreign_options_pass() -> None:
    check_options({"hedge_delay_s": 0.5, "hedge_percentile": 95, "split_max_calls": 9, "anything": "else"})

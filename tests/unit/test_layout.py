"""The README's layout table names, for each step of the flow, the one file that holds it: those files exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("CLI", "command", "experiment", "or batch", "generator", "strategy", "caller", "client", "transport")


def _flow_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout") :]
    rows = re.findall(r"^\| ([^|]+?) \| `([^`]+)`", section, flags=re.M)
    return {step.strip(): path for step, path in rows}


def test_every_step_of_the_flow_is_named_once_with_an_existing_file() -> None:
    table = _flow_table()
    assert list(table) == list(STEPS)
    missing = [path for path in table.values() if not (ROOT / path).is_file()]
    assert not missing, f"the README's layout names files that do not exist: {missing}"


def test_every_folder_the_layout_block_names_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Layout") :].split("```")[1]
    folders = re.findall(r"^\s*([a-z_]+/)\s", block, flags=re.M)
    assert len(folders) >= 10
    package = ROOT / "voorbeelden"
    places = (package, ROOT, ROOT / "tests")
    missing = [f for f in folders if not any((place / f).is_dir() for place in places)]
    assert not missing, f"the README's layout names folders that do not exist: {missing}"


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "voorbeelden").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert not long, f"modules over 500 lines (split them by job): {long}"

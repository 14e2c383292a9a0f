"""The report's parameter file as a whole: an empty file is refused, and ``execution_timeout`` must be a finite
number of seconds in range, each error naming the file and the key. On 487172d -1, 0 and 0.001 were accepted,
NaN or text failed deep in the runner without the file or the key, and an empty file ran on defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from voorbeelden.report.plan import load_params


@pytest.mark.parametrize("value", ["-1", "0", "0.001", ".nan", ".inf", "abc", "true", "[300]"])
def test_an_execution_timeout_that_is_no_number_of_seconds_is_refused_naming_file_and_key(
    tmp_path: Path, value: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"execution_timeout: {value}\nnotebooks: {{}}\n")
    with pytest.raises(ValueError, match=rf"{path}: execution_timeout must be a number of seconds"):
        load_params(path)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "{}\n"])
def test_an_empty_parameter_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"{path} is empty"):
        load_params(path)


def test_a_sound_timeout_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("execution_timeout: 120\nnotebooks: {}\n")
    assert load_params(path)["execution_timeout"] == 120

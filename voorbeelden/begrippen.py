"""The begrippen every benchmark, notebook and test runs over: the one loader of the package's data set.

The set ships inside the package (``voorbeelden/data/begrippen.json``), so a fresh clone or a plain
``pip install`` has it; nothing is read from outside the repository. It holds Dutch terms with their definition
and context (organisatorisch / juridisch / wettelijk; statutory definitions cite their article in ``bron``) and
``bad_inputs``: requests that must be refused before any model call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from voorbeelden.types import Request

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BEGRIPPEN_FILE = Path(__file__).resolve().parent / "data" / "begrippen.json"


@cache
def _read(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {"begrippen": data}


def count_begrippen(path: str | Path | None = None) -> int:
    """How many begrippen the data set holds (what ``n_begrippen`` is checked against)."""
    return len(_read(Path(path) if path is not None else BEGRIPPEN_FILE)["begrippen"])


def load_begrippen(n: int | None = None, path: str | Path | None = None) -> list[Request]:
    """The first ``n`` begrippen (all when ``n`` is None) as validated :class:`Request` objects.

    ``path`` overrides the source; the file holds ``{"begrippen": [{begrip, definitie, context}, ...]}``.
    Asking for more begrippen than the file has is an error, not a silent shortfall.
    """
    source = Path(path) if path is not None else BEGRIPPEN_FILE
    requests = [Request.coerce(item) for item in _read(source)["begrippen"]]
    if n is None:
        return requests
    if n < 1 or n > len(requests):
        raise ValueError(
            f"asked for {n} begrippen; the data set holds {len(requests)} (use 1..{len(requests)})"
        )
    return requests[:n]


def distinct_requests(n: int) -> Iterator[Request]:
    """``n`` distinct requests cycling over the data set, lazily (a 100,000-term run never holds its input in
    memory); a running number after the begrip keeps the keys, and so the cache and the simulator's draws,
    distinct. For scale and rate-limit runs that need more terms than the set holds."""
    base = [r.to_dict() for r in load_begrippen()]
    for i in range(n):
        item = base[i % len(base)]
        yield Request.coerce({**item, "begrip": f"{item['begrip']} {i}"})


def load_bad_inputs() -> list[dict[str, Any]]:
    """Requests that validation must refuse, each as request fields plus ``case`` (its name).

    ``definitie_repeat: [text, times]`` in the file builds an over-long definitie without storing it.
    """
    cases = []
    for case in _read(BEGRIPPEN_FILE)["bad_inputs"]:
        fields = {k: v for k, v in case.items() if k != "definitie_repeat"}
        if "definitie_repeat" in case:
            text, times = case["definitie_repeat"]
            fields["definitie"] = text * times
        cases.append(fields)
    return cases

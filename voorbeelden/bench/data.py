"""The begrippen a benchmark runs over.

The project's shared set (``../shared/data/begrippen.json`` beside the project root, 20 terms) is used when
present; otherwise a built-in set of five terms shipped in the package, so a clean install still benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

from voorbeelden.types import Request

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_BEGRIPPEN = PROJECT_ROOT.parent / "shared" / "data" / "begrippen.json"
BUILTIN_BEGRIPPEN = Path(__file__).resolve().parents[1] / "data" / "begrippen.json"


def begrippen_source() -> Path:
    """The file :func:`load_begrippen` reads: the shared set when present, else the built-in one."""
    return SHARED_BEGRIPPEN if SHARED_BEGRIPPEN.is_file() else BUILTIN_BEGRIPPEN


def load_begrippen(n: int | None = None, path: str | Path | None = None) -> list[Request]:
    """The first ``n`` begrippen (all when ``n`` is None) as validated :class:`Request` objects.

    ``path`` overrides the source; the file holds ``{"begrippen": [{begrip, definitie, context}, ...]}``.
    Asking for more begrippen than the file has is an error, not a silent shortfall.
    """
    source = Path(path) if path is not None else begrippen_source()
    data = json.loads(source.read_text(encoding="utf-8"))
    items = data["begrippen"] if isinstance(data, dict) else data
    requests = [Request.coerce(item) for item in items]
    if n is None:
        return requests
    if n < 1 or n > len(requests):
        raise ValueError(f"asked for {n} begrippen; {source} holds {len(requests)} (use 1..{len(requests)})")
    return requests[:n]

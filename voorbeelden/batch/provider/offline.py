"""``--export-requests FILE`` and ``--import-results FILE``: the Batch API's line formats without the API.

For an engine that reads the same JSONL offline (``vllm run-batch -i FILE -o RESULTS --model M`` on a GPU
cluster, or a provider's web console): export writes the request lines of every term not yet in ``--out``,
exactly as :mod:`voorbeelden.batch.provider.run` would upload them; import reads the engine's output lines
and writes each term whose six lines it holds to ``--out``, through the same parser and result line as the
online and Batch API paths. A term with lines missing from the results is not written (so a new export
sends it again) and is counted as ``missing``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voorbeelden.batch.inputs import BadLine, Item, RequestSource, iter_items
from voorbeelden.batch.output import RERUN_STATUSES, OutputLog, read_results
from voorbeelden.batch.provider.collect import read_result_rows
from voorbeelden.batch.provider.counts import TermCounts
from voorbeelden.batch.provider.lines import (
    LineResult,
    assemble,
    check_strategy,
    custom_id,
    dumps,
    read_output_line,
    request_line,
    split_custom_id,
)
from voorbeelden.batch.records import compact_result
from voorbeelden.batch.runner import term_status
from voorbeelden.config import GeneratorConfig
from voorbeelden.redact import redact_obj
from voorbeelden.types import ALL_PARTS

__all__ = ["OfflineSummary", "export_requests", "import_results"]


@dataclass
class OfflineSummary(TermCounts):
    terms: int = 0  # exported, or written by an import
    lines: int = 0
    invalid: int = 0
    skipped: int = 0  # already in --out
    missing: int = 0  # import: terms with lines absent from the results file
    unknown_lines: int = 0  # import: result lines of no term of this input (nor of --out)
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    known: set[str] = field(default_factory=set, repr=False)  # keys already in --out

    def to_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in self.__dict__.items() if k not in ("rows", "known")}
        return {"ok": self.complete, "failed": self.failed, **fields}


def _pending(
    requests: RequestSource, out: Path | None, retry_failed: bool
) -> tuple[dict[str, Item], OfflineSummary]:
    done = read_results(out) if out is not None and out.exists() else {}
    summary = OfflineSummary(known=set(done))
    pending: dict[str, Item] = {}
    for item in iter_items(requests):
        if isinstance(item, BadLine):
            summary.invalid += 1
            continue
        previous = done.get(item.key, {}).get("status")
        if previous is not None and not (retry_failed and previous in RERUN_STATUSES):
            summary.skipped += 1
            continue
        pending.setdefault(item.key, item)
    return pending, summary


def export_requests(
    requests: RequestSource,
    path: str | os.PathLike[str],
    *,
    config: GeneratorConfig,
    strategy: str = "parallel",
    out: Path | None = None,
    retry_failed: bool = False,
) -> OfflineSummary:
    """Write the request lines of every term not finished in ``out`` to ``path`` (atomically)."""
    check_strategy(strategy)
    pending, summary = _pending(requests, out, retry_failed)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as f:
        for key, item in pending.items():
            for part in ALL_PARTS:
                f.write(dumps(request_line(key, item.request, part, config)))
                summary.lines += 1
            summary.terms += 1
    os.replace(tmp, target)
    return summary


def import_results(
    requests: RequestSource,
    results: str | os.PathLike[str],
    *,
    out: Path,
    config: GeneratorConfig,
    strategy: str = "parallel",
    retry_failed: bool = False,
    fsync: bool = False,
) -> OfflineSummary:
    """Write every term whose six lines are in ``results`` to ``out`` (locked, resumed like any batch)."""
    check_strategy(strategy)
    with OutputLog(out, fsync=fsync) as log:
        pending, summary = _pending(requests, out, retry_failed)
        got: dict[str, LineResult] = {}
        source = Path(results).name
        for row in read_result_rows([Path(results)]):
            parsed = split_custom_id(row["custom_id"])
            if parsed is None or parsed[0] not in pending:
                summary.unknown_lines += parsed is None or parsed[0] not in summary.known
                continue
            key, part = parsed
            got[row["custom_id"]] = read_output_line(row, pending[key].request, part, config, source)
        for key, item in pending.items():
            lines = {part: got.get(custom_id(key, part)) for part in ALL_PARTS}
            if any(v is None for v in lines.values()):
                summary.missing += 1
                continue
            gen = assemble(item.request, strategy, lines, {}, 0.0, config)  # type: ignore[arg-type]
            status = term_status(gen)
            row = redact_obj({"key": key, "status": status, "line": item.n, **compact_result(gen)})
            log.append(row)
            summary.rows.append(row)
            summary.terms += 1
            summary.lines += len(lines)
            summary.count(status)
    return summary

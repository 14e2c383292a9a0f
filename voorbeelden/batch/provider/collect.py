"""What every pending term's six lines have come to, decided from the state file and the downloaded results.

Kept apart from the run loop because this is the rule that makes a rerun safe, and it is pure (files in,
decisions out), so a unit test can hold it to that: a line in a live batch is never sent again; a line
answered for good (ok, or an error that a resend would repeat, or out of rounds) is final; a line never
sent, or sent and not run (expired, cancelled, a failed batch) or failed in a way worth retrying, is sent
again. A later answer for the same line (a follow-up round, or an online retry) replaces an earlier one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voorbeelden.batch.inputs import Item
from voorbeelden.batch.provider.lines import LineResult, custom_id, read_output_line, split_custom_id
from voorbeelden.batch.provider.remote import result_files
from voorbeelden.batch.provider.state import BatchEntry, BatchState
from voorbeelden.config import GeneratorConfig
from voorbeelden.types import ALL_PARTS, CallRecord, Part

__all__ = ["Collected", "collect", "online_result", "read_result_rows"]


@dataclass
class Collected:
    results: dict[str, LineResult] = field(default_factory=dict)  # custom_id -> latest answer
    attempts: dict[str, int] = field(default_factory=dict)  # custom_id -> sends that ended
    done: list[str] = field(default_factory=list)  # term keys whose six lines are final
    unsent: list[str] = field(default_factory=list)  # never sent (or only in a lost batch)
    retry: list[str] = field(default_factory=list)  # failed, worth sending again, rounds left
    first_sent: dict[str, float] = field(default_factory=dict)  # term key -> time of its first batch
    last_ended: dict[str, float] = field(default_factory=dict)  # term key -> when its last batch ended

    def attempts_of(self, key: str) -> dict[Part, int]:
        return {p: max(1, self.attempts.get(custom_id(key, p), 1)) for p in ALL_PARTS}


def read_result_rows(paths: Iterable[Path]) -> Iterable[dict[str, Any]]:
    """The rows of output/error files; a line that is not a JSON object with a custom_id is skipped."""
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("custom_id"), str):
                    yield row


def _entry_results(
    entry: BatchEntry, folder: Path, pending: Mapping[str, Item], config: GeneratorConfig
) -> dict[str, LineResult]:
    """Every line of a finished entry: its answer, or ``not_run`` (retryable) when no file mentions it."""
    source = entry.batch_id or entry.tag
    out: dict[str, LineResult] = {}
    for row in read_result_rows(result_files(entry, folder)):
        parsed = split_custom_id(row["custom_id"])
        if parsed is None or parsed[0] not in pending:
            continue
        key, part = parsed
        out[row["custom_id"]] = read_output_line(row, pending[key].request, part, config, source)
    why = f"batch {source} ended {entry.status} without running it" + (
        f" ({entry.note})" if entry.note else ""
    )
    for cid in entry.custom_ids:
        parsed = split_custom_id(cid)
        if cid not in out and parsed is not None and parsed[0] in pending:
            part = parsed[1]
            out[cid] = LineResult(part, part.empty(), False, why, "not_run", True, source=source)
    return out


def collect(
    state: BatchState,
    folder: Path,
    pending: Mapping[str, Item],
    config: GeneratorConfig,
    max_rounds: int,
    online: Mapping[str, LineResult],
    cache: dict[str, dict[str, LineResult]] | None = None,
) -> Collected:
    """Decide every pending term's lines (see the module docstring). ``cache`` keeps each finished entry's
    parsed results between calls (keyed by batch id), so a long run parses each result file once."""
    got = Collected()
    live: set[str] = set()
    for entry in state.entries:
        if entry.live:
            live.update(entry.custom_ids)
            continue
        if not entry.finished or not entry.downloaded:
            continue  # lost: its lines count as never sent
        if not any(cid.rpartition(":")[0] in pending for cid in entry.custom_ids):
            continue  # every term it carried is in --out already
        key_ = entry.batch_id or entry.tag
        results = cache.get(key_) if cache is not None else None
        if results is None:
            results = _entry_results(entry, folder, pending, config)
            if cache is not None:
                cache[key_] = results
        for cid, res in results.items():
            got.results[cid] = res
            got.attempts[cid] = got.attempts.get(cid, 0) + 1
            key = cid.rpartition(":")[0]
            got.first_sent[key] = min(got.first_sent.get(key, entry.created), entry.created)
            if entry.ended is not None:
                got.last_ended[key] = max(got.last_ended.get(key, entry.ended), entry.ended)
    for cid, res in online.items():
        got.results[cid] = res
        got.attempts[cid] = got.attempts.get(cid, 0) + 1
    for key in pending:
        final = True
        for part in ALL_PARTS:
            cid = custom_id(key, part)
            res = got.results.get(cid)
            if cid in live:
                final = False
            elif res is None:
                got.unsent.append(cid)
                final = False
            elif not res.ok and res.retryable and got.attempts.get(cid, 0) < max_rounds:
                got.retry.append(cid)
                final = False
        if final:
            got.done.append(key)
    return got


def online_result(part: Part, outcome: Any, records: list[CallRecord]) -> LineResult:
    """A :class:`~voorbeelden.caller.PartOutcome` of an online retry as a line result (final either way)."""
    last = records[-1] if records else None
    return LineResult(
        part,
        outcome.value,
        outcome.error is None,
        outcome.error,
        outcome.error_kind if outcome.error else ("shortfall" if outcome.shortfall else None),
        False,
        http_status=last.http_status if last else None,
        finish_reason=last.finish_reason if last else None,
        tokens_in=last.tokens_in if last else None,
        tokens_out=last.tokens_out if last else None,
        shortfall=outcome.shortfall if outcome.error is None else 0,
        source="online",
    )

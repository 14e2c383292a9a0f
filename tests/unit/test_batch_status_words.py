"""One status vocabulary: a term's result line, the summary (``--json``) and stderr say complete, partial or
failed alike, and the summary's retry and 429 counts are summed from the same call records as the lines'
``timing``. On 487172d a term with 5 of 6 parts was ``failed`` in its line and ``partial`` in ``term_status``,
and the summary counted retries from a simulator header the lines never saw."""

from __future__ import annotations

from voorbeelden.batch.records import compact_result
from voorbeelden.batch.runner import BatchSummary, term_status
from voorbeelden.types import ALL_PARTS, CallRecord, Generation, Request


def _gen(failed: int, records: list[CallRecord]) -> Generation:
    parts = {p: ([] if i < failed else ["x"]) for i, p in enumerate(ALL_PARTS)}
    errors = {p: "timeout" for i, p in enumerate(ALL_PARTS) if i < failed}
    return Generation(Request("a", "b"), "parallel", parts, records, 1.0, errors=errors)  # type: ignore[arg-type]


def test_a_term_is_complete_partial_or_failed_in_its_line_and_in_the_summary() -> None:
    summary = BatchSummary()
    words = [summary.add_term(_gen(n, [])) for n in (0, 1, 6)]
    assert words == [term_status(_gen(n, [])) for n in (0, 1, 6)] == ["complete", "partial", "failed"]
    data = summary.to_dict()
    assert (data["complete"], data["partial"], data["no_part"]) == (1, 1, 1)


def test_the_summarys_retries_and_429s_are_the_lines_sums() -> None:
    records = [
        CallRecord("synoniemen", attempt=1, status="rate_limited", http_status=429),
        CallRecord("synoniemen", attempt=2, status="ok"),
        CallRecord("antoniemen", attempt=1, status="ok"),
        CallRecord("antoniemen", attempt=1, status="ok", hedge=True),
    ]
    summary = BatchSummary()
    gen = _gen(0, records)
    summary.add_term(gen)
    timing = compact_result(gen)["timing"]
    assert summary.to_dict()["retries"] == timing["retries"] == 1
    assert summary.to_dict()["rate_limited"] == timing["rate_limited"] == 1

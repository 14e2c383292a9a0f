"""Split, combined and deadlines tell it straight (issue 11, item 7), against real HTTP servers that misbehave:
shortfalls are not "ok", a split part's latency is its critical path, a deadline during the combined call or
during a Retry-After wait is described as what it was, and the wait is on the record and in the table."""

from __future__ import annotations

from _fake_keys import fake_key
from _truth_server import one_item, rate_limited, serve, stall

from voorbeelden.commands.generate import render_text, render_timing
from voorbeelden.generator import generate_sync
from voorbeelden.types import Part

KEY = fake_key("truth")
REQ = {"begrip": "besluit", "definitie": "Een schriftelijke beslissing van een bestuursorgaan."}


def _table_row(table: str, label: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(label + " "))


def test_a_model_that_returns_fewer_items_is_short_not_ok_in_the_table() -> None:
    with serve(one_item) as srv:
        gen = generate_sync(REQ, "parallel", base_url=srv.base_url, api_key=KEY)
    assert gen.complete  # every part delivered something ...
    assert gen.shortfalls[Part.PRAKTIJKVOORBEELDEN] == 2  # ... but 1 of the 3 items asked
    row = _table_row(render_timing(gen), "praktijkvoorbeelden")
    assert "short (1 of 3)" in row and not row.rstrip().endswith("ok")
    assert _table_row(render_timing(gen), "toelichting").rstrip().endswith("ok")
    assert "1 van 3" in render_text(gen)


def test_split_shortfall_from_duplicates_is_visible_and_latency_is_the_critical_path() -> None:
    with serve(one_item) as srv:  # every one-item call returns the same item: split dedups to 1 of 3
        gen = generate_sync(REQ, "split", base_url=srv.base_url, api_key=KEY)
    assert "short (1 of 3" in _table_row(render_timing(gen), "praktijkvoorbeelden")
    prak = [r for r in gen.records if r.part == "praktijkvoorbeelden"]
    assert len(prak) >= 3  # concurrent one-item calls in rounds
    summed = sum(r.latency_s for r in prak)
    # The slowest part cannot take longer than the whole generation; summing concurrent calls did.
    assert gen.max_latency_s <= gen.wall_s + 1e-6
    assert gen.max_latency_s < summed * 0.8
    row = _table_row(render_timing(gen), "praktijkvoorbeelden")
    latency = float(row.split()[2])
    assert latency <= gen.wall_s + 0.01 and latency < summed * 0.8


def test_a_deadline_during_the_combined_call_says_the_combined_call_was_running() -> None:
    with serve(stall(5.0)) as srv:
        gen = generate_sync(REQ, "combined", base_url=srv.base_url, api_key=KEY, deadline_s=0.3)
    assert gen.n_ok == 0 and gen.wall_s < 2.0
    for part in Part:
        assert "not started" not in gen.errors[part], gen.errors[part]
        assert "combined call" in gen.errors[part] and "running" in gen.errors[part]
    assert "FAILED (timeout)" in _table_row(render_timing(gen), "toelichting")


def test_a_deadline_during_a_retry_after_wait_is_a_timeout_in_status_and_error_and_the_wait_is_recorded() -> (
    None
):
    with serve(rate_limited(5.0)) as srv:
        gen = generate_sync(REQ, "parallel", base_url=srv.base_url, api_key=KEY, deadline_s=0.5)
    assert gen.n_ok == 0 and gen.wall_s < 2.0
    table = render_timing(gen)
    for part in Part:
        error = gen.errors[part]
        assert error.startswith("timeout") and "waiting to retry (Retry-After" in error, error
        recs = [r for r in gen.records if r.part == part.value]
        assert [r.status for r in recs] == ["rate_limited"]  # the attempt itself was a 429 ...
        assert 0.3 < recs[0].waited_s < 1.5  # ... followed by a wait the deadline cut short
        row = _table_row(table, part.value)
        assert "FAILED (timeout)" in row and "rate_limited" not in row  # status agrees with the error
        assert f"{recs[0].waited_s:.2f} s" in row  # the waited column
    assert (
        "waited" in table.splitlines()[0]
        and "sum of waits" in table
        and "to retry (Retry-After/backoff)" in table
    )
    assert gen.to_dict()["summary"]["waited_s"] > 6 * 0.3


def test_a_completed_retry_after_wait_is_on_the_record() -> None:
    with serve(rate_limited(0.2)) as srv:
        gen = generate_sync(REQ, "sequential", base_url=srv.base_url, api_key=KEY, max_retries=1)
    assert gen.n_ok == 0
    first = [r for r in gen.records if r.part == "voorbeeldzinnen"]
    assert [r.attempt for r in first] == [1, 2]
    assert first[0].retry_after_s == 0.2 and 0.18 < first[0].waited_s < 1.0
    assert first[1].waited_s == 0.0  # the last attempt had nothing to wait for
    assert gen.errors[Part.VOORBEELDZINNEN].startswith("rate_limited")
    assert "FAILED (rate_limited)" in _table_row(render_timing(gen), "voorbeeldzinnen")

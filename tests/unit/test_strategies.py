"""The extra strategies (streaming, split, combined, hedged) against the simulator over real HTTP.

Fast: time_scale 0.01, so a "2 s" call takes about 20 ms. Assertions are on the CallRecords.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from voorbeelden.caller import Caller, RunState
from voorbeelden.config import GeneratorConfig, RetryPolicy
from voorbeelden.generator import generate
from voorbeelden.strategies import RunContext, get_strategy, names
from voorbeelden.strategies.combined import parse_combined
from voorbeelden.strategies.context import LatencyHistory
from voorbeelden.strategies.hedged import hedge_delay
from voorbeelden.types import ALL_PARTS, Part, Request

REQ = {
    "begrip": "besluit",
    "definitie": "Een schriftelijke beslissing van een bestuursorgaan.",
    "context": {"organisatorisch": ["Gemeente"], "juridisch": ["Bestuursrecht"], "wettelijk": []},
}
FAST_RETRY = RetryPolicy(max_retries=1, backoff_base_s=0.01, backoff_cap_s=0.02)
COUNTS = {p: GeneratorConfig().settings(p).count for p in ALL_PARTS}


def run(sim: Any, strategy: str, sim_key: str = "k1", **kw: Any) -> Any:
    # generate() takes a config or the policy keywords, not both: the keywords a test gives go into its config
    policy = {n: kw.pop(n) for n in ("deadline_s", "call_timeout_s", "max_retries", "k") if n in kw}
    kw.setdefault("config", GeneratorConfig(retry=FAST_RETRY).with_policy(**policy))
    return asyncio.run(generate(REQ, strategy, base_url=sim.base_url, sim_key=sim_key, **kw))


def assert_full(gen: Any) -> None:
    assert gen.errors == {}
    for part in ALL_PARTS:
        value = gen.parts[part]
        if part.is_list:
            assert len(value) == COUNTS[part], (part, value)
        else:
            assert value


def test_registered() -> None:
    assert {"streaming", "split", "combined", "hedged"} <= set(names())


# ---- streaming ---------------------------------------------------------------------------------------------


def test_streaming_records_ttft_and_first_visible(fresh: Any) -> None:
    gen = run(fresh, "streaming")
    assert_full(gen)
    assert len(gen.records) == 6
    for r in gen.records:
        assert r.status == "ok"
        assert r.ttft_s is not None and 0 < r.ttft_s < r.latency_s
        assert r.tokens_in and r.tokens_out  # usage arrived in the final chunk
    assert gen.first_visible_s is not None
    # never later than the first call to end (a short part may arrive in one chunk, so not strictly earlier)
    assert gen.first_visible_s <= min(r.t_end for r in gen.records) + 1e-9


def test_streaming_marks_first_item_before_any_call_ends(fresh: Any) -> None:
    """The RunState hook: the first complete line of a list part is seen before its call ends."""

    async def go() -> tuple[RunState, list[Any]]:
        state = RunState(sim_key="k2", strategy="streaming", simulator=True)
        async with openai.AsyncOpenAI(base_url=fresh.base_url, api_key="sim", max_retries=0) as client:
            cfg = GeneratorConfig(retry=FAST_RETRY)
            caller = Caller(client, state, retry=cfg.retry, call_timeout_s=cfg.call_timeout_s)
            ctx = RunContext(request=Request.coerce(REQ), config=cfg, caller=caller)
            await get_strategy("streaming")(ctx, ALL_PARTS)
            return state, state.records

    state, records = asyncio.run(go())
    assert state.first_visible_s is not None
    assert state.first_visible_s <= min(r.t_end for r in records) + 1e-9
    assert state.first_visible_s > min(r.t_start + r.ttft_s for r in records) - 1e-9


# ---- split -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["k1", "k2", "k3"])
def test_split_merges_to_count_without_duplicates(fresh: Any, key: str) -> None:
    gen = run(fresh, "split", sim_key=key, options={"split_parts": ["tegenvoorbeelden", "synoniemen"]})
    assert_full(gen)
    for part in (Part.TEGENVOORBEELDEN, Part.SYNONIEMEN):
        items = gen.parts[part]
        assert len({i.casefold() for i in items}) == len(items) == COUNTS[part]
        recs = [r for r in gen.records if r.part == part]
        assert len(recs) >= COUNTS[part]  # one call per item, plus top-ups after duplicates
        assert all(r.tokens_in for r in recs)  # each call's prompt is on the record
    # parts not split stay one call each
    for part in (Part.VOORBEELDZINNEN, Part.PRAKTIJKVOORBEELDEN, Part.ANTONIEMEN, Part.TOELICHTING):
        assert len([r for r in gen.records if r.part == part]) == 1


def test_split_default_parts_and_prompt_count_one(fresh: Any) -> None:
    gen = run(fresh, "split")
    assert_full(gen)
    counters = fresh.counters()
    assert counters["by_part"]["praktijkvoorbeelden"] >= 3
    assert counters["by_part"]["tegenvoorbeelden"] >= 3
    assert counters["by_part"]["synoniemen"] == 1
    split_in = sum(r.tokens_in for r in gen.records if r.part == "praktijkvoorbeelden")
    single = run(fresh, "parallel")
    one_in = next(r.tokens_in for r in single.records if r.part == "praktijkvoorbeelden")
    assert split_in >= 3 * one_in - 3  # the prompt is paid per call (count 1 vs 3 may differ by a token)


# ---- combined ----------------------------------------------------------------------------------------------


def test_combined_one_call(fresh: Any) -> None:
    gen = run(fresh, "combined")
    assert_full(gen)
    assert [(r.part, r.status) for r in gen.records] == [("combined", "ok")]
    assert fresh.counters()["by_part"]["combined"] == 1


@pytest.mark.parametrize("fault", ["500", "malformed", "truncated"])
def test_combined_falls_back_per_part(fresh: Any, fault: str) -> None:
    fresh.configure(schedule=[f"combined={fault}"])
    gen = run(fresh, "combined")
    assert_full(gen)
    combined = [r for r in gen.records if r.part == "combined"]
    assert combined and all(r.status != "ok" for r in combined)
    per_part = [r for r in gen.records if r.part != "combined"]
    assert sorted(r.part for r in per_part) == sorted(p.value for p in ALL_PARTS)
    assert all(r.status == "ok" for r in per_part)


def test_parse_combined_keeps_valid_parts_only() -> None:
    answer = {
        "voorbeeldzinnen": ["Een zin.", "Nog een zin.", "Derde zin."],
        "praktijkvoorbeelden": "geen lijst",  # invalid type
        "tegenvoorbeelden": [],  # no items
        "synoniemen": ["a", "b", "c", "d", "e"],
        # antoniemen missing
        "toelichting": "Uitleg.",
    }
    good, error = parse_combined(json.dumps(answer), COUNTS)
    assert error is None
    assert set(good) == {Part.VOORBEELDZINNEN, Part.SYNONIEMEN, Part.TOELICHTING}
    assert parse_combined('{"voorbeeldzinnen": ["a"', COUNTS)[1] is not None
    assert parse_combined("[1, 2]", COUNTS)[1] is not None


# ---- hedged ------------------------------------------------------------------------------------------------


def test_hedge_backup_wins_over_hang_and_loser_is_cancelled(fresh: Any) -> None:
    fresh.configure(schedule=["synoniemen=hang@1"])
    gen = run(fresh, "hedged", options={"hedge_delay_s": 0.3})
    assert_full(gen)
    syn = sorted((r for r in gen.records if r.part == "synoniemen"), key=lambda r: r.attempt)
    assert [(r.attempt, r.hedge, r.status) for r in syn] == [(1, False, "cancelled"), (101, True, "ok")]
    assert syn[1].t_start >= 0.3 - 0.01
    assert syn[0].t_end >= syn[1].t_end - 0.01  # the hung primary was cancelled once the backup answered
    # the other parts normally answer long before the delay (~20 ms); on a loaded machine one may still
    # get its single backup, never more
    for part in ALL_PARTS:
        assert len([r for r in gen.records if r.part == part and r.hedge]) <= 1
    assert len([r for r in gen.records if r.hedge]) <= 2
    assert fresh.counters()["faults"].get("hang") == 1
    assert gen.wall_s < 2.0


def test_hedge_at_most_one_backup_per_part(fresh: Any) -> None:
    fresh.configure(profile="heavy-tail")
    gen = run(fresh, "hedged", sim_key="ht", options={"hedge_delay_s": 0.001})
    assert_full(gen)
    for part in ALL_PARTS:
        recs = [r for r in gen.records if r.part == part]
        assert len([r for r in recs if r.hedge]) == 1  # the delay is tiny: every part gets its one backup
        assert sum(r.status == "ok" for r in recs) >= 1
        # the first answer wins; the other call was cancelled (or had just finished as well)
        assert all(r.status in ("ok", "cancelled") for r in recs)
        assert sum(r.status == "cancelled" for r in recs) <= 1


def test_hedge_delay_options() -> None:
    history = LatencyHistory()
    assert hedge_delay(Part.SYNONIEMEN, {}, history) is None
    assert hedge_delay(Part.SYNONIEMEN, {"hedge_delay_s": 0.3}, history) == 0.3
    opts = {"hedge_percentile": 90, "hedge_min_samples": 10, "hedge_delay_s": 0.3}
    for i in range(9):
        history.observe(Part.SYNONIEMEN, i / 10)
    assert hedge_delay(Part.SYNONIEMEN, opts, history) == 0.3  # too few samples: the fixed fallback
    history.observe(Part.SYNONIEMEN, 0.9)
    assert hedge_delay(Part.SYNONIEMEN, opts, history) == pytest.approx(0.81)
    assert hedge_delay(Part.ANTONIEMEN, opts, history) == 0.3  # per part
    assert hedge_delay(Part.SYNONIEMEN, opts, LatencyHistory()) == 0.3  # per history: nothing shared


def test_hedge_percentile_learns_from_the_history_passed_in(fresh: Any) -> None:
    opts = {"hedge_percentile": 50, "hedge_min_samples": 3}
    history = LatencyHistory()
    for i in range(3):
        gen = run(fresh, "hedged", sim_key=f"p{i}", options=opts, hedge_history=history)
        assert not [r for r in gen.records if r.hedge]  # no delay known yet, no fallback: no backups
    assert all(len(history.latencies(part)) == 3 for part in ALL_PARTS)
    gen = run(fresh, "hedged", sim_key="p9", options=opts, hedge_history=history)
    assert_full(gen)
    for part in ALL_PARTS:
        assert len([r for r in gen.records if r.part == part and r.hedge]) <= 1
    assert all(len(history.latencies(part)) == 4 for part in ALL_PARTS)


def test_hedge_history_is_per_run_not_global(fresh: Any) -> None:
    """Without a shared history each generation starts from nothing: with no fixed fallback delay, no
    backup is ever sent, however many generations ran before in this process."""
    opts = {"hedge_percentile": 50, "hedge_min_samples": 1}
    for i in range(3):
        gen = run(fresh, "hedged", sim_key=f"g{i}", options=opts)
        assert_full(gen)
        assert not [r for r in gen.records if r.hedge]


def test_combined_fetches_only_the_parts_missing_from_the_answer(
    fresh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import voorbeelden.strategies.combined as extra

    real = extra.parse_combined

    def without_antoniemen(text: str | None, counts: Any) -> Any:
        good, error = real(text, counts)
        good.pop(Part.ANTONIEMEN, None)
        return good, error

    monkeypatch.setattr(extra, "parse_combined", without_antoniemen)
    gen = run(fresh, "combined")
    assert_full(gen)
    assert sorted((r.part, r.status) for r in gen.records) == [("antoniemen", "ok"), ("combined", "ok")]


def test_hedged_deadline_cancels_both_calls(fresh: Any) -> None:
    fresh.configure(schedule=["synoniemen=hang"])  # every attempt, the backup too

    async def go() -> Any:
        gen = await generate(
            REQ,
            "hedged",
            base_url=fresh.base_url,
            sim_key="dl",
            config=GeneratorConfig(retry=FAST_RETRY, deadline_s=0.4),
            options={"hedge_delay_s": 0.1},
        )
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return gen, others

    gen, others = asyncio.run(go())
    assert others == []
    assert set(gen.errors) == {Part.SYNONIEMEN}
    syn = sorted((r for r in gen.records if r.part == "synoniemen"), key=lambda r: r.attempt)
    assert [(r.attempt, r.hedge, r.status) for r in syn] == [(1, False, "timeout"), (101, True, "timeout")]

"""The batching latency model: concurrent streams share the server's decode steps (processor sharing), at
most ``max_batch`` at once, the rest queue. Deterministic: the pure replay, and the live decoder on a fake
clock, are checked against times computed by hand."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from voorbeelden.sim.batching import SharedDecoder, replay
from voorbeelden.sim.profiles import PROFILES, Batching, load_profile_file, profile_from_dict

HALF_AT_SIX = Batching((1.0, 0.9, 0.8, 0.7, 0.6, 0.5))


def test_six_equal_streams_take_work_over_their_shared_speed():
    ends = replay([0.0] * 6, [1.0] * 6, HALF_AT_SIX)
    assert ends == pytest.approx([2.0] * 6)  # each at half speed: 1 s of work takes 2 s


def test_one_stream_alone_is_unchanged():
    assert replay([0.5], [1.25], HALF_AT_SIX) == pytest.approx([1.75])


def test_beyond_max_batch_streams_queue_in_arrival_order():
    ends = replay([0.0] * 12, [1.0] * 12, HALF_AT_SIX)
    # the first six share the server until 2 s, then the next six start and take 2 s more
    assert ends[:6] == pytest.approx([2.0] * 6)
    assert ends[6:] == pytest.approx([4.0] * 6)


def test_rate_is_reevaluated_when_a_stream_ends():
    two = Batching((1.0, 0.5))
    # both at half speed until the short one is done (its 0.5 s of work takes 1 s); then the long one has
    # 1.5 s of work left alone at full speed
    assert replay([0.0, 0.0], [0.5, 2.0], two) == pytest.approx([1.0, 2.5])


def test_a_stream_joining_later_slows_the_running_one():
    two = Batching((1.0, 0.5))
    # the first runs alone for 0.5 s (0.5 done), then both at half speed: the second finishes its 0.5 s at
    # 1.5 s while the first has done 0.5 more (1.0 of 1.0): both end at 1.5 s
    assert replay([0.0, 0.5], [1.0, 0.5], two) == pytest.approx([1.5, 1.5])


def test_no_slowdown_curve_is_a_plain_slot_server():
    slots = Batching((1.0, 1.0))
    assert replay([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], slots) == pytest.approx([1.0, 1.0, 2.0])


def test_step_model_and_throughput():
    b = Batching.step_model(6, 0.25)
    assert b.max_batch == 6 and b.speed[0] == 1.0
    assert b.rate(6) == pytest.approx(1 / 2.25)
    assert b.throughput(6) == pytest.approx(6 / 2.25)
    assert b.rate(9) == b.rate(6)  # beyond max_batch the extra streams queue, they do not slow the batch


@pytest.mark.parametrize(
    ("speed", "match"),
    [
        ([], "one value"),
        ([0.9, 0.5], r"speed\[0\]"),
        ([1.0, -0.5], r"speed\[1\]"),
        ([1.0, "x"], r"speed\[1\]"),
    ],
)
def test_bad_curves_are_refused_naming_the_field(speed, match):
    with pytest.raises(ValueError, match=match):
        Batching(tuple(speed))


def _fake_clock():
    now = [0.0]
    return now, (lambda: now[0])


def test_live_decoder_retimes_every_wait_when_streams_join_and_leave():
    async def main():
        now, clock = _fake_clock()
        dec = SharedDecoder(Batching((1.0, 0.5, 0.25)), clock)
        a = dec.join()
        assert dec.due(a.v0 + 1.0) == pytest.approx(1.0)  # alone: 1 s of work in 1 s
        b = dec.join()
        assert dec.due(a.v0 + 1.0) == pytest.approx(2.0)  # two: half speed
        now[0] = 1.0  # a and b have done 0.5 each
        c = dec.join()
        assert dec.due(a.v0 + 1.0) == pytest.approx(1.0 + 0.5 / 0.25)
        assert dec.due(c.v0 + 1.0) == pytest.approx(1.0 + 1.0 / 0.25)
        now[0] = 2.0  # 0.25 more each: a at 0.75
        c.close()
        b.close()
        assert dec.due(a.v0 + 1.0) == pytest.approx(2.25)  # alone again
        a.close()
        assert dec.active == 0

    asyncio.run(main())


def test_live_decoder_wakes_waiters_in_order_of_their_work():
    """Real loop, tiny times: the order of wake-ups follows the work, whatever the loop's lateness."""

    async def main():
        dec = SharedDecoder(Batching((1.0, 0.5, 0.5)))
        done: list[str] = []

        async def call(name: str, work: float) -> None:
            s = dec.join()
            try:
                await s.until(work)
                done.append(name)
            finally:
                s.close()

        async with asyncio.TaskGroup() as tg:
            for name, work in (("long", 0.03), ("short", 0.01), ("mid", 0.02)):
                tg.create_task(call(name, work))
        return done

    assert asyncio.run(main()) == ["short", "mid", "long"]


def test_profile_file_carries_the_curve(tmp_path):
    data = {
        "name": "b2",
        "parts": {
            p: {"ttft_s": {"median": 0.1}, "tokens": {"median": 10}, "tokens_per_s": {"median": 50}}
            for p in (
                "voorbeeldzinnen",
                "praktijkvoorbeelden",
                "tegenvoorbeelden",
                "synoniemen",
                "antoniemen",
                "toelichting",
            )
        },
        "batching": {"max_batch": 2, "speed": [1.0, 0.6]},
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    profile, _ = load_profile_file(path)
    assert profile.batching == Batching((1.0, 0.6))
    bad = dict(data, batching={"max_batch": 3, "speed": [1.0, 0.6]})
    with pytest.raises(ValueError, match=r"batching\.max_batch"):
        profile_from_dict(bad)
    no_curve = {k: v for k, v in data.items() if k != "batching"}
    assert profile_from_dict(no_curve).batching is None


def test_builtin_batching_profile_and_old_profiles_unchanged():
    assert PROFILES["batching-6"].batching is not None and PROFILES["batching-6"].batching.max_batch == 6
    for name in ("uniform-2s", "definitie-app", "gpt-4o-aa-2026", "heavy-tail"):
        assert PROFILES[name].batching is None


def test_replay_matches_a_brute_force_simulation():
    """Small time steps, counting active streams directly: an independent check of the event replay."""
    rng = np.random.default_rng(3)
    b = Batching.step_model(3, 0.4)
    starts = np.sort(rng.uniform(0, 2, 7))
    works = rng.uniform(0.2, 1.5, 7)
    dt = 1e-4
    rem = works.copy()
    admitted: list[int] = []
    ends = np.full(7, np.nan)
    t = 0.0
    while np.isnan(ends).any():
        for i in range(7):
            if starts[i] <= t and i not in admitted and np.isnan(ends[i]):
                running = [j for j in admitted if np.isnan(ends[j])]
                if len(running) < b.max_batch and all(k in admitted for k in range(i)):
                    admitted.append(i)
        running = [j for j in admitted if np.isnan(ends[j])]
        r = b.rate(len(running))
        for j in running:
            rem[j] -= dt * r
            if rem[j] <= 0:
                ends[j] = t + dt
        t += dt
    assert replay(starts, works, b) == pytest.approx(ends, abs=5e-3)

"""The two test knobs that prove ``voorbeelden compare`` sees a real slowdown (voorbeelden.injected)."""

from __future__ import annotations

import numpy as np
import pytest

from voorbeelden import injected
from voorbeelden.sim.config import SimConfig
from voorbeelden.sim.profiles import PROFILES
from voorbeelden.transport import AiohttpTransport


def test_unset_knobs_change_nothing(monkeypatch):
    monkeypatch.delenv(injected.CALL_DELAY_ENV, raising=False)
    monkeypatch.delenv(injected.SLOW_PART_ENV, raising=False)
    assert injected.call_delay_s() == 0.0 and AiohttpTransport()._delay_s == 0.0
    assert SimConfig(profile="definitie-app").resolved_profile() is PROFILES["definitie-app"]


def test_call_delay_is_read_in_milliseconds_and_reaches_the_transport(monkeypatch):
    monkeypatch.setenv(injected.CALL_DELAY_ENV, "50")
    assert AiohttpTransport()._delay_s == pytest.approx(0.05)
    for bad in ("-1", "fast", "inf"):
        monkeypatch.setenv(injected.CALL_DELAY_ENV, bad)
        with pytest.raises(ValueError, match=injected.CALL_DELAY_ENV):
            injected.call_delay_s()


@pytest.mark.parametrize("profile", ["uniform-2s", "definitie-app"])
def test_slow_part_scales_that_parts_service_time_exactly_even_when_max_tokens_cuts(monkeypatch, profile):
    monkeypatch.setenv(injected.SLOW_PART_ENV, "praktijkvoorbeelden:1.2")
    slowed = SimConfig(profile=profile).resolved_profile()
    original = PROFILES[profile]
    for part, factor in (("praktijkvoorbeelden", 1.2), ("antoniemen", 1.0)):
        for seed in range(20):  # the same draws: the ratio is exactly the factor, call by call
            a = original.sample_service_s(part, np.random.default_rng(seed), 1500)
            b = slowed.sample_service_s(part, np.random.default_rng(seed), 1500)
            assert b / a == pytest.approx(factor)


def test_a_bad_slow_part_names_the_knob_and_the_parts(monkeypatch):
    for bad in ("praktijkvoorbeelden", "nope:1.2", "synoniemen:0", "synoniemen:x"):
        monkeypatch.setenv(injected.SLOW_PART_ENV, bad)
        with pytest.raises(ValueError, match=f"{injected.SLOW_PART_ENV}.*PART:FACTOR.*synoniemen"):
            injected.slow_part()

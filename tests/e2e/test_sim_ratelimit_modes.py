"""The simulator's rate-limit modes: the default bucket (starts full, refills continuously, rejections free),
the quantized window (the minute's share enforced over shorter windows) and charged rejections."""

from __future__ import annotations

import asyncio

import openai
import pytest

from voorbeelden.sim import SimConfig, running_simulator
from voorbeelden.sim.ratelimit import QuantizedWindow, RateLimiter
from voorbeelden.sim.server import cli_args

MSG = [{"role": "user", "content": 'Geef precies 5 synoniemen voor het begrip "beschikking".'}]


@pytest.mark.parametrize(
    ("rpm", "quantum", "allowance", "length"),
    [(60, 1.0, 1, 1.0), (300, 1.0, 5, 1.0), (30, 1.0, 1, 2.0), (90, 1.0, 2, 60 * 2 / 90)],
)
def test_a_quantized_window_admits_a_whole_share_and_keeps_the_rate_exact(
    rpm: float, quantum: float, allowance: int, length: float
) -> None:
    w = QuantizedWindow(rpm, 60.0, quantum, t0=0.0)
    assert w.allowance == allowance and w.length == pytest.approx(length)
    assert w.allowance / w.length == pytest.approx(rpm / 60)


def test_the_default_bucket_starts_full_and_does_not_charge_rejections() -> None:
    lim = RateLimiter(10, None, time_scale=1.0)  # 10 per minute
    now = 1000.0
    lim.dims[0].bucket._t = now
    decisions = [lim.check(0, now) for _ in range(15)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 5
    rejected = decisions[-1]
    assert rejected.headers["x-ratelimit-remaining-requests"] == "0"
    assert rejected.retry_after_s == pytest.approx(6.0)  # one request's refill
    # five rejections later the next token still comes after one refill interval (6 s), not 36 s
    assert lim.check(0, now + 6.01).allowed


def test_charged_rejections_dig_a_debt_that_the_reset_header_shows() -> None:
    lim = RateLimiter(10, None, time_scale=1.0, charge_rejected=True)
    now = 1000.0
    lim.dims[0].bucket._t = now
    for _ in range(10):
        assert lim.check(0, now).allowed
    for _ in range(5):
        d = lim.check(0, now)
        assert not d.allowed
    assert d.headers["x-ratelimit-remaining-requests"] == "0"  # never negative
    assert d.headers["x-ratelimit-reset-requests"] == "1m30s"  # 15 owed of 10: 1.5 minutes to full
    assert d.retry_after_s == pytest.approx(36.0)  # the debt of 5 plus one request: 6 refills of 6 s
    assert not lim.check(0, now + 30).allowed  # the unpaid debt still blocks (and this one is charged too)
    for _ in range(100):
        lim.check(0, now + 30)
    assert lim.dims[0].bucket.level(now + 30) == pytest.approx(-10)  # the debt stops at one minute's worth


def test_a_quantized_window_rejects_a_burst_the_per_minute_headers_would_allow() -> None:
    lim = RateLimiter(60, None, time_scale=1.0, mode="quantized", quantum_s=1.0)
    t0 = lim.dims[0].window.t0  # type: ignore[union-attr]
    first, second = lim.check(0, t0 + 0.1), lim.check(0, t0 + 0.2)
    assert first.allowed and not second.allowed
    assert int(second.headers["x-ratelimit-remaining-requests"]) >= 58  # the minute still has room
    assert second.retry_after_s == pytest.approx(0.8)  # until the next one-second window
    assert lim.check(0, t0 + 1.0).allowed


def test_config_validates_the_mode_fields_and_the_subprocess_gets_them() -> None:
    with pytest.raises(ValueError, match="rate_limit_mode"):
        SimConfig(rate_limit_mode="sliding")
    with pytest.raises(ValueError, match="rate_limit_quantum_s"):
        SimConfig(rate_limit_quantum_s=0)
    cfg = SimConfig(rpm=60, rate_limit_mode="quantized", rate_limit_quantum_s=0.5, charge_rejected=True)
    args = cli_args(cfg)
    assert args[args.index("--rate-limit-mode") + 1] == "quantized"
    assert args[args.index("--quantum") + 1] == "0.5" and "--charge-rejected" in args


def test_a_quantized_server_process_answers_a_burst_with_429s_and_per_minute_headers() -> None:
    cfg = SimConfig(rpm=60, time_scale=0.05, rate_limit_mode="quantized", charge_rejected=True)
    with running_simulator(cfg, process=True) as sim:

        async def burst() -> list[object]:
            async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0) as c:
                return await asyncio.gather(
                    *(c.chat.completions.with_raw_response.create(model="m", messages=MSG) for _ in range(5)),
                    return_exceptions=True,
                )

        results = asyncio.run(burst())
        counters = sim.counters()
    errors = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(errors) >= 3 and counters["sent_429"] == len(errors)  # one per 50 ms window, the rest refused
    h = errors[0].response.headers
    assert h["x-ratelimit-limit-requests"] == "60" and int(h["x-ratelimit-remaining-requests"]) >= 50
    assert 1 <= int(h["retry-after-ms"]) <= 50


def test_the_short_window_mode_reports_the_windows_remaining_and_reset_under_the_minutes_limit() -> None:
    # 600 per minute enforced as 10 per 1 s window; the headers count the window, the limit names the minute
    lim = RateLimiter(600, None, time_scale=1.0, mode="short-window", quantum_s=1.0)
    t0 = lim.dims[0].window.t0  # type: ignore[union-attr]
    first = lim.check(0.0, now=t0 + 0.2)
    assert first.allowed and first.headers["x-ratelimit-limit-requests"] == "600"
    assert first.headers["x-ratelimit-remaining-requests"] == "9"  # the window's, not the minute's 599
    assert first.headers["x-ratelimit-reset-requests"] == "800ms"  # until the window opens again
    for _ in range(9):
        assert lim.check(0.0, now=t0 + 0.3).allowed
    refused = lim.check(0.0, now=t0 + 0.4)
    assert not refused.allowed and refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert lim.check(0.0, now=t0 + 1.0).allowed  # the next window

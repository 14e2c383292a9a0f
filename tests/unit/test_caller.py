"""The retry policy's pure parts: reading Retry-After, backoff bounds, the error vocabulary."""

from __future__ import annotations

import email.utils
import random
import time

import pytest

from voorbeelden.caller import backoff_s, error_kind_for_status, parse_retry_after
from voorbeelden.config import RetryPolicy


def test_retry_after_ms_wins_over_seconds() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == pytest.approx(0.25)


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after({"retry-after": future}) or 0) <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0


@pytest.mark.parametrize(
    "headers",
    [None, {}, {"retry-after": "soon"}, {"retry-after-ms": "x"}, {"retry-after": "-1"}, {"retry-after": ""}],
)
def test_unusable_retry_after_is_ignored(headers: dict[str, str] | None) -> None:
    assert parse_retry_after(headers) is None


def test_backoff_doubles_with_downward_jitter_and_cap() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_cap_s=8.0, jitter=0.25)
    rng = random.Random(1)
    for n, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        for _ in range(50):
            assert nominal * 0.75 <= backoff_s(policy, n, rng) <= nominal
    assert backoff_s(RetryPolicy(jitter=0.0), 2) == 1.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, "rate_limited"),
        (400, "bad_request"),
        (401, "auth"),
        (404, "not_found"),
        (500, "http_500"),
        (503, "http_503"),
    ],
)
def test_error_kinds(status: int, kind: str) -> None:
    assert error_kind_for_status(status) == kind

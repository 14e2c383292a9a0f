"""``voorbeelden bench transport``, small and fast here (the full figures are in docs/TRANSPORT.md): both
candidates run, every figure says how many generations and calls it covers, and bad settings are exit 2."""

from __future__ import annotations

import json

from conftest import env_without_openai, run_voorbeelden


def test_both_transports_are_measured_with_their_counts() -> None:
    args = [
        "bench",
        "transport",
        "--generations",
        "2",
        "--calls",
        "20",
        "--rounds",
        "1",
        "--burst-time-scale",
        "0.05",
    ]
    res = run_voorbeelden([*args, "--json"], env=env_without_openai(), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(res.stdout)
    by_name = {c["transport"]: c for c in data["candidates"]}
    assert set(by_name) == {"aiohttp", "httpx"}
    for c in by_name.values():
        assert c["generations"] == {"ok": 2, "failed": 0}
        assert c["wall_over_slowest"]["n"] == 2 and c["wall_over_slowest"]["median"] >= 1.0
        assert c["burst"]["calls"] == 20 and c["burst"]["errors"] == 0
        assert c["burst"]["observed_minus_scheduled_ms"]["n"] == 20


def test_bad_settings_are_exit_2_naming_the_option() -> None:
    for args, option in (
        (["--generations", "0"], "--generations"),
        (["--time-scale", "nan"], "--time-scale"),
    ):
        res = run_voorbeelden(["bench", "transport", *args], env=env_without_openai(), timeout=60)
        assert res.returncode == 2 and option in res.stderr and "Traceback" not in res.stderr, res.stderr

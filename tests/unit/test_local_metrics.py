"""llama-server's /metrics and /slots read over real HTTP from a stand-in that speaks the same text format.

The stand-in serves the exact exposition llama.cpp's ``server_task_result_metrics::to_metrics`` writes
(``# HELP``/``# TYPE`` lines, ``llamacpp:`` names), so parsing, the interval arithmetic and the sampler's
gauge peaks are checked without building llama.cpp; ``tests/real_llm`` reads the real server.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from voorbeelden.local import (
    MetricsSampler,
    MetricsUnavailable,
    ServerMetrics,
    metrics_delta,
    read_metrics,
    read_slots,
)
from voorbeelden.local.metrics import parse_prometheus, root_url


def exposition(values: dict[str, float]) -> str:
    lines = []
    for name, value in values.items():
        lines += [
            f"# HELP llamacpp:{name} text",
            f"# TYPE llamacpp:{name} counter",
            f"llamacpp:{name} {value}",
        ]
    return "\n".join(lines) + "\n"


class FakeServer:
    def __init__(self) -> None:
        self.values: dict[str, float] = {
            "prompt_tokens_total": 10,
            "prompt_seconds_total": 0.5,
            "tokens_predicted_total": 100,
            "tokens_predicted_seconds_total": 4.0,
            "n_decode_total": 100,
            "n_busy_slots_per_decode": 1,
            "requests_processing": 0,
            "requests_deferred": 0,
        }
        self.metrics_status = 200
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    status, body = owner.metrics_status, exposition(owner.values).encode()
                elif self.path == "/slots":
                    status, body = 200, json.dumps([{"id": 0, "is_processing": False}]).encode()
                else:
                    status, body = 404, b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.close()


def test_parse_prometheus_skips_comments_labels_and_non_numbers() -> None:
    text = (
        '# HELP llamacpp:a x\nllamacpp:a 1.5\nllamacpp:b{position="0"} 3\nllamacpp:c nan\nllamacpp:d oops\n'
        "llamacpp:e 2e+06\n"
    )
    assert parse_prometheus(text) == {"a": 1.5, "e": 2e6}


def test_root_url_strips_v1() -> None:
    assert root_url("http://127.0.0.1:5/v1/") == "http://127.0.0.1:5"
    assert root_url("http://127.0.0.1:5") == "http://127.0.0.1:5"


def test_read_metrics_maps_the_servers_names(server: FakeServer) -> None:
    m = read_metrics(server.base_url)
    assert m.tokens_predicted_total == 100
    assert m.tokens_predicted_seconds_total == 4.0
    assert m.busy_slots_per_decode == 1
    assert m.raw["n_busy_slots_per_decode"] == 1
    assert read_slots(server.base_url) == [{"id": 0, "is_processing": False}]


def test_a_server_without_metrics_is_a_clear_error(server: FakeServer) -> None:
    server.metrics_status = 501
    with pytest.raises(MetricsUnavailable, match="/metrics"):
        read_metrics(server.base_url)


def test_delta_recovers_busy_slots_of_the_interval_from_lifetime_averages() -> None:
    before = ServerMetrics(read_at=0.0, tokens_predicted_total=100, tokens_predicted_seconds_total=4,
                           n_decode_total=100, busy_slots_per_decode=1.0)  # fmt: skip
    # 600 more tokens in 100 decode steps with 6 busy slots each: lifetime average (100*1 + 100*6)/200 = 3.5
    after = ServerMetrics(read_at=10.0, tokens_predicted_total=700, tokens_predicted_seconds_total=34,
                          n_decode_total=200, busy_slots_per_decode=3.5)  # fmt: skip
    d = metrics_delta(before, after)
    assert d.tokens_predicted == 600 and d.n_decode == 100 and d.seconds == 10
    assert d.busy_slots_per_decode == pytest.approx(6.0)
    assert d.batched is True
    assert d.stream_tokens_per_s == pytest.approx(20.0)  # 600 tokens over 30 stream-seconds
    assert d.tokens_per_s == pytest.approx(60.0)  # 600 tokens over 10 s of wall


def test_delta_of_one_at_a_time_is_not_batched_and_an_idle_interval_says_nothing() -> None:
    a = ServerMetrics(read_at=0.0, n_decode_total=10, busy_slots_per_decode=1.0, tokens_predicted_total=10)
    b = ServerMetrics(read_at=1.0, n_decode_total=20, busy_slots_per_decode=1.0, tokens_predicted_total=20)
    assert metrics_delta(a, b).batched is False
    idle = metrics_delta(b, b)
    assert idle.busy_slots_per_decode is None and idle.batched is None and idle.stream_tokens_per_s is None


def test_delta_refuses_readings_of_a_restarted_server() -> None:
    a = ServerMetrics(read_at=0.0, n_decode_total=10, tokens_predicted_total=10)
    b = ServerMetrics(read_at=1.0, n_decode_total=2, tokens_predicted_total=2)
    with pytest.raises(ValueError, match="restarted"):
        metrics_delta(a, b)


def test_sampler_keeps_the_gauge_peaks_and_the_counters_around_the_block(server: FakeServer) -> None:
    with MetricsSampler(server.base_url, interval_s=0.01) as sampler:
        server.values.update(requests_processing=6, requests_deferred=2)
        while sampler.peaks.samples < 3:
            threading.Event().wait(0.01)
        server.values.update(requests_processing=0, requests_deferred=0, tokens_predicted_total=160,
                             n_decode_total=110, n_busy_slots_per_decode=(100 + 60) / 110)  # fmt: skip
    assert sampler.peaks.max_processing == 6 and sampler.peaks.max_deferred == 2
    assert sampler.delta.tokens_predicted == 60
    assert sampler.delta.busy_slots_per_decode == pytest.approx(6.0, rel=1e-3)
    assert sampler.summary()["gauges"]["max_deferred"] == 2


def test_sampler_keeps_the_runs_own_error_when_the_server_is_gone(server: FakeServer) -> None:
    with pytest.raises(ZeroDivisionError), MetricsSampler(server.base_url, interval_s=0.01):
        server.metrics_status = 500
        1 / 0  # noqa: B018

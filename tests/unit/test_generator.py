"""The generator against the simulator over real HTTP.

Timing claims are asserted from the CallRecords (overlap, gaps, counts), with margins, never as tight
absolute wall times: CI has two noisy cores.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import time
import warnings
from typing import Any

import httpx2
import openai
import pytest

from voorbeelden.caller import Call, Caller, RunState
from voorbeelden.config import GeneratorConfig, PartSettings, RetryPolicy
from voorbeelden.generator import generate, generate_sync
from voorbeelden.strategies import names
from voorbeelden.types import ALL_PARTS, CallRecord, InvalidRequest, Part, Request

REQ = {
    "begrip": "besluit",
    "definitie": "Een schriftelijke beslissing van een bestuursorgaan.",
    "context": {"organisatorisch": ["Gemeente"], "juridisch": ["Bestuursrecht"], "wettelijk": []},
}
FAST_RETRY = RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.05)


def run(sim: Any, strategy: str = "parallel", **kw: Any) -> Any:
    # generate() takes a config or the policy keywords, not both: the keywords a test gives go into its config
    policy = {n: kw.pop(n) for n in ("deadline_s", "call_timeout_s", "max_retries", "k") if n in kw}
    kw.setdefault("config", GeneratorConfig(retry=FAST_RETRY).with_policy(**policy))
    return asyncio.run(generate(REQ, strategy, base_url=sim.base_url, sim_key="k1", **kw))


def max_overlap(records: list[CallRecord]) -> int:
    events = sorted(
        [(r.t_start, 1) for r in records] + [(r.t_end, -1) for r in records], key=lambda e: (e[0], e[1])
    )
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def test_registry_has_the_three_strategies() -> None:
    assert {"sequential", "parallel", "bounded"} <= set(names())


def test_parallel_calls_overlap(fresh: Any) -> None:
    fresh.configure(time_scale=0.05)
    gen = run(fresh, "parallel")
    assert gen.complete and len(gen.records) == 6
    assert max(r.t_start for r in gen.records) < min(r.t_end for r in gen.records)
    assert gen.wall_s < gen.sum_latency_s * 0.6
    for part in ALL_PARTS:
        assert gen.parts[part], part
    assert len(gen.parts[Part.SYNONIEMEN]) == 5 and isinstance(gen.parts[Part.TOELICHTING], str)


def test_sequential_calls_never_overlap(fresh: Any) -> None:
    gen = run(fresh, "sequential")
    recs = sorted(gen.records, key=lambda r: r.t_start)
    assert [r.part for r in recs] == [str(p) for p in ALL_PARTS]
    assert all(b.t_start >= a.t_end for a, b in itertools.pairwise(recs))
    assert max_overlap(recs) == 1
    assert gen.wall_s >= gen.sum_latency_s * 0.95


@pytest.mark.parametrize("k", [1, 2, 4])
def test_bounded_never_exceeds_k(fresh: Any, k: int) -> None:
    gen = run(fresh, "bounded", k=k)
    assert gen.complete
    assert max_overlap(gen.records) <= k
    if k > 1:
        assert max_overlap(gen.records) >= 2  # it is concurrent, not a disguised sequential run


def test_part_settings_reach_the_request(fresh: Any) -> None:
    bodies: list[dict[str, Any]] = []
    headers: list[dict[str, str]] = []

    async def hook(request: httpx2.Request) -> None:
        bodies.append(json.loads(request.content))
        headers.append(dict(request.headers))

    parts = {
        p: PartSettings(model=f"model-{p.value}", temperature=0.1 * (i + 1), max_tokens=2000 + i, count=i + 1)
        for i, p in enumerate(ALL_PARTS)
    }
    cfg = GeneratorConfig(parts=parts, retry=FAST_RETRY)

    async def main() -> Any:
        http = httpx2.AsyncClient(event_hooks={"request": [hook]})
        async with openai.AsyncOpenAI(
            base_url=fresh.base_url, api_key="x", max_retries=0, http_client=http
        ) as cl:
            return await generate(REQ, "parallel", client=cl, config=cfg, sim_key="pair-7")

    gen = asyncio.run(main())
    assert len(bodies) == 6
    for body, hdr in zip(bodies, headers, strict=True):
        first = body["messages"][-1]["content"].splitlines()[0]
        part = next(p for p in ALL_PARTS if p.value in first)
        s = parts[part]
        assert body["model"] == s.model
        assert body["temperature"] == pytest.approx(s.temperature)
        assert body["max_tokens"] == s.max_tokens
        if part is not Part.TOELICHTING:
            assert first.startswith(f"Geef precies {s.count} {part.value}")
        assert hdr["x-sim-key"] == "pair-7" and hdr["x-sim-attempt"] == "1"
    for i, p in enumerate(ALL_PARTS):
        if p.is_list:
            assert len(gen.parts[p]) == i + 1  # the count reached the simulator and the parser


def test_one_part_always_503_degrades_that_part_only(fresh: Any) -> None:
    fresh.configure(schedule=["synoniemen=503"])
    gen = run(fresh, "parallel")
    assert gen.parts[Part.SYNONIEMEN] == []
    assert set(gen.errors) == {Part.SYNONIEMEN} and "http_503" in gen.errors[Part.SYNONIEMEN]
    syn = [r for r in gen.records if r.part == "synoniemen"]
    assert [r.attempt for r in syn] == [1, 2, 3]
    assert {(r.status, r.http_status, r.error_kind) for r in syn} == {("error", 503, "http_503")}
    assert all(gen.parts[p] for p in ALL_PARTS if p is not Part.SYNONIEMEN)


def test_transient_fault_is_retried_and_recovers(fresh: Any) -> None:
    fresh.configure(schedule=["antoniemen=500@1"])
    gen = run(fresh, "parallel")
    assert gen.complete
    ant = [r for r in gen.records if r.part == "antoniemen"]
    assert [(r.attempt, r.status) for r in ant] == [(1, "error"), (2, "ok")]


@pytest.mark.parametrize("strategy", ["sequential", "parallel", "bounded"])
def test_all_six_failing_returns_defaults(fresh: Any, strategy: str) -> None:
    fresh.configure(schedule=["*=500"])
    gen = run(fresh, strategy, max_retries=1)
    assert gen.parts == {p: p.empty() for p in ALL_PARTS}
    assert set(gen.errors) == set(ALL_PARTS) and gen.n_ok == 0
    assert len(gen.records) == 12 and {r.status for r in gen.records} == {"error"}


def test_retry_honours_retry_after(fresh: Any) -> None:
    fresh.configure(schedule=["*=429@1"], time_scale=0.05)
    # A backoff far above the server's hint proves the hint, not the backoff, set the wait.
    cfg = GeneratorConfig(retry=RetryPolicy(max_retries=2, backoff_base_s=5.0, backoff_cap_s=5.0))
    gen = run(fresh, "parallel", config=cfg)
    assert gen.complete
    for part in ALL_PARTS:
        first, second = sorted((r for r in gen.records if r.part == str(part)), key=lambda r: r.attempt)
        assert (first.status, first.http_status, first.error_kind) == ("rate_limited", 429, "rate_limited")
        assert first.retry_after_s is not None and first.retry_after_s > 0
        gap = second.t_start - first.t_end
        assert gap >= first.retry_after_s - 0.002
        assert gap < 2.0
        assert second.status == "ok"


def test_malformed_and_truncated(fresh: Any) -> None:
    fresh.configure(schedule=["synoniemen=malformed", "praktijkvoorbeelden=truncated"])
    gen = run(fresh, "parallel")
    syn = [r for r in gen.records if r.part == "synoniemen"]
    assert len(syn) == 1 and syn[0].error_kind == "malformed"  # a broken body is not retried
    assert gen.parts[Part.SYNONIEMEN] == [] and Part.SYNONIEMEN in gen.errors
    prak = [r for r in gen.records if r.part == "praktijkvoorbeelden"]
    assert len(prak) == 1 and prak[0].finish_reason == "length" and prak[0].error_kind == "truncated"
    assert Part.PRAKTIJKVOORBEELDEN not in gen.errors
    assert gen.shortfalls.get(Part.PRAKTIJKVOORBEELDEN, 0) >= 1


def test_dropped_connection_is_retried(fresh: Any) -> None:
    fresh.configure(schedule=["toelichting=drop@1"])
    gen = run(fresh, "parallel")
    toe = sorted((r for r in gen.records if r.part == "toelichting"), key=lambda r: r.attempt)
    assert [(r.status, r.error_kind) for r in toe] == [("error", "connection"), ("ok", None)]
    assert gen.complete


def test_bad_request_is_not_retried(fresh: Any) -> None:
    async def main() -> tuple[Any, list[CallRecord]]:
        state = RunState()
        async with openai.AsyncOpenAI(base_url=fresh.base_url, api_key="x", max_retries=0) as cl:
            caller = Caller(cl, state, retry=FAST_RETRY, call_timeout_s=5)
            settings = GeneratorConfig().settings(Part.SYNONIEMEN)
            out = await caller.call_part(
                Call.for_part(Request(begrip="besluit"), Part.SYNONIEMEN, settings, messages=[])
            )
        return out, state.records

    out, records = asyncio.run(main())
    assert out.value == [] and out.error and "bad_request" in out.error
    assert [(r.status, r.http_status, r.error_kind) for r in records] == [("error", 400, "bad_request")]


def test_not_found_is_not_retried(fresh: Any) -> None:
    wrong = fresh.base_url.removesuffix("/v1") + "/nope/v1"
    gen = asyncio.run(generate(REQ, "parallel", base_url=wrong, config=GeneratorConfig(retry=FAST_RETRY)))
    assert len(gen.records) == 6 and {r.http_status for r in gen.records} == {404}
    assert set(gen.errors) == set(ALL_PARTS)


@pytest.mark.parametrize("strategy", ["parallel", "sequential"])
def test_deadline_cuts_a_hanging_part(fresh: Any, strategy: str) -> None:
    fresh.configure(schedule=["toelichting=hang"])
    t0 = time.monotonic()
    gen = run(fresh, strategy, deadline_s=0.6, call_timeout_s=30)
    elapsed = time.monotonic() - t0
    # The deadline counts from the call to generate() (client set-up included), so the caller waits the
    # deadline and not much more; wall_s starts later, when the strategy does, and cannot exceed that.
    assert 0.6 - 0.01 <= elapsed < 0.6 + 0.35
    assert gen.wall_s <= elapsed
    toe = [r for r in gen.records if r.part == "toelichting"]
    assert len(toe) == 1 and toe[0].status == "timeout"
    assert toe[0].t_end == pytest.approx(0.6, abs=0.3)
    assert gen.parts[Part.TOELICHTING] == "" and "timeout" in gen.errors[Part.TOELICHTING]
    assert set(gen.errors) == {Part.TOELICHTING}


def test_per_call_timeout_is_retried_then_degrades(fresh: Any) -> None:
    fresh.configure(schedule=["antoniemen=hang"])
    gen = run(fresh, "parallel", call_timeout_s=0.15, max_retries=1)
    ant = [r for r in gen.records if r.part == "antoniemen"]
    assert [(r.attempt, r.status, r.error_kind) for r in ant] == [
        (1, "timeout", "timeout"),
        (2, "timeout", "timeout"),
    ]
    assert set(gen.errors) == {Part.ANTONIEMEN}


@pytest.mark.parametrize("strategy", ["parallel", "sequential", "bounded"])
def test_cancellation_cancels_every_call_cleanly(fresh: Any, strategy: str) -> None:
    fresh.configure(time_scale=0.5)  # 1 s calls: certainly in flight when we cancel
    records: list[CallRecord] = []
    problems: list[dict[str, Any]] = []

    async def main() -> set[asyncio.Task[Any]]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: problems.append(ctx))
        task = asyncio.create_task(
            generate(REQ, strategy, base_url=fresh.base_url, on_record=records.append, k=3)
        )
        # Cancel once the calls are in flight at the simulator (not after a fixed sleep, which a loaded
        # machine can spend before the first call has left), and well before the first 1 s call ends.
        async with asyncio.timeout(10):
            while (await asyncio.to_thread(fresh.counters))["in_flight"] < expected:  # noqa: ASYNC110
                await asyncio.sleep(0.005)  # (polling another server's gauge: no event to wait on)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    expected = {"sequential": 1, "parallel": 6, "bounded": 3}[strategy]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leftover = asyncio.run(main())
        gc.collect()
    assert not leftover
    assert not problems, problems
    assert not [w for w in caught if issubclass(w.category, ResourceWarning | RuntimeWarning)], caught
    assert len(records) == expected
    assert {r.status for r in records} == {"cancelled"}


def test_bad_input_raises_before_any_call(fresh: Any) -> None:
    with pytest.raises(InvalidRequest):
        asyncio.run(generate({"begrip": "  "}, base_url=fresh.base_url))
    with pytest.raises(InvalidRequest):
        generate_sync({"begrip": "besluit", "context": {"juridisch": "x"}}, base_url=fresh.base_url)
    with pytest.raises(ValueError, match="unknown strategy"):
        asyncio.run(generate(REQ, "warp", base_url=fresh.base_url))
    assert fresh.counters()["requests_total"] == 0


def test_generate_sync_without_and_inside_a_running_loop(fresh: Any) -> None:
    gen = generate_sync(REQ, "parallel", base_url=fresh.base_url)
    assert gen.complete

    async def notebook_cell() -> Any:
        return generate_sync(REQ, "sequential", base_url=fresh.base_url)

    inner = asyncio.run(notebook_cell())
    assert inner.complete and inner.strategy == "sequential"
    again = asyncio.run(notebook_cell())  # the background loop is reused
    assert again.complete


def test_paired_sim_key_gives_same_latencies(fresh: Any) -> None:
    fresh.configure(profile="definitie-app", time_scale=0.01)
    a = run(fresh, "sequential")
    b = run(fresh, "parallel")
    la = {r.part: r.latency_s for r in a.records}
    lb = {r.part: r.latency_s for r in b.records}
    slowest = max(la, key=la.__getitem__)
    assert max(lb, key=lb.__getitem__) == slowest


def test_generation_json_has_no_secrets(fresh: Any) -> None:
    gen = asyncio.run(generate(REQ, base_url=fresh.base_url, api_key="sk-secret-123"))
    text = json.dumps(gen.to_dict())
    assert "sk-secret-123" not in text and "x-sim-key" not in text


def test_injected_client_retries_are_ours(fresh: Any) -> None:
    fresh.configure(schedule=["synoniemen=503@1"])

    async def main() -> Any:
        async with openai.AsyncOpenAI(base_url=fresh.base_url, api_key="x", max_retries=5) as cl:
            return await generate(REQ, client=cl, config=GeneratorConfig(retry=FAST_RETRY))

    gen = asyncio.run(main())
    syn = sorted((r for r in gen.records if r.part == "synoniemen"), key=lambda r: r.attempt)
    assert [(r.attempt, r.http_status) for r in syn] == [(1, 503), (2, 200)]  # the SDK did not retry silently
    assert fresh.counters()["requests_total"] == 7


# ---- one config per generation; numbers that are not numbers ----------------------------------------------


def test_a_config_and_policy_keywords_together_are_a_type_error() -> None:
    """Merged, a run's two values for one setting left it unclear which one ran; now it is one or the other."""
    with pytest.raises(TypeError, match="GeneratorConfig or the keywords deadline_s, k, not both"):
        generate_sync(
            REQ, "bounded", config=GeneratorConfig(), deadline_s=5.0, k=2, base_url="http://x.invalid"
        )


def test_policy_keywords_build_the_config(fresh: Any) -> None:
    gen = asyncio.run(generate(REQ, "bounded", base_url=fresh.base_url, k=1, max_retries=0, deadline_s=30.0))
    assert gen.complete and max_overlap(gen.records) == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_deadline_that_is_not_a_finite_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="deadline_s must be a finite number"):
        generate_sync(REQ, deadline_s=bad, base_url="http://x.invalid")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: GeneratorConfig(call_timeout_s=float("nan")), "call_timeout_s"),
        (lambda: GeneratorConfig(deadline_s=float("nan")), "deadline_s"),
        (lambda: GeneratorConfig(k=float("nan")), "k"),  # type: ignore[arg-type]
        (lambda: RetryPolicy(backoff_base_s=float("nan")), "backoff_base_s"),
        (lambda: RetryPolicy(retry_after_cap_s=float("inf")), "retry_after_cap_s"),
        (lambda: PartSettings(model="m", temperature=float("nan"), max_tokens=1, count=1), "temperature"),
    ],
)
def test_config_numbers_must_be_finite(make: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make()


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_a_call_timeout_from_the_environment_must_be_finite(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOORBEELDEN_CALL_TIMEOUT_S", raw)
    with pytest.raises(ValueError, match=f"VOORBEELDEN_CALL_TIMEOUT_S='{raw}' is not a finite number"):
        GeneratorConfig()


# ---- the simulator's headers go to the simulator only ------------------------------------------------------


def test_no_simulator_header_reaches_an_endpoint_that_is_not_the_simulator() -> None:
    """An OpenAI-compatible endpoint (here a fake one on a loopback port nobody serves /health on) never sees
    x-sim-attempt or x-sim-key, whatever sim_key the run was given."""
    sent: list[dict[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append({k.lower(): v for k, v in request.headers.items()})
        body = json.loads(request.content)
        text = "\n".join(f"{i}. woord{i}" for i in range(1, 6))
        if "toelichting" in body["messages"][-1]["content"].splitlines()[0].lower():
            text = "Een toelichting."
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return httpx2.Response(200, json={"id": "x", "object": "chat.completion", "choices": [choice]})

    async def main() -> Any:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        async with openai.AsyncOpenAI(
            base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0, http_client=http
        ) as cl:
            return await generate(
                REQ, "split", client=cl, sim_key="pair-7", config=GeneratorConfig(retry=FAST_RETRY)
            )

    asyncio.run(main())
    assert sent and all(not k.startswith("x-sim-") for headers in sent for k in headers), sent[0]


def test_the_simulator_is_recognised_by_its_health_answer(fresh: Any) -> None:
    from voorbeelden.backend import is_simulator

    assert asyncio.run(is_simulator(fresh.base_url))
    assert not asyncio.run(is_simulator("http://127.0.0.1:9/v1"))  # nothing listens there
    assert not asyncio.run(is_simulator("https://api.openai.com/v1"))  # remote: not even asked
    assert not asyncio.run(is_simulator(None))


def test_another_server_answering_health_is_not_the_simulator() -> None:
    """llama.cpp's server answers ``GET /health`` with ``{"status": "ok"}`` too: not the simulator."""
    from aiohttp import web

    from voorbeelden.backend import is_simulator

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def main() -> bool:
        app = web.Application()
        app.router.add_get("/health", health)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            return await is_simulator(f"http://127.0.0.1:{port}/v1")
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) is False

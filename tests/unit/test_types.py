"""Request validation: every bad input is refused before any model call, every real begrip is accepted."""

from __future__ import annotations

import json

import pytest

from voorbeelden.begrippen import load_bad_inputs, load_begrippen
from voorbeelden.types import ALL_PARTS, CallRecord, Generation, InvalidRequest, Part, Request


def test_every_begrip_is_accepted() -> None:
    requests = load_begrippen()
    assert len(requests) >= 24, "the shipped data set needs at least 24 terms"
    assert {r.begrip for r in requests} >= {"besluit", "verdachte", "overeenkomst"}
    for req in requests:
        assert req.definitie and set(req.context) <= {"organisatorisch", "juridisch", "wettelijk"}


@pytest.mark.parametrize("case", load_bad_inputs(), ids=lambda c: c["case"])
def test_bad_inputs_are_rejected(case: dict) -> None:
    with pytest.raises(InvalidRequest) as info:
        Request.coerce({k: v for k, v in case.items() if k != "case"})
    assert len(str(info.value)) > 10


def test_bad_inputs_present() -> None:
    assert len(load_bad_inputs()) >= 5


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"begrip": ""}, "empty"),
        ({"begrip": " \t "}, "control"),  # a tab is a control character in a term
        ({"begrip": "   "}, "empty"),
        ({"begrip": "a\x00b"}, "control"),
        ({"begrip": "x" * 201}, "maximum"),
        ({"begrip": "besluit", "definitie": "d" * 4001}, "maximum"),
        ({"begrip": "besluit", "context": ["juridisch"]}, "mapping"),
        ({"begrip": "besluit", "context": {"juridisch": "Bestuursrecht"}}, "list of strings"),
        ({"begrip": "besluit", "context": {"juridisch": [1]}}, "strings"),
        ({"begrip": "besluit", "context": {"sociaal": []}}, "unknown"),
        ({"begrip": 42}, "text"),
    ],
)
def test_invalid_fields_have_clear_messages(fields: dict, fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment):
        Request.coerce(fields)


def test_limits_are_inclusive() -> None:
    Request(begrip="x" * 200, definitie="d" * 4000)


def test_context_normalised() -> None:
    req = Request.coerce(
        {"begrip": " besluit ", "context": {"juridisch": [" Bestuursrecht ", ""]}, "bron": "x"}
    )
    assert req.begrip == "besluit"
    assert req.context == {"juridisch": ("Bestuursrecht",)}
    assert req.to_dict()["context"] == {"juridisch": ["Bestuursrecht"]}


def test_coerce_rejects_other_types() -> None:
    with pytest.raises(InvalidRequest):
        Request.coerce(["besluit"])  # type: ignore[arg-type]


def test_generation_summary_and_dict() -> None:
    req = Request(begrip="besluit")
    recs = [
        CallRecord(part="synoniemen", attempt=1, t_start=0.0, t_end=1.0, latency_s=1.0, status="error"),
        CallRecord(part="synoniemen", attempt=2, t_start=1.5, t_end=2.0, latency_s=0.5),
        CallRecord(part="antoniemen", attempt=1, t_start=0.0, t_end=1.2, latency_s=1.2),
    ]
    gen = Generation(
        request=req,
        strategy="parallel",
        parts={p: p.empty() for p in ALL_PARTS},
        records=recs,
        wall_s=2.0,
        errors={Part.TOELICHTING: "x"},
    )
    assert gen.n_ok == 5 and gen.n_failed == 1
    assert gen.sum_latency_s == pytest.approx(2.7)
    assert gen.max_latency_s == pytest.approx(1.5)
    assert {r.attempt for r in gen.final_records() if r.part == "synoniemen"} == {2}
    d = gen.to_dict()
    json.dumps(d)
    assert d["parts"]["toelichting"] == ""
    assert str(Part.SYNONIEMEN) == "synoniemen"

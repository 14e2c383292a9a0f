"""Property tests for request validation: every valid request passes unchanged, every invalid one is refused
with a message that names what is wrong."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voorbeelden.types import (
    CONTEXT_KEYS,
    MAX_BEGRIP_CHARS,
    MAX_BEGRIP_WORDS,
    MAX_DEFINITIE_CHARS,
    InvalidRequest,
    Request,
)

word = st.text(alphabet=string.ascii_lowercase + "éëïöüáàç-'", min_size=1, max_size=20).filter(
    lambda w: w.strip("-'") != ""
)
begrip = (
    st.lists(word, min_size=1, max_size=MAX_BEGRIP_WORDS)
    .map(" ".join)
    .filter(
        lambda b: (
            len(b) <= MAX_BEGRIP_CHARS
            and not any(bad in b for bad in ("negeer", "vergeet", "ignore", "prompt"))
        )
    )
)
printable = st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=80)
definitie = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), include_characters="\n\t\r"),
    max_size=MAX_DEFINITIE_CHARS,
)
context = st.dictionaries(st.sampled_from(CONTEXT_KEYS), st.lists(printable, max_size=5), max_size=3)
control = st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\n", "\t"])


@settings(max_examples=200, deadline=None)
@given(begrip, definitie, context)
def test_every_valid_request_is_accepted_and_kept(b: str, d: str, c: dict[str, list[str]]) -> None:
    r = Request(begrip=b, definitie=d, context=c)
    assert r.begrip == b.strip()
    assert r.definitie == d.strip()
    assert set(r.context) == set(c)
    for key, values in c.items():
        assert list(r.context[key]) == [v.strip() for v in values if v.strip()]


@settings(max_examples=200, deadline=None)
@given(begrip, control, st.integers(0, 50))
def test_a_control_character_in_the_begrip_is_named(b: str, ch: str, at: int) -> None:
    at = min(at, len(b) - 1)
    bad = b[:at] + ch + b[at:] + "x"  # the character sits inside the term, not only at an edge
    with pytest.raises(InvalidRequest, match="control characters"):
        Request(begrip=bad, definitie="Iets.")


@settings(max_examples=50, deadline=None)
@given(st.integers(MAX_BEGRIP_CHARS + 1, MAX_BEGRIP_CHARS * 3))
def test_a_begrip_over_the_limit_says_the_limit(n: int) -> None:
    with pytest.raises(InvalidRequest, match=str(MAX_BEGRIP_CHARS)):
        Request(begrip="b" * n)


@settings(max_examples=50, deadline=None)
@given(st.integers(MAX_DEFINITIE_CHARS + 1, MAX_DEFINITIE_CHARS * 3))
def test_a_definitie_over_the_limit_says_the_limit(n: int) -> None:
    with pytest.raises(InvalidRequest, match=f"{MAX_DEFINITIE_CHARS}"):
        Request(begrip="besluit", definitie="d" * n)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(CONTEXT_KEYS),
    st.one_of(
        st.integers(), st.text(max_size=10), st.none(), st.lists(st.integers(), min_size=1, max_size=3)
    ),
)
def test_a_context_that_is_not_lists_of_strings_is_refused_by_key(key: str, value: object) -> None:
    with pytest.raises(InvalidRequest, match=f"context\\['{key}'\\]"):
        Request(begrip="besluit", context={key: value})


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=20))
def test_a_blank_begrip_is_refused_as_empty(b: str) -> None:
    with pytest.raises(InvalidRequest, match=r"empty|control"):
        Request(begrip=b)

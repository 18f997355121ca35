"""Durations: the forms an operator writes, the traps, and the round trip with format_duration."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoheal.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("1500ms", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2.5s", 2.5),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("1h1m1s500ms", 3661.5),
        ("0s", 0.0),
        ("0", 0.0),
        ("15", 15.0),
        ("0.25", 0.25),
        ("  10s ", 10.0),
        (15, 15.0),
        (2.5, 2.5),
        (0, 0.0),
        (-0.0, 0.0),
    ],
)
def test_parse_duration_accepts_the_documented_forms(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("-5s", "negative"),
        ("-1", "negative"),
        (-1, "negative"),
        (-0.5, "negative"),
        ("", "empty"),
        ("   ", "empty"),
        (True, "bool"),
        (False, "bool"),
        ("abc", "invalid duration"),
        ("15x", "invalid duration"),
        ("s", "invalid duration"),
        ("1.s", "invalid duration"),
        ("1e3s", "invalid duration"),
        ("15 s", "invalid duration"),
        ("30s1m", "largest to smallest"),
        ("1m1m", "largest to smallest"),
        ("inf", "invalid duration"),
        (math.inf, "finite"),
        (math.nan, "finite"),
        ("9" * 400, "finite"),
        (10**400, "too large"),
        (None, "NoneType"),
        ([1], "list"),
    ],
)
def test_parse_duration_rejects_with_a_clear_message(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_duration(value)  # type: ignore[arg-type]


def test_parse_duration_message_shows_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match=r"'15s', '1500ms'"):
        parse_duration("fast")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (0.001, "1ms"),
        (300, "5m"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400.0, "1h30m"),
        (15, "15s"),
        (0, "0s"),
        (1e-05, "0.01ms"),
    ],
)
def test_format_duration_reads_like_a_human_wrote_it(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan, True])
def test_format_duration_rejects_what_parse_would(bad: float) -> None:
    with pytest.raises(ValueError):
        format_duration(bad)


@settings(deadline=None)  # pure and fast; a loaded CI box must not make it flaky
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_format_then_parse_round_trips_every_float(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@settings(deadline=None)  # pure and fast; a loaded CI box must not make it flaky
@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_round_trips_every_int(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@settings(deadline=None)  # pure and fast; a loaded CI box must not make it flaky
@given(st.one_of(st.text(), st.text(alphabet="0123456789.hms- "), st.integers(), st.floats()))
def test_parse_duration_raises_only_value_error(value: str | int | float) -> None:
    try:
        result = parse_duration(value)
    except ValueError:
        return
    assert math.isfinite(result)
    assert result >= 0

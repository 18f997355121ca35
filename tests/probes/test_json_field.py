"""judge_age / judge_equals (issue 22): pure judgements of one JSON field, both clocks passed in."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.reasons import JSON_FIELD_TYPE, JSON_STALE, JSON_VALUE_MISMATCH
from autoheal.probes.json_field import judge_age, judge_equals, timestamp_of

pytestmark = [pytest.mark.timeout(60)]

WALL = 1_796_670_000.0  # 2026-12-07 19:00:00 UTC
MONO = 5_000.0


def age(value: object, *, max_age: float = 60.0, unit: str = "s"):
    return judge_age(value, where="/ts", max_age=max_age, unit=unit, now_wall=WALL, now_mono=MONO)


def test_fresh_epoch_seconds_report_age_and_the_moment_they_turn_stale() -> None:
    result = age(WALL - 4.0)
    assert (result.ok, result.reason, result.threshold) == (True, "", 60.0)
    assert result.value == pytest.approx(4.0)
    assert result.recheck_at == pytest.approx(MONO + 56.0)
    assert "age 4.000 s" in result.detail


def test_stale_epoch_seconds_say_the_age() -> None:
    result = age(WALL - 75.5)
    assert (result.ok, result.reason) == (False, JSON_STALE)
    assert result.value == pytest.approx(75.5)
    assert result.detail == "/ts age 75.500 s > 60.0 s"
    assert result.recheck_at is None


def test_at_exactly_max_age_is_still_fresh() -> None:
    assert age(WALL - 60.0).ok


def test_milliseconds_with_unit_ms() -> None:
    assert age((WALL - 4.0) * 1000, unit="ms").value == pytest.approx(4.0)
    assert age((WALL - 4.0) * 1000, unit="s").ok  # far in the future: age 0, said in detail
    assert age(int((WALL - 90.0) * 1000), unit="ms").reason == JSON_STALE


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-07 18:59:56+00:00",  # freqtrade's last_process
        "2026-12-07T18:59:56Z",
        "2026-12-07T19:59:56+01:00",
        "2026-12-07T18:59:56.000+00:00",
    ],
)
def test_iso_strings_with_an_offset(text: str) -> None:
    result = age(text)
    assert result.ok and result.value == pytest.approx(4.0)


def test_future_timestamp_is_age_zero_and_the_detail_says_so() -> None:
    result = age(WALL + 30.0)
    assert (result.ok, result.value) == (True, 0.0)
    assert "30.000 s in the future, taken as age 0" in result.detail
    assert result.recheck_at == pytest.approx(MONO + 60.0)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (True, "boolean"),
        (None, "null"),
        ([WALL], "array"),
        ({"ts": WALL}, "object"),
        ("yesterday", "not an ISO-8601 timestamp"),
        ("2026-12-07 18:59:56", "without a UTC offset"),  # names no instant
        ("2026-12-07", "without a UTC offset"),
        (str(WALL), "not an ISO-8601 timestamp"),  # a number in a string is not a number
        (10**400, "too large"),
    ],
)
def test_what_is_not_a_timestamp_is_field_type(value: object, words: str) -> None:
    result = age(value)
    assert (result.ok, result.reason) == (False, JSON_FIELD_TYPE)
    assert words in result.detail and result.detail.startswith("/ts ")


@given(st.floats(min_value=0, max_value=1e6), st.floats(min_value=0.001, max_value=1e5))
def test_age_judgement_matches_the_rule(back: float, max_age: float) -> None:
    result = age(WALL - back, max_age=max_age)
    exact = WALL - (WALL - back)  # the float the judge computes
    assert result.ok == (exact <= max_age)
    assert result.reason == ("" if result.ok else JSON_STALE)
    assert result.value == pytest.approx(max(exact, 0.0))
    if result.ok:
        assert result.recheck_at is not None and result.recheck_at >= MONO


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)))
def test_iso_and_epoch_of_one_instant_agree(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    plus2 = aware.astimezone(timezone(timedelta(hours=2)))
    epoch = aware.timestamp()
    assert timestamp_of(aware.isoformat()) == pytest.approx(epoch)
    assert timestamp_of(plus2.isoformat()) == pytest.approx(epoch)
    assert timestamp_of(epoch * 1000, "ms") == pytest.approx(epoch)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_no_timestamp(bad: float) -> None:
    assert isinstance(timestamp_of(bad), str)


# ------------------------------------------------------------------------ equals


@pytest.mark.parametrize(
    ("field", "expected"),
    [("running", "running"), (1, 1), (1, 1.0), (2.5, 2.5), (True, True), (False, False)],
)
def test_equals_ok(field: object, expected: str | float | bool) -> None:
    result = judge_equals(field, expected, where="/state")
    assert (result.ok, result.reason) == (True, "")


@pytest.mark.parametrize(
    ("field", "expected"),
    [("stopped", "running"), (2, 1), (False, True), ("", "running"), (0.1 + 0.2, 0.3)],
)
def test_equals_mismatch_within_a_type(field: object, expected: str | float | bool) -> None:
    result = judge_equals(field, expected, where="/state")
    assert (result.ok, result.reason) == (False, JSON_VALUE_MISMATCH)
    assert result.detail == f"/state is {field!r}, expected {expected!r}"


@pytest.mark.parametrize(
    ("field", "expected"),
    [(1, True), (True, 1), (0, False), ("1", 1), (1, "1"), (None, "running"), (["x"], "x")],
)
def test_equals_across_json_types_is_field_type(
    field: object, expected: str | float | bool
) -> None:
    result = judge_equals(field, expected, where="/state")
    assert (result.ok, result.reason) == (False, JSON_FIELD_TYPE)


def test_equals_detail_is_cut_short_and_escapes_control_characters() -> None:
    result = judge_equals("x\x1b[2J" * 100, "running", where="/state")
    assert "\x1b" not in result.detail
    assert len(result.detail) < 120


def test_equals_reports_a_number_field_as_value() -> None:
    assert judge_equals(3, 4, where="/n").value == 3.0
    assert judge_equals("3", "4", where="/n").value is None
    assert judge_equals(True, True, where="/n").value is None

"""judge_timestamp: pure edge cases of a heartbeat timestamp, with both clocks passed in."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.probes import HEARTBEAT_INVALID, HEARTBEAT_MISSING, HEARTBEAT_STALE, WS_STALE
from autoheal.probes.freshness import judge_timestamp
from autoheal.store.atomic import ReadResult

WALL = 1_700_000_000.0
MONO = 5_000.0


def judge(doc: object, *, field: str = "ts", max_age: float = 10.0, reason: str = HEARTBEAT_STALE):
    read = doc if isinstance(doc, ReadResult) else ReadResult(doc)  # type: ignore[arg-type]
    return judge_timestamp(
        read, field=field, max_age=max_age, stale_reason=reason, now_wall=WALL, now_mono=MONO
    )


def test_judge_fresh_reports_age_and_the_moment_it_turns_stale() -> None:
    result = judge({"ts": WALL - 4.0})
    assert result.ok and result.reason == ""
    assert result.value == pytest.approx(4.0)
    assert result.threshold == 10.0
    assert result.recheck_at == pytest.approx(MONO + 6.0)


def test_judge_exactly_max_age_is_still_fresh_and_rechecks_now() -> None:
    result = judge({"ts": WALL - 10.0})
    assert result.ok
    assert result.recheck_at == pytest.approx(MONO)


def test_judge_stale_has_no_recheck() -> None:
    result = judge({"ts": WALL - 10.5})
    assert (result.ok, result.reason) == (False, HEARTBEAT_STALE)
    assert result.value == pytest.approx(10.5)
    assert result.recheck_at is None


def test_judge_other_field_uses_its_own_stale_reason() -> None:
    doc = {"ts": WALL, "ws_last_msg_ts": WALL - 30}
    assert judge(doc, field="ws_last_msg_ts", reason=WS_STALE).reason == WS_STALE
    assert judge(doc, field="ws_last_msg_ts", max_age=60, reason=WS_STALE).ok


def test_judge_integer_ts_is_accepted() -> None:
    assert judge({"ts": int(WALL) - 1}).ok


def test_judge_small_future_skew_is_fresh_with_age_zero() -> None:
    result = judge({"ts": WALL + 1.0})
    assert result.ok and result.value == 0.0
    assert result.recheck_at == pytest.approx(MONO + 11.0)


@pytest.mark.parametrize(
    ("read", "reason", "detail_part"),
    [
        (ReadResult(None, "missing"), HEARTBEAT_MISSING, "no file"),
        (ReadResult(None, "invalid", "unexpected end"), HEARTBEAT_INVALID, "invalid"),
        (ReadResult(None, "too_large", "more than 10 bytes"), HEARTBEAT_INVALID, "too_large"),
        (ReadResult(None, "not_object", "top level is list"), HEARTBEAT_INVALID, "not_object"),
        (ReadResult(None, "unreadable", "is a directory"), HEARTBEAT_INVALID, "unreadable"),
        (ReadResult({}), HEARTBEAT_INVALID, "missing"),
        (ReadResult({"ts": None}), HEARTBEAT_INVALID, "missing"),
        (ReadResult({"ts": "1700000000"}), HEARTBEAT_INVALID, "str"),
        (ReadResult({"ts": True}), HEARTBEAT_INVALID, "bool"),
        (ReadResult({"ts": [WALL]}), HEARTBEAT_INVALID, "list"),
        (ReadResult({"ts": {"s": WALL}}), HEARTBEAT_INVALID, "dict"),
        (ReadResult({"ts": math.nan}), HEARTBEAT_INVALID, "finite"),
        (ReadResult({"ts": math.inf}), HEARTBEAT_INVALID, "finite"),
        (ReadResult({"ts": 10**400}), HEARTBEAT_INVALID, "finite"),
        (ReadResult({"ts": WALL + 3600}), HEARTBEAT_INVALID, "future"),
    ],
)
def test_judge_bad_input_is_a_reason_not_an_exception(
    read: ReadResult, reason: str, detail_part: str
) -> None:
    result = judge(read)
    assert (result.ok, result.reason) == (False, reason)
    assert detail_part in result.detail
    assert result.recheck_at is None


@given(
    age=st.floats(-4.9, 1e6, allow_nan=False),
    max_age=st.floats(0.001, 1e5, allow_nan=False),
)
def test_judge_fresh_iff_age_within_max_age(age: float, max_age: float) -> None:
    result = judge({"ts": WALL - age}, max_age=max_age)
    real_age = WALL - (WALL - age)  # what the function sees after float rounding
    assert result.ok == (real_age <= max_age)
    if result.ok:
        assert result.recheck_at is not None
        assert result.recheck_at >= MONO
        assert result.recheck_at == pytest.approx(MONO + max_age - real_age)
    else:
        assert result.reason == HEARTBEAT_STALE

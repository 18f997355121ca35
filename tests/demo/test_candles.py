"""The candle book: what a bot reads as history must agree with the ticks it recorded.

Pure: records at chosen times (no clock), candles read back.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.demo.candles import INTERVALS, LISTED_BEFORE_MS, Candle, CandleBook

pytestmark = [pytest.mark.timeout(60)]

MINUTE = 60_000
START_MS = 1_699_999_980_000  # a whole minute
prices = st.floats(min_value=0.01, max_value=1e6, allow_nan=False)
# (ms since the last record, price): up to an hour and a half of ticks, gaps included.
ticks = st.lists(st.tuples(st.integers(0, 10 * MINUTE), prices), min_size=1, max_size=60)


def recorded(steps: list[tuple[int, float]]) -> tuple[CandleBook, list[tuple[int, float]]]:
    book = CandleBook()
    now, seen = START_MS, []
    for gap, price in steps:
        now += gap
        book.record({"X": price}, now)
        seen.append((now, price))
    return book, seen


@given(ticks, st.sampled_from(sorted(INTERVALS)), st.integers(1, 1000))
def test_klines_are_aligned_contiguous_bounded_and_consistent(
    steps: list[tuple[int, float]], interval: str, limit: int
) -> None:
    book, seen = recorded(steps)
    now = seen[-1][0]
    step = INTERVALS[interval] * MINUTE
    candles = book.klines("X", INTERVALS[interval], now_ms=now, limit=limit)
    assert 1 <= len(candles) <= limit
    assert candles[-1].open_ms == now // step * step  # the current, still open, one
    for earlier, later in itertools.pairwise(candles):
        assert later.open_ms - earlier.open_ms == step
    for candle in candles:
        assert candle.open_ms % step == 0
        assert candle.low <= min(candle.open, candle.close)
        assert candle.high >= max(candle.open, candle.close)


@given(ticks)
def test_every_tick_lies_in_its_minute_and_each_minute_closes_at_its_last_tick(
    steps: list[tuple[int, float]],
) -> None:
    book, seen = recorded(steps)
    last_in_minute: dict[int, float] = {}
    for ts, price in seen:
        candle = book.candle("X", ts // MINUTE * MINUTE, 1)
        assert candle.low <= price <= candle.high
        last_in_minute[ts // MINUTE] = price
    for minute, price in last_in_minute.items():
        assert book.candle("X", minute * MINUTE, 1).close == price


@given(ticks, st.sampled_from([3, 5, 15, 60]))
def test_a_long_candle_is_its_minutes_merged(steps: list[tuple[int, float]], minutes: int) -> None:
    book, seen = recorded(steps)
    now = seen[-1][0]
    for long in book.klines("X", minutes, now_ms=now, limit=5):
        parts = [book.candle("X", long.open_ms + i * MINUTE, 1) for i in range(minutes)]
        assert long.open == parts[0].open
        assert long.close == parts[-1].close
        assert long.high == max(p.high for p in parts)
        assert long.low == min(p.low for p in parts)


def test_history_before_the_first_record_is_flat_at_the_first_price_and_starts_at_listing() -> None:
    book = CandleBook()
    book.record({"X": 100.0}, START_MS + 30_000)
    book.record({"X": 105.0}, START_MS + 40_000)
    old = book.klines("X", 1, now_ms=START_MS + 40_000, limit=3)
    assert old == [
        Candle(START_MS - 2 * MINUTE, 100.0, 100.0, 100.0, 100.0),
        Candle(START_MS - MINUTE, 100.0, 100.0, 100.0, 100.0),
        Candle(START_MS, 100.0, 105.0, 100.0, 105.0),
    ]
    from_zero = book.klines("X", 1, now_ms=START_MS, start_ms=0, limit=2)
    assert from_zero[0].open_ms == START_MS - LISTED_BEFORE_MS


def test_a_minute_without_ticks_is_flat_at_the_last_close_and_the_clock_never_goes_back() -> None:
    book = CandleBook()
    book.record({"X": 100.0}, START_MS)
    book.record({"X": 90.0}, START_MS + 3 * MINUTE)
    book.record({"X": 1.0}, START_MS + MINUTE)  # earlier than the last record: ignored
    gap = book.candle("X", START_MS + MINUTE, 1)
    assert gap == Candle(START_MS + MINUTE, 100.0, 100.0, 100.0, 100.0)


def test_start_and_end_times_choose_the_window_as_the_venue_does() -> None:
    book = CandleBook()
    for i in range(10):
        book.record({"X": 100.0 + i}, START_MS + i * MINUTE)
    now = START_MS + 9 * MINUTE + 5_000
    since = book.klines("X", 1, now_ms=now, start_ms=START_MS + 1, limit=3)
    assert [c.open_ms for c in since] == [START_MS + MINUTE * i for i in (1, 2, 3)]
    until = book.klines("X", 1, now_ms=now, end_ms=START_MS + 4 * MINUTE + 1, limit=2)
    assert [c.open_ms for c in until] == [START_MS + 3 * MINUTE, START_MS + 4 * MINUTE]
    assert book.klines("X", 1, now_ms=now, start_ms=now + MINUTE, limit=5) == []


def test_old_minutes_are_dropped_but_never_the_carry() -> None:
    book = CandleBook(keep_minutes=3)
    for i in range(6):
        book.record({"X": 10.0 + i}, START_MS + i * MINUTE)
    assert book.candle("X", START_MS + 5 * MINUTE, 1).close == 15.0
    # dropped minutes read as flat at the earliest kept one's open
    assert book.candle("X", START_MS, 1).open == 13.0

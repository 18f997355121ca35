"""The fake exchange's resting book and countdown, pure: a clock passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.demo.resting import RestingBook


def book_with(n: int) -> RestingBook:
    book = RestingBook()
    for i in range(n):
        book.add("BTCUSDT", "buy", 0.01, 1000.0 + i, client_order_id=f"c{i}", now=0.0)
    return book


def test_countdown_fires_once_at_its_deadline_and_switches_off() -> None:
    book = book_with(3)
    book.arm(2.0, now=10.0)
    assert book.expire(11.999) is None and len(book.open) == 3
    gone = book.expire(12.0)
    assert gone is not None and len(gone) == 3 and book.open == {}
    assert {o["cancel_reason"] for o in book.cancelled} == {"countdown"}
    assert not book.countdown.armed and book.countdown_fired == 1
    assert book.expire(100.0) is None  # off until armed again


def test_refresh_moves_the_deadline_and_zero_disarms() -> None:
    book = book_with(1)
    book.arm(2.0, now=0.0)
    book.arm(2.0, now=1.5)
    assert book.expire(3.0) is None
    book.arm(0.0, now=3.0)
    assert book.expire(1e9) is None and len(book.open) == 1


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 86401.0])
def test_bad_countdowns_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="countdown"):
        RestingBook().arm(bad, now=0.0)


def test_cancel_all_by_symbol_keeps_the_others() -> None:
    book = book_with(2)
    book.add("ETHUSDT", "sell", 1.0, 3000.0, client_order_id="e", now=0.0)
    assert len(book.cancel_all(1.0, symbol="ETHUSDT")) == 1
    assert len(book.open) == 2 and book.cancelled[0]["cancel_reason"] == "cancel_all"


@given(st.lists(st.tuples(st.sampled_from(["arm", "expire", "add"]),
                          st.floats(min_value=0.0, max_value=5.0)), max_size=40))
def test_no_order_survives_past_an_unrefreshed_deadline(ops: list[tuple[str, float]]) -> None:
    book, now = RestingBook(), 0.0
    for i, (op, dt) in enumerate(ops):
        now += dt
        if op == "arm":
            book.arm(1.0, now)
        elif op == "add":
            book.add("BTCUSDT", "buy", 0.01, 1000.0, client_order_id=f"c{i}", now=now)
        else:
            deadline = book.countdown.deadline
            book.expire(now)
            if deadline is not None and now >= deadline:
                assert book.open == {} and not book.countdown.armed

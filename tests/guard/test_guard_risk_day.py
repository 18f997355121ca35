"""The day as a value (``autoheal.guard.risk_day``): pure, no files, no clock."""

from __future__ import annotations

from decimal import Decimal as D

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoheal.guard.risk_day import (
    Amount,
    Fill,
    RiskDay,
    Unbookable,
    apply,
    day_doc,
    fill_problem,
    parse_day,
    utc_day,
)

TODAY = "2024-05-01"


def test_utc_day_is_the_utc_date():
    assert utc_day(0.0) == "1970-01-01"
    assert utc_day(1714607999.9) == "2024-05-01" and utc_day(1714608000.0) == "2024-05-02"


def test_average_cost_realizes_on_the_reducing_side():
    day, realized = apply(
        RiskDay(TODAY),
        (
            Fill("BTCUSDT", "buy", D(1), D(100)),
            Fill("BTCUSDT", "buy", D(1), D(200)),  # average 150
            Fill("BTCUSDT", "sell", D("0.5"), D(130)),  # -10
            Fill("BTCUSDT", "sell", D("2.5"), D(160)),  # +15, flips short 1 at 160
            Fill("BTCUSDT", "buy", D(1), D(150)),  # +10, flat
        ),
        TODAY,
        None,
    )
    assert realized == (0, 0, D(-10), D(15), D(10))
    assert day.realized == D(15) and day.basis == {}


def test_a_day_rolls_forward_only_and_keeps_the_basis():
    held = RiskDay(TODAY, D(-450), True, {"BTCUSDT": (D(1), D(100))}, 2, "x")
    later, _ = apply(held, (), "2024-05-02", D(500))
    assert later == RiskDay("2024-05-02", D(0), False, {"BTCUSDT": (D(1), D(100))}, 2, "x")
    earlier, _ = apply(held, (Amount(D(-1)),), "2024-04-30", D(500))
    assert (earlier.day, earlier.realized, earlier.loss_latched) == (TODAY, D(-451), True)


def test_the_latch_is_set_at_the_limit_and_kept():
    day, _ = apply(RiskDay(TODAY), (Amount(D(-500)),), TODAY, D(500))
    assert day.loss_latched
    day, _ = apply(day, (Amount(D(300)),), TODAY, D(500))
    assert day.loss_latched and day.realized == D(-200)
    assert not apply(RiskDay(TODAY), (Amount(D(-499)),), TODAY, D(500))[0].loss_latched
    # Booked in one save (after a failed write, say), the crossing still latches.
    day, _ = apply(RiskDay(TODAY), (Amount(D(-600)), Amount(D(200))), TODAY, D(500))
    assert day.loss_latched and day.realized == D(-400)


def test_an_unbookable_is_counted_never_added():
    day, realized = apply(
        RiskDay(TODAY), (Unbookable("a"), Amount(D(-1)), Unbookable("b")), TODAY, None
    )
    assert (day.unbooked, day.unbooked_last, day.realized, realized) == (2, "b", D(-1), (0, -1, 0))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("BTCUSDT", "buy", D(1), D(1)), None),
        (("", "buy", D(1), D(1)), "symbol"),
        (("BTCUSDT", "BUY", D(1), D(1)), "side"),
        (("BTCUSDT", "buy", D(-1), D(1)), "qty=Decimal('-1') is not greater than zero"),
        (("BTCUSDT", "sell", D(1), D("Infinity")), "price=Decimal('Infinity') is not finite"),
    ],
)
def test_fill_problem(args, words):
    problem = fill_problem(*args)
    assert problem is None if words is None else words in problem


def test_the_document_round_trips():
    day = RiskDay(TODAY, D("-450.25"), True, {"ETHUSDT": (D("-2"), D("3000.5"))}, 1, "bad fill")
    doc = orjson.loads(orjson.dumps(day_doc(day, 1714521600.5)))
    assert doc == {
        "schema": 1,
        "day": TODAY,
        "realized_pnl": "-450.25",
        "loss_latched": True,
        "cost_basis": {"ETHUSDT": {"position": "-2", "avg_price": "3000.5"}},
        "unbooked": {"count": 1, "last": "bad fill"},
        "updated_at": 1714521600.5,
    }
    assert parse_day(doc).day == day


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({}, "schema"),
        ({"schema": 1, "day": "2024-5-1", "realized_pnl": "0"}, "day="),
        ({"schema": 1, "day": TODAY}, "realized_pnl=None"),
        ({"schema": 1, "day": TODAY, "realized_pnl": "sNaN"}, "not finite"),
        ({"schema": 1, "day": TODAY, "realized_pnl": "1e999999999999"}, "beyond"),
        ({"schema": 1, "day": TODAY, "realized_pnl": "0", "cost_basis": []}, "cost_basis"),
        ({"schema": 1, "day": TODAY, "realized_pnl": "0", "unbooked": {"count": True}}, "unbooked"),
    ],
)
def test_parse_day_says_why_a_document_is_not_a_day(doc, words):
    read = parse_day(doc)
    assert read.day is None and words in read.problem


amounts = st.decimals(min_value=D("0.001"), max_value=D(100000), places=3)
bookings = st.lists(
    st.one_of(
        st.builds(
            Fill,
            st.sampled_from(("BTCUSDT", "ETHUSDT")),
            st.sampled_from(("buy", "sell")),
            amounts,
            amounts,
        ),
        st.builds(Amount, st.decimals(min_value=-1000, max_value=1000, places=2)),
        st.builds(Unbookable, st.text(max_size=5)),
    ),
    max_size=30,
)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(bookings=bookings, split=st.integers(min_value=0, max_value=30))
def test_booking_in_two_saves_is_booking_in_one_and_every_day_round_trips(bookings, split):
    """What a restart does: save, read back, book the rest; the same day as in one go."""
    whole, _ = apply(RiskDay(TODAY), tuple(bookings), TODAY, D(500))
    first, _ = apply(RiskDay(TODAY), tuple(bookings[:split]), TODAY, D(500))
    reread = parse_day(orjson.loads(orjson.dumps(day_doc(first, 0.0)))).day
    assert reread == first
    rest, _ = apply(reread, tuple(bookings[split:]), TODAY, D(500))
    assert rest == whole
    assert whole.realized.is_finite()

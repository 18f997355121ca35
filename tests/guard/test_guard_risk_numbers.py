"""Issue 18 A7: a bad number is a refusal with a ``risk_*`` token, never a pass, never a raise.

Each test here failed on the branch point (59fb9bc): a mark of zero passed the notional
limits, an infinite or negative fill booked a gain no loss could cross, a NaN raised in
a later check, ``1E+999999`` overflowed the Decimal context.
"""

from __future__ import annotations

import logging
from decimal import Decimal as D

import pytest

from autoheal.guard.risk import (
    Activity,
    OpenOrder,
    RiskBook,
    RiskConfigError,
    RiskGuard,
    RiskLimits,
    RiskOrder,
    SymbolLimits,
    check_order,
    parse_limits,
    total_exposure,
)
from tests.guard.conftest import FakeClock

MARKS = {"BTCUSDT": D("50000"), "ETHUSDT": D("2000")}
BAD_MARKS = [
    D(0),
    D(-5),
    D("-0"),
    D("NaN"),
    D("sNaN"),
    D("Infinity"),
    D("-Infinity"),
    D("1E+999999"),
    D("1E-999999"),
]
BAD_AMOUNTS = [
    D(0),
    D(-1),
    D("NaN"),
    D("sNaN"),
    D("Infinity"),
    D("-Infinity"),
    D("1E+999999"),
    D("-1E+999999"),
    D("1E-999999"),
    D("1E+999999999999"),
    1.0,
    1,
    None,
    "1",
]


def book(positions=None, open_orders=(), marks=None) -> RiskBook:
    return RiskBook(
        positions=positions or {},
        open_orders=tuple(open_orders),
        marks=MARKS if marks is None else marks,
    )


def buy(qty: str, price: str | None = None, symbol: str = "BTCUSDT") -> RiskOrder:
    return RiskOrder(symbol, "buy", D(qty), None if price is None else D(price))


# -- marks: a bad one is a missing one ----------------------------------------------------------
@pytest.mark.parametrize("mark", BAD_MARKS)
def test_a_bad_mark_never_values_a_market_buy(mark):
    # 1000 BTC at market against max_order_notional = 1000: passed with a mark of 0.
    limits = parse_limits({"max_order_notional": 1000})
    verdict = check_order(limits, book(marks={"BTCUSDT": mark}), buy("1000"), 0.0)
    assert verdict.reasons == ("risk_no_reference_price",)
    assert "mark=" in verdict.details[0]


@pytest.mark.parametrize("mark", BAD_MARKS)
def test_a_bad_mark_refuses_a_collared_limit_order(mark):
    limits = parse_limits({"price_collar_pct": 5})
    verdict = check_order(limits, book(marks={"BTCUSDT": mark}), buy("1", "50000"), 0.0)
    assert verdict.reasons == ("risk_no_reference_price",)


@pytest.mark.parametrize("mark", BAD_MARKS)
def test_a_bad_mark_of_another_symbol_refuses_the_live_notional(mark):
    limits = parse_limits({"max_live_notional_total": 1000})
    held = book({"ETHUSDT": D(100)}, marks={"BTCUSDT": D(50000), "ETHUSDT": mark})
    verdict = check_order(limits, held, buy("0.001"), 0.0)
    assert verdict.reasons == ("risk_no_reference_price",)
    assert total_exposure(held) is None


def test_a_bad_mark_does_not_block_a_reducing_market_sell():
    limits = parse_limits({"max_order_notional": 1000, "max_live_notional_total": 1000})
    held = book({"BTCUSDT": D(1)}, marks={"BTCUSDT": D(0)})
    assert check_order(limits, held, RiskOrder("BTCUSDT", "sell", D(1)), 0.0).allowed


# -- the order ----------------------------------------------------------------------------------
@pytest.mark.parametrize("qty", BAD_AMOUNTS)
def test_a_bad_quantity_is_an_invalid_order(qty):
    limits = parse_limits({"max_order_notional": 1000, "max_position": 1})
    verdict = check_order(limits, book(), RiskOrder("BTCUSDT", "buy", qty), 0.0)
    assert verdict.as_tuple() == (False, ("risk_invalid_order",))


@pytest.mark.parametrize("price", [p for p in BAD_AMOUNTS if p is not None])  # None: market
def test_a_bad_price_is_an_invalid_order(price):
    limits = parse_limits({"max_order_notional": 1000, "price_collar_pct": 5})
    verdict = check_order(limits, book(), RiskOrder("BTCUSDT", "sell", D(1), price), 0.0)
    assert verdict.as_tuple() == (False, ("risk_invalid_order",))


def test_a_huge_quantity_is_refused_not_raised():
    limits = parse_limits({"max_order_notional": 1000, "max_live_notional_total": 5000})
    verdict = check_order(limits, book(), buy("1E+999999"), 0.0)
    assert verdict.reasons == ("risk_invalid_order",)
    assert "qty=Decimal('1E+999999') is outside" in verdict.details[0]


@pytest.mark.parametrize("symbol", [None, 5, "", ["BTCUSDT"]])
def test_a_symbol_that_is_not_one_is_an_invalid_order(symbol):
    order = RiskOrder(symbol, "buy", D(1))  # type: ignore[arg-type]
    assert check_order(parse_limits({}), book(), order, 0.0).reasons == ("risk_invalid_order",)


# -- the book -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "position", [D("NaN"), D("sNaN"), D("Infinity"), D("-Infinity"), D("1E+999999"), 1.5]
)
def test_a_bad_position_makes_the_book_unreadable(position):
    limits = parse_limits({"max_position": 1, "max_live_notional_total": 10**6})
    held = book({"BTCUSDT": position})
    verdict = check_order(limits, held, buy("0.1"), 0.0)
    assert verdict.reasons == ("risk_book_unreadable",)
    assert "position BTCUSDT=" in verdict.details[0]
    # As with book=None, an order the exchange keeps reduce-only still passes.
    reduce_only = RiskOrder("BTCUSDT", "sell", D("0.1"), reduce_only=True)
    assert check_order(limits, held, reduce_only, 0.0).allowed


@pytest.mark.parametrize("qty", [D("-4.5"), D("NaN"), D("-Infinity"), D(0)])
def test_a_bad_open_order_makes_the_book_unreadable(qty):
    # A negative open buy used to shrink the worst case: 5 more passed max_position = 1.
    limits = parse_limits({"max_position": 1})
    held = book(open_orders=[OpenOrder("BTCUSDT", "buy", qty)])
    assert check_order(limits, held, buy("5"), 0.0).reasons == ("risk_book_unreadable",)


def test_an_open_order_with_an_unknown_side_makes_the_book_unreadable():
    held = book(open_orders=[OpenOrder("BTCUSDT", "hold", D(1))])
    assert check_order(parse_limits({}), held, buy("1"), 0.0).reasons == ("risk_book_unreadable",)


# -- time and the day's PnL as given to the pure check -------------------------------------------
@pytest.mark.parametrize(
    ("now", "sent_at"),
    [
        (float("nan"), (10.0,)),
        (float("inf"), ()),
        (10.0, (float("nan"),)),
    ],
)
def test_a_non_finite_time_refuses_when_the_throttle_counts(now, sent_at):
    limits = parse_limits({"max_orders_per_second": 1})
    verdict = check_order(limits, book(), buy("1"), now, Activity(sent_at=sent_at))
    assert verdict.reasons == ("risk_invalid_time",)
    # Without a throttle, the time is not needed and not judged.
    assert check_order(parse_limits({}), book(), buy("1"), now, Activity(sent_at=sent_at)).allowed


@pytest.mark.parametrize("pnl", [D("NaN"), D("sNaN"), D("-Infinity"), D("Infinity"), 0.0])
def test_a_bad_realized_pnl_refuses_new_risk(pnl):
    limits = parse_limits({"max_daily_loss": 500})
    activity = Activity(realized_pnl_today=pnl)
    assert check_order(limits, book(), buy("1"), 0.0, activity).reasons == ("risk_pnl_unreadable",)
    held = book({"BTCUSDT": D(1)})
    assert check_order(limits, held, RiskOrder("BTCUSDT", "sell", D(1)), 0.0, activity).allowed


# -- limits built by hand go through the same rule -------------------------------------------------
@pytest.mark.parametrize("value", [D("NaN"), D("Infinity"), D(0), D(-1), D("1E+999999")])
def test_limits_built_by_hand_refuse_bad_numbers(value):
    with pytest.raises(RiskConfigError):
        RiskLimits(max_daily_loss=value)
    with pytest.raises(RiskConfigError):
        SymbolLimits(max_order_notional=value)


@pytest.mark.parametrize("text", ["Infinity", "-Infinity", "NaN", "1e400", "-0", "1e-40"])
def test_parse_limits_refuses_non_finite_huge_and_tiny_strings(text):
    with pytest.raises(RiskConfigError) as info:
        parse_limits({"max_order_notional": text})
    assert info.value.key == "risk.max_order_notional"


# -- fills: validated, never booked with a bad number ---------------------------------------------
def test_an_infinite_fill_does_not_disable_the_daily_loss():
    guard = RiskGuard(parse_limits({"max_daily_loss": 500}), wall_fn=lambda: 0.0)
    guard.record_fill("BTCUSDT", "sell", D(1), D("Infinity"))  # used to book +Infinity
    guard.record_fill("BTCUSDT", "buy", D(1), D(100))
    guard.record_realized(D(-1000))
    ok, reasons = guard.check(buy("0.001"), book())
    assert not ok and "risk_pnl_incomplete" in reasons and "risk_daily_loss" in reasons
    assert guard.realized_pnl_today.is_finite()


def test_a_negative_fill_quantity_books_no_phantom_gain():
    guard = RiskGuard(parse_limits({"max_daily_loss": 500}), wall_fn=lambda: 0.0)
    guard.record_fill("BTCUSDT", "sell", D(-5), D(100))  # used to open +5 at an average of -100
    guard.record_fill("BTCUSDT", "sell", D(5), D(100))  # ...and realize +1000 here
    guard.record_realized(D(-600))
    assert guard.realized_pnl_today == D(-600)
    ok, reasons = guard.check(buy("0.001"), book())
    assert not ok and "risk_daily_loss" in reasons


def test_a_nan_fill_never_makes_a_later_check_raise():
    guard = RiskGuard(
        parse_limits({"max_daily_loss": 500, "max_order_notional": 10**6}), wall_fn=lambda: 0.0
    )
    guard.record_fill("BTCUSDT", "buy", D(1), D("NaN"))
    guard.record_fill("BTCUSDT", "sell", D(1), D(100))
    assert guard.check(buy("0.001"), book()) == (False, ("risk_pnl_incomplete",))
    assert guard.realized_pnl_today == D(0)


@pytest.mark.parametrize(
    ("side", "qty", "price"),
    [
        ("buy", D(-1), D(100)),
        ("buy", D(1), D("NaN")),
        ("buy", D(1), D("sNaN")),
        ("sell", D(1), D("Infinity")),
        ("buy", D("1E+999999"), D(1)),
        ("buy", D(1), D(0)),
        ("hold", D(1), D(100)),
        ("buy", 1.0, D(100)),
        ("buy", D(1), None),
    ],
)
def test_a_bad_fill_is_refused_with_a_token_and_logged_once(side, qty, price, caplog):
    guard = RiskGuard(parse_limits({"max_daily_loss": 500}), wall_fn=lambda: 0.0)
    with caplog.at_level(logging.WARNING, logger="autoheal.guard.risk"):
        booked = guard.record_fill("BTCUSDT", side, qty, price)
        for _ in range(3):
            assert guard.check(buy("0.001"), book()) == (False, ("risk_pnl_incomplete",))
    assert (booked.booked, booked.reason, booked.realized) == (False, "risk_invalid_fill", D(0))
    lines = [r.getMessage() for r in caplog.records]
    fill_lines = [
        r for r in caplog.records if r.getMessage().startswith("[risk] risk_invalid_fill")
    ]
    assert len(fill_lines) == 1 and fill_lines[0].levelno == logging.ERROR
    # The state it leaves, once; then each refused order has its own line.
    assert sum(line.startswith("[risk] risk_pnl_incomplete") for line in lines) == 1
    assert sum(" refused: risk_pnl_incomplete" in line for line in lines) == 3
    # A sell that reduces is still allowed: the guard never traps a position.
    assert guard.check(RiskOrder("BTCUSDT", "sell", D(1)), book({"BTCUSDT": D(1)}))[0]


@pytest.mark.parametrize("pnl", [D("NaN"), D("-Infinity"), D("1E+999999"), -5.0])
def test_a_bad_realized_amount_is_refused(pnl):
    guard = RiskGuard(parse_limits({"max_daily_loss": 500}), wall_fn=lambda: 0.0)
    booked = guard.record_realized(pnl)
    assert (booked.booked, booked.reason) == (False, "risk_invalid_pnl")
    assert guard.check(buy("0.001"), book()) == (False, ("risk_pnl_incomplete",))


def test_a_fill_of_nothing_books_nothing():
    guard = RiskGuard(parse_limits({"max_daily_loss": 500}), wall_fn=lambda: 0.0)
    assert guard.record_fill("BTCUSDT", "buy", D(0), D("NaN")).booked
    assert guard.check(buy("0.001"), book())[0]


def test_without_a_daily_loss_limit_a_bad_fill_refuses_nothing(clock: FakeClock):
    guard = RiskGuard(parse_limits({"max_order_qty": 1}), time_fn=clock, wall_fn=lambda: 0.0)
    assert not guard.record_fill("BTCUSDT", "buy", D(1), D("NaN")).booked
    assert guard.check(buy("0.5"), book()) == (True, ())

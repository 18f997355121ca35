"""Pre-trade risk limits: each limit refuses with its token and numbers; reducing orders pass."""

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
    RiskOrder,
    check_order,
    parse_limits,
    to_decimal,
)
from tests.guard.conftest import FakeClock

MARKS = {"BTCUSDT": D("50000"), "ETHUSDT": D("2000")}


def book(positions=None, open_orders=(), marks=None) -> RiskBook:
    return RiskBook(positions=positions or {}, open_orders=tuple(open_orders),
                    marks=MARKS if marks is None else marks)


def buy(qty: str, price: str | None = None, symbol: str = "BTCUSDT") -> RiskOrder:
    return RiskOrder(symbol, "buy", D(qty), None if price is None else D(price))


def sell(qty: str, price: str | None = None, symbol: str = "BTCUSDT", **kw) -> RiskOrder:
    return RiskOrder(symbol, "sell", D(qty), None if price is None else D(price), **kw)


# -- parsing the [risk] table -----------------------------------------------------------------
def test_parse_limits_builds_decimals_and_merges_symbol_overrides():
    limits = parse_limits({
        "max_order_qty": 0.1, "max_order_notional": 5000, "price_collar_pct": "2.5",
        "max_live_notional_total": 20000, "max_orders_per_second": 5, "max_daily_loss": 300,
        "symbols": {"BTCUSDT": {"max_position": 0.2}},
    })
    assert limits.default.max_order_qty == D("0.1")  # the float's repr, not 0.1000000000000000055
    btc = limits.for_symbol("BTCUSDT")
    assert (btc.max_position, btc.max_order_qty, btc.price_collar_pct) == (
        D("0.2"), D("0.1"), D("2.5"))
    assert limits.for_symbol("ETHUSDT").max_position is None
    assert limits.max_orders_per_second == 5
    assert limits.max_daily_loss == D(300)


@pytest.mark.parametrize(("table", "key", "words"), [
    ({"max_order_qty": -1}, "risk.max_order_qty", "greater than zero"),
    ({"max_order_qty": 0}, "risk.max_order_qty", "greater than zero"),
    ({"max_order_notional": "lots"}, "risk.max_order_notional", "not a number"),
    ({"max_position": True}, "risk.max_position", "expected a number"),
    ({"max_daily_loss": float("nan")}, "risk.max_daily_loss", "finite"),
    ({"max_live_notional_total": "Infinity"}, "risk.max_live_notional_total", "finite"),
    ({"price_collar_pct": 0}, "risk.price_collar_pct", "greater than zero"),
    ({"max_orders_per_second": 0}, "risk.max_orders_per_second", "at least 1"),
    ({"max_orders_per_second": 2.5}, "risk.max_orders_per_second", "whole number"),
    ({"max_order_size": 1}, "risk.max_order_size", "unknown field"),
    ({"symbols": {"BTCUSDT": {"max_position": -0.5}}}, "risk.symbols.BTCUSDT.max_position",
     "greater than zero"),
    ({"symbols": {"BTCUSDT": {"max_daily_loss": 5}}}, "risk.symbols.BTCUSDT.max_daily_loss",
     "unknown field"),
    ({"symbols": {"BTC USDT": {}}}, "risk.symbols.BTC USDT", "symbol"),
    ({"symbols": {"BTCUSDT": 3}}, "risk.symbols.BTCUSDT", "expected a table"),
])
def test_parse_limits_names_the_key_of_each_bad_value(table, key, words):
    with pytest.raises(RiskConfigError) as info:
        parse_limits(table)
    assert info.value.key == key
    assert words in info.value.problem


def test_to_decimal_refuses_non_numbers():
    assert to_decimal(3, "k") == D(3)
    assert to_decimal("0.001", "k") == D("0.001")
    for bad in (None, [1], b"1", False):
        with pytest.raises(RiskConfigError):
            to_decimal(bad, "k")


# -- each limit --------------------------------------------------------------------------------
def test_no_limits_allow_everything():
    assert check_order(parse_limits({}), book(), buy("100"), 0.0).allowed


def test_max_order_qty():
    limits = parse_limits({"max_order_qty": "0.5"})
    assert check_order(limits, book(), buy("0.5"), 0.0).allowed
    verdict = check_order(limits, book(), buy("0.6"), 0.0)
    assert verdict.as_tuple() == (False, ("risk_max_order_qty",))
    assert verdict.details == ("risk_max_order_qty qty=0.6 > max_order_qty=0.5",)


def test_max_order_notional_uses_the_limit_price_or_the_mark():
    limits = parse_limits({"max_order_notional": 1000})
    assert check_order(limits, book(), buy("0.02"), 0.0).allowed  # 0.02 x 50000 = 1000
    assert check_order(limits, book(), buy("0.021"), 0.0).reasons == ("risk_max_order_notional",)
    # A sell limit far below the mark is worth less; a buy is never valued below the mark.
    assert check_order(limits, book(), sell("0.03", "30000"), 0.0).allowed
    assert not check_order(limits, book(), buy("0.03", "30000"), 0.0).allowed


def test_max_position_counts_open_orders_on_the_same_side():
    limits = parse_limits({"symbols": {"BTCUSDT": {"max_position": 1}}})
    held = book({"BTCUSDT": D("0.5")}, [OpenOrder("BTCUSDT", "buy", D("0.4"))])
    assert check_order(limits, held, buy("0.1"), 0.0).allowed
    verdict = check_order(limits, held, buy("0.2"), 0.0)
    assert verdict.reasons == ("risk_max_position",)
    assert "worst_case=1.1 > max_position=1" in verdict.details[0]
    # Per-symbol: ETH has no position limit.
    assert check_order(limits, held, buy("50", symbol="ETHUSDT"), 0.0).allowed


def test_a_sell_that_reduces_is_never_blocked_by_size_limits():
    limits = parse_limits({"max_order_qty": "0.1", "max_order_notional": 100, "max_position": 1,
                           "max_live_notional_total": 10, "max_daily_loss": 50})
    held = book({"BTCUSDT": D("5")})  # far over every limit already
    verdict = check_order(limits, held, sell("5"), 0.0, Activity(realized_pnl_today=D(-1000)))
    assert verdict.allowed
    # ...but a sell bigger than the position opens a short: new risk, refused.
    assert "risk_max_position" in check_order(limits, held, sell("11"), 0.0).reasons
    # ...and so is one that, with the sells already resting, would cross zero.
    resting = book({"BTCUSDT": D("5")}, [OpenOrder("BTCUSDT", "sell", D("4"))])
    assert not check_order(limits, resting, sell("2"), 0.0).allowed


def test_a_buy_that_covers_a_short_is_reducing_too():
    limits = parse_limits({"max_order_qty": "0.1"})
    assert check_order(limits, book({"BTCUSDT": D("-2")}), buy("2"), 0.0).allowed


def test_max_live_notional_total_across_symbols():
    limits = parse_limits({"max_live_notional_total": 1000})
    held = book({"BTCUSDT": D("0.016")}, [OpenOrder("ETHUSDT", "buy", D("0.05"))])  # 800 + 100
    assert check_order(limits, held, buy("0.05", symbol="ETHUSDT"), 0.0).allowed  # 1000
    verdict = check_order(limits, held, buy("0.06", symbol="ETHUSDT"), 0.0)
    assert verdict.reasons == ("risk_notional_total",)
    assert "live_notional_after=1020 > max_live_notional_total=1000" in verdict.details[0]


def test_price_collar():
    limits = parse_limits({"price_collar_pct": 5})
    assert check_order(limits, book(), buy("1", "52500"), 0.0).allowed
    verdict = check_order(limits, book(), buy("1", "52501"), 0.0)
    assert verdict.reasons == ("risk_price_collar",)
    assert "reference=50000" in verdict.details[0]
    # The collar applies to reducing sells too: a fat finger is a fat finger.
    held = book({"BTCUSDT": D("1")})
    assert check_order(limits, held, sell("1", "40000"), 0.0).reasons == ("risk_price_collar",)


def test_no_reference_price_is_refused():
    limits = parse_limits({"price_collar_pct": 5})
    no_marks = book(marks={})
    assert check_order(limits, no_marks, buy("1", "50000"), 0.0).reasons == (
        "risk_no_reference_price",)
    valued = parse_limits({"max_order_notional": 100})
    assert check_order(valued, no_marks, buy("1"), 0.0).reasons == ("risk_no_reference_price",)
    total = parse_limits({"max_live_notional_total": 100})
    assert check_order(total, no_marks, buy("1", "10"), 0.0).reasons == (
        "risk_no_reference_price",)
    # A reducing market sell needs no price: nothing to collar, no size limit applies.
    held = book({"BTCUSDT": D("1")}, marks={})
    assert check_order(limits, held, sell("1"), 0.0).allowed


def test_throttle_counts_orders_sent_in_the_last_second():
    limits = parse_limits({"max_orders_per_second": 2})
    two = Activity(sent_at=(9.2, 9.9))
    assert check_order(limits, book(), buy("1"), 10.0, two).reasons == ("risk_throttle",)
    assert check_order(limits, book(), buy("1"), 10.2, two).allowed


def test_daily_loss_refuses_new_risk_only():
    limits = parse_limits({"max_daily_loss": 100})
    lost = Activity(realized_pnl_today=D("-100"))
    assert check_order(limits, book(), buy("1"), 0.0, lost).reasons == ("risk_daily_loss",)
    assert check_order(limits, book(), buy("1"), 0.0, Activity(realized_pnl_today=D(-99))).allowed
    assert check_order(limits, book({"BTCUSDT": D(1)}), sell("1"), 0.0, lost).allowed


def test_unreadable_book_refuses_new_risk_but_not_reduce_only_orders():
    limits = parse_limits({})
    assert check_order(limits, None, buy("1"), 0.0).reasons == ("risk_book_unreadable",)
    assert check_order(limits, None, sell("1"), 0.0).reasons == ("risk_book_unreadable",)
    assert check_order(limits, None, sell("1", reduce_only=True), 0.0).allowed


@pytest.mark.parametrize("order", [
    RiskOrder("BTCUSDT", "buy", D(0)),
    RiskOrder("BTCUSDT", "buy", D(-1)),
    RiskOrder("BTCUSDT", "hold", D(1)),
    RiskOrder("BTCUSDT", "buy", D("NaN")),
    RiskOrder("BTCUSDT", "buy", D(1), D(0)),
    RiskOrder("BTCUSDT", "buy", 1.0),  # type: ignore[arg-type]
])
def test_malformed_orders_are_refused(order):
    assert check_order(parse_limits({}), book(), order, 0.0).reasons == ("risk_invalid_order",)


def test_every_crossed_limit_is_named():
    limits = parse_limits({"max_order_qty": 1, "max_order_notional": 10, "max_position": 1})
    assert check_order(limits, book(), buy("2"), 0.0).reasons == (
        "risk_max_order_qty", "risk_max_order_notional", "risk_max_position")


# -- the stateful guard -------------------------------------------------------------------------
def test_guard_throttles_with_its_own_window(clock: FakeClock):
    guard = RiskGuard(parse_limits({"max_orders_per_second": 2}), time_fn=clock)
    for _ in range(2):
        assert guard.check(buy("1"), book()) == (True, ())
        guard.note_sent()
    assert guard.check(buy("1"), book()) == (False, ("risk_throttle",))
    clock.advance(1.0)
    assert guard.check(buy("1"), book())[0]


def test_guard_logs_each_refusal_once_with_the_numbers(caplog):
    guard = RiskGuard(parse_limits({"max_order_qty": 1}))
    with caplog.at_level(logging.WARNING, logger="autoheal.guard.risk"):
        guard.check(buy("3"), book())
        guard.check(buy("1"), book())
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["[risk] BUY BTCUSDT qty=3 price=None refused: "
                     "risk_max_order_qty qty=3 > max_order_qty=1"]


def test_record_fill_realizes_pnl_at_average_cost():
    guard = RiskGuard(parse_limits({}), wall_fn=lambda: 0.0)
    guard.record_fill("BTCUSDT", "buy", D(1), D(100))
    guard.record_fill("BTCUSDT", "buy", D(1), D(200))  # avg 150
    assert guard.record_fill("BTCUSDT", "sell", D("0.5"), D(130)) == (True, D(-10), None, "")
    assert guard.record_fill("BTCUSDT", "sell", D("2.5"), D(160)).realized == D(15)  # short 1
    assert guard.record_fill("BTCUSDT", "buy", D(1), D(150)).realized == D(10)
    assert guard.realized_pnl_today == D(15)



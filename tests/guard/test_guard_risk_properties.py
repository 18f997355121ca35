"""Properties: no sequence of allowed orders (with fills, cancels and time) ends over any
limit; no input ever raises, and every bad number is a refusal with a ``risk_*`` token."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from autoheal.guard.risk import (
    REASONS,
    Activity,
    OpenOrder,
    RiskBook,
    RiskGuard,
    RiskOrder,
    check_order,
    parse_limits,
    total_exposure,
)
from tests.guard.conftest import FakeClock

SYMBOLS = ("BTCUSDT", "ETHUSDT")
MARKS = {"BTCUSDT": D("50000"), "ETHUSDT": D("2000")}

qty = st.decimals(min_value=D("0.001"), max_value=D("0.5"), places=3)
limits_st = st.fixed_dictionaries({
    "max_order_qty": st.decimals(min_value=D("0.01"), max_value=D("2"), places=2),
    "max_order_notional": st.integers(min_value=1000, max_value=100_000),
    "max_position": st.decimals(min_value=D("0.01"), max_value=D("5"), places=2),
    "max_live_notional_total": st.integers(min_value=1000, max_value=200_000),
    "price_collar_pct": st.integers(min_value=1, max_value=10),
    "max_orders_per_second": st.integers(min_value=1, max_value=5),
    "max_daily_loss": st.integers(min_value=10, max_value=5000),
})
op = st.one_of(
    st.tuples(st.just("order"), st.sampled_from(SYMBOLS), st.sampled_from(("buy", "sell")), qty,
              st.integers(min_value=-8, max_value=8), st.booleans()),
    st.tuples(st.just("fill"), st.integers(min_value=0, max_value=20),
              st.integers(min_value=-15, max_value=15)),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
    st.tuples(st.just("wait"), st.sampled_from((0.05, 0.3, 1.0))),
)


def exposure(book: RiskBook, symbol: str) -> D:
    pos = book.positions.get(symbol, D(0))
    ob = sum((o.qty for o in book.open_orders if o.symbol == symbol and o.side == "buy"), D(0))
    os_ = sum((o.qty for o in book.open_orders if o.symbol == symbol and o.side == "sell"), D(0))
    return max(abs(pos + ob), abs(pos - os_))


@settings(max_examples=300, deadline=None)
@given(table=limits_st, ops=st.lists(op, max_size=60))
def test_no_sequence_of_allowed_orders_ends_over_any_limit(table, ops):
    limits = parse_limits(table)
    clock = FakeClock()
    wall = FakeClock(start=86400.0 * 10)
    guard = RiskGuard(limits, time_fn=clock, wall_fn=wall)
    positions: dict[str, D] = {}
    open_orders: list[OpenOrder] = []
    sent: list[float] = []
    for step in ops:
        book = RiskBook(positions=dict(positions), open_orders=tuple(open_orders), marks=MARKS)
        if step[0] == "order":
            _, symbol, side, q, offset_pct, limit_order = step
            price = MARKS[symbol] * (1 + D(offset_pct) / 100) if limit_order else None
            order = RiskOrder(symbol, side, q, price)
            lost = -guard.realized_pnl_today >= limits.max_daily_loss
            before = exposure(book, symbol)
            ok, reasons = guard.check(order, book)
            if not ok:
                assert reasons and all(r.startswith("risk_") for r in reasons)
                continue
            guard.note_sent()
            event("allowed " + ("new risk" if exposure(RiskBook(dict(positions), (*open_orders,
                  OpenOrder(symbol, side, q)), MARKS), symbol) > before else "reducing"))
            sent.append(clock.now)
            open_orders.append(OpenOrder(symbol, side, q))
            after_book = RiskBook(dict(positions), tuple(open_orders), MARKS)
            after = exposure(after_book, symbol)
            if after > before:  # new risk: every limit held
                assert q <= limits.for_symbol(symbol).max_order_qty
                valued = price or MARKS[symbol]
                if side == "buy":
                    valued = max(valued, MARKS[symbol])  # a buy is never valued below the mark
                assert q * valued <= limits.default.max_order_notional
                assert not lost
                assert after <= limits.for_symbol(symbol).max_position
                assert total_exposure(after_book) <= limits.max_live_notional_total
            if price is not None:
                assert abs(price - MARKS[symbol]) / MARKS[symbol] * 100 <= table["price_collar_pct"]
        elif step[0] == "fill" and open_orders:
            o = open_orders.pop(step[1] % len(open_orders))
            fill_price = MARKS[o.symbol] * (1 + D(step[2]) / 100)
            positions[o.symbol] = positions.get(o.symbol, D(0)) + (
                o.qty if o.side == "buy" else -o.qty)
            guard.record_fill(o.symbol, o.side, o.qty, fill_price)
        elif step[0] == "cancel" and open_orders:
            open_orders.pop(step[1] % len(open_orders))
        elif step[0] == "wait":
            clock.advance(step[1])
        # Invariants of the whole book after every step, from an empty start:
        final = RiskBook(dict(positions), tuple(open_orders), MARKS)
        for symbol in SYMBOLS:
            assert exposure(final, symbol) <= limits.for_symbol(symbol).max_position
        assert total_exposure(final) <= limits.max_live_notional_total
        window = [t for t in sent if clock.now - 1.0 < t <= clock.now]
        assert len(window) <= limits.max_orders_per_second


# -- issue 18 A7: no input ever raises; every bad number is a refusal with a risk_* token -------
BAD = st.sampled_from([D("NaN"), D("sNaN"), D("Infinity"), D("-Infinity"), D(0), D("-0"), D(-1),
                       D("-0.5"), D("1E+999999"), D("-1E+999999"), D("1E-999999"),
                       D("1E+999999999999"), 1.0, 1, None, "1"])
good_price = st.decimals(min_value=D(1), max_value=D(100_000), places=2)


def maybe_bad(good: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(good, good, BAD)


def usable(value: object) -> bool:
    return isinstance(value, D) and value.is_finite() and D("1E-30") <= value <= D("1E+30")


def usable_position(value: object) -> bool:
    return isinstance(value, D) and value.is_finite() and (
        value.is_zero() or D("1E-30") <= value.copy_abs() <= D("1E+30"))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    table=limits_st,
    side=st.sampled_from(("buy", "sell")),
    q=maybe_bad(qty),
    price=st.one_of(st.none(), maybe_bad(good_price)),
    reduce_only=st.booleans(),
    positions=st.dictionaries(st.sampled_from(SYMBOLS), maybe_bad(
        st.decimals(min_value=D(-2), max_value=D(2), places=3)), max_size=2),
    opens=st.lists(st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(("buy", "sell")),
                             maybe_bad(qty)), max_size=3),
    marks=st.dictionaries(st.sampled_from(SYMBOLS), maybe_bad(good_price), max_size=2),
    now=st.one_of(st.floats(min_value=0, max_value=1e6), st.sampled_from(
        [float("nan"), float("inf"), float("-inf")])),
    pnl=maybe_bad(st.decimals(min_value=-10_000, max_value=10_000, places=2)),
)
def test_no_input_ever_raises_and_every_bad_number_is_a_refusal(
    table, side, q, price, reduce_only, positions, opens, marks, now, pnl
):
    limits = parse_limits(table)
    order = RiskOrder("BTCUSDT", side, q, price, reduce_only)
    book = RiskBook(positions, tuple(OpenOrder(*o) for o in opens), marks)
    verdict = check_order(limits, book, order, now, Activity(realized_pnl_today=pnl))
    assert verdict.allowed == (not verdict.reasons)
    assert set(verdict.reasons) <= set(REASONS)
    assert len(verdict.details) == len(verdict.reasons)
    if not (usable(q) and (price is None or usable(price))):
        assert verdict.as_tuple() == (False, ("risk_invalid_order",))
        return
    if not math.isfinite(now):  # the throttle is always set here
        assert "risk_invalid_time" in verdict.reasons
    book_ok = all(usable_position(p) for p in positions.values()) and all(
        usable(o[2]) for o in opens)
    if not book_ok and not reduce_only:
        assert "risk_book_unreadable" in verdict.reasons
    if verdict.allowed and book_ok:
        pos = positions.get("BTCUSDT", D(0))
        ob = sum((o[2] for o in opens if o[0] == "BTCUSDT" and o[1] == "buy"), D(0))
        os_ = sum((o[2] for o in opens if o[0] == "BTCUSDT" and o[1] == "sell"), D(0))
        reduces = (pos > 0 and pos - os_ - q >= 0) if side == "sell" else (
            pos < 0 and pos + ob + q <= 0)
        if not reduces:  # new risk passed: every number it was judged by was good
            assert usable(marks.get("BTCUSDT"))
            assert isinstance(pnl, D) and pnl.is_finite() and -pnl < limits.max_daily_loss
            valued = max(price or marks["BTCUSDT"], marks["BTCUSDT"]) if side == "buy" else (
                price or marks["BTCUSDT"])
            assert q * valued <= limits.default.max_order_notional
            assert all(usable(marks.get(s)) for s in SYMBOLS if positions.get(s) or any(
                o[0] == s for o in opens))


fill_op = st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(SYMBOLS), st.sampled_from(("buy", "sell")),
              maybe_bad(qty), maybe_bad(good_price)),
    st.tuples(st.just("pnl"), maybe_bad(st.decimals(min_value=-300, max_value=300, places=2))),
    st.tuples(st.just("order"), st.sampled_from(("buy", "sell")), qty),
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(ops=st.lists(fill_op, max_size=30), daily=st.integers(min_value=10, max_value=1000))
def test_no_fill_with_a_bad_number_raises_or_hides_a_loss(ops, daily):
    guard = RiskGuard(parse_limits({"max_daily_loss": daily}), time_fn=FakeClock(),
                      wall_fn=FakeClock(start=86400.0 * 10))
    unbooked = False
    for op in ops:
        if op[0] == "fill":
            _, symbol, side, q, p = op
            booked = guard.record_fill(symbol, side, q, p)
            good = (usable(q) and usable(p)) or (isinstance(q, D) and q.is_zero())  # 0: no-op
            assert booked.booked == good
            assert booked.reason == (None if good else "risk_invalid_fill")
            unbooked = unbooked or not good
        elif op[0] == "pnl":
            booked = guard.record_realized(op[1])
            assert booked.booked == usable_position(op[1])
            unbooked = unbooked or not booked.booked
        else:
            # A flat book: any order is new risk, judged by the day's PnL.
            ok, reasons = guard.check(RiskOrder("BTCUSDT", op[1], op[2]), RiskBook(marks=MARKS))
            assert all(r in REASONS for r in reasons)
            if unbooked:
                assert "risk_pnl_incomplete" in reasons
            if -guard.realized_pnl_today >= daily:
                assert "risk_daily_loss" in reasons
            assert ok == (not unbooked and not guard.loss_latched)
        assert guard.realized_pnl_today.is_finite()

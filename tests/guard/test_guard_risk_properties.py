"""Property: no sequence of allowed orders (with fills, cancels and time) ends over any limit."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import event, given, settings
from hypothesis import strategies as st

from autoheal.guard.risk import (
    OpenOrder,
    RiskBook,
    RiskGuard,
    RiskOrder,
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

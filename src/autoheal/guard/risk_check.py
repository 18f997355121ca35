"""The pre-trade check: is this order allowed, and if not, which limit says no.

The decision is a pure function, :func:`check_order`, over the limits, a snapshot of
the book (positions, open orders, reference prices), the order, the time and the
recent activity (orders sent in the throttle window, realized PnL of the day). It does
no I/O and reads no clock, so it stands alone here, away from the state and files of
:class:`~autoheal.guard.risk.RiskGuard`, the thin stateful wrapper around it;
:mod:`autoheal.guard.risk` re-exports every public name, as it always did.

Quantities, prices and money are :class:`~decimal.Decimal`; a float given to
:func:`~autoheal.guard.risk_limits.to_decimal` goes through its shortest ``repr``
(``0.1`` is ``Decimal('0.1')``).

Reason tokens (stable; add new ones, never rename): ``risk_max_order_qty``,
``risk_max_order_notional``, ``risk_max_position``, ``risk_notional_total``,
``risk_price_collar``, ``risk_throttle``, ``risk_daily_loss``,
``risk_no_reference_price``, ``risk_book_unreadable``, ``risk_invalid_order``,
``risk_invalid_time``, ``risk_pnl_unreadable``, ``risk_pnl_unsaved``,
``risk_pnl_incomplete``; a fill or an amount that cannot be booked is refused with
``risk_invalid_fill`` or ``risk_invalid_pnl``.

Fail closed: every number passes :mod:`autoheal.guard.risk_numbers` before it is used,
and a bad one is a refusal, never a pass and never an exception. An order with a bad
quantity or price is ``risk_invalid_order``; a mark that is not a positive finite
number is a missing mark (``risk_no_reference_price`` where one is needed); a book
with a bad position or open order is an unreadable book; a non-finite ``now`` or send
time refuses when the throttle needs them (``risk_invalid_time``); the day's PnL that
cannot be read, saved or trusted refuses new risk when ``max_daily_loss`` needs it.
A missing reference price where one is needed refuses the order; an
unreadable book (``book=None``) refuses everything except orders the exchange itself
keeps reduce-only (``RiskOrder.reduce_only``). An order that reduces the position (after
every open order on its side has filled) is never refused by the size limits
(``max_order_qty``, ``max_order_notional``, ``max_position``,
``max_live_notional_total``) nor by the daily loss: those limits bound risk, and it
lowers it. The price collar and the throttle apply to every order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from autoheal.guard.risk_limits import RiskLimits
from autoheal.guard.risk_numbers import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    amount_problem,
    is_amount,
    signed_problem,
    total_problem,
)

__all__ = [
    "LIMIT_OF_REASON",
    "REASONS",
    "THROTTLE_WINDOW_S",
    "Activity",
    "OpenOrder",
    "RiskBook",
    "RiskOrder",
    "Verdict",
    "check_order",
    "total_exposure",
]

REASONS = (
    "risk_max_order_qty",
    "risk_max_order_notional",
    "risk_max_position",
    "risk_notional_total",
    "risk_price_collar",
    "risk_throttle",
    "risk_daily_loss",
    "risk_no_reference_price",
    "risk_book_unreadable",
    "risk_invalid_order",
    "risk_invalid_time",
    "risk_pnl_unreadable",
    "risk_pnl_unsaved",
    "risk_pnl_incomplete",
    "risk_invalid_fill",
    "risk_invalid_pnl",
    "risk_drawdown",
    "risk_pnl_unavailable",
    # the execution throttles (autoheal.guard.throttles; checked by RiskGuard)
    "risk_message_rate",
    "risk_collar_window",
    "risk_repeated_execution",
)
#: The ``[risk]`` key behind each limit's reason token (what an operator would change).
LIMIT_OF_REASON = {
    "risk_max_order_qty": "max_order_qty",
    "risk_max_order_notional": "max_order_notional",
    "risk_max_position": "max_position",
    "risk_notional_total": "max_live_notional_total",
    "risk_price_collar": "price_collar_pct",
    "risk_throttle": "max_orders_per_second",
    "risk_daily_loss": "max_daily_loss",
    "risk_drawdown": "max_drawdown",
    "risk_message_rate": "max_submits_per_s",
    "risk_collar_window": "collar_window_pct",
    "risk_repeated_execution": "max_repeated_executions",
}
#: The throttle's window: ``max_orders_per_second`` counts orders sent in the last second.
THROTTLE_WINDOW_S = 1.0
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_NONE_OPEN = (_ZERO, _ZERO)
_SIDES = ("buy", "sell")


# -- the book and the order -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RiskOrder:
    """An order about to be sent. ``price`` is the limit price, ``None`` for a market order.

    ``reduce_only``: the exchange itself will refuse it if it would increase the position
    (the only orders allowed while the book is unreadable).
    """

    symbol: str
    side: str
    qty: Decimal
    price: Decimal | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order resting at the exchange: it may still fill, so it counts as exposure."""

    symbol: str
    side: str
    qty: Decimal


@dataclass(frozen=True, slots=True)
class RiskBook:
    """What is held and what may still fill. Positions are signed (short is negative).

    ``marks`` are the reference prices (last trade or mark) per symbol: the price
    collar is measured against them and exposure is valued at them.
    """

    positions: Mapping[str, Decimal] = field(default_factory=dict)
    open_orders: tuple[OpenOrder, ...] = ()
    marks: Mapping[str, Decimal] = field(default_factory=dict)


class Activity(NamedTuple):
    """The recent past the throttle and the daily loss need: send times, realized PnL today.

    ``pnl_refusal``: ``(token, detail)`` when the day's PnL is not known (its file is
    unreadable or unsaved, or a fill could not be booked): new risk is refused with it
    wherever ``max_daily_loss`` would have been checked.
    """

    sent_at: tuple[float, ...] = ()
    realized_pnl_today: Decimal = _ZERO
    loss_latched: bool = False
    pnl_refusal: tuple[str, str] | None = None
    #: The equity reads (:mod:`autoheal.guard.risk_drawdown`): ``(token, detail)`` of
    #: a latched drawdown (``risk_drawdown``) and of a pause on a bad or missing read
    #: (``risk_pnl_unavailable``); both refuse new risk only.
    drawdown_refusal: tuple[str, str] | None = None
    pnl_unavailable: tuple[str, str] | None = None


_NO_ACTIVITY = Activity()


class Verdict(NamedTuple):
    """The decision: ``allowed``, the reason tokens, and one line of numbers per reason."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    details: tuple[str, ...] = ()

    def as_tuple(self) -> tuple[bool, tuple[str, ...]]:
        return self.allowed, self.reasons


def _exposure(pos: Decimal, open_buy: Decimal, open_sell: Decimal) -> Decimal:
    """The largest absolute position reachable if the open orders of one side all fill."""
    return max(abs(pos + open_buy), abs(pos - open_sell))


def _scan(book: RiskBook) -> tuple[dict[str, tuple[Decimal, Decimal]], str | None]:
    """Per symbol the open buys and sells; or why the book cannot be used (one pass each).

    A position that is not a finite Decimal, an open order with a bad side or quantity:
    the book was read wrong, so it is an unreadable book, not one to value. The tests
    are :func:`~autoheal.guard.risk_numbers.is_signed` and ``is_amount``, inlined: this
    runs over the whole book on every check.
    """
    positions, opens, marks = book.positions, book.open_orders, book.marks
    if not (type(positions) is dict or isinstance(positions, Mapping)) or not (
        type(marks) is dict or isinstance(marks, Mapping)
    ):
        return {}, "positions and marks must be mappings"
    if not isinstance(opens, tuple | list):
        return {}, "open_orders must be a tuple"
    for symbol, pos in positions.items():
        if (
            type(pos) is not Decimal
            or not pos.is_finite()
            or (pos and not MIN_AMOUNT <= pos.copy_abs() <= MAX_AMOUNT)
        ):
            return {}, f"position {symbol}={pos!r} {signed_problem(pos)}"
    buys: dict[str, Decimal] = {}
    sells: dict[str, Decimal] = {}
    for o in opens:
        if type(o) is not OpenOrder:
            return {}, f"open order {o!r} is not an OpenOrder"
        qty, side = o.qty, o.side
        if (
            type(qty) is not Decimal
            or not qty.is_finite()
            or not MIN_AMOUNT <= qty <= MAX_AMOUNT
            or type(o.symbol) is not str
        ):
            return {}, f"open order {o!r} {amount_problem(qty) or 'has no symbol'}"
        if side == "buy":
            buys[o.symbol] = buys.get(o.symbol, _ZERO) + qty
        elif side == "sell":
            sells[o.symbol] = sells.get(o.symbol, _ZERO) + qty
        else:
            return {}, f"open order {o!r} has no side buy or sell"
    return {s: (buys.get(s, _ZERO), sells.get(s, _ZERO)) for s in buys.keys() | sells.keys()}, None


def _mark(book: RiskBook, symbol: str) -> tuple[Decimal | None, str]:
    """The symbol's usable mark, or ``None`` and what was wrong with it (a missing mark)."""
    mark = book.marks.get(symbol)
    if mark is None:
        return None, "no mark"
    if is_amount(mark):
        return mark, ""
    return None, f"mark={mark!r} {amount_problem(mark)}"


def _reduces(order: RiskOrder, pos: Decimal, open_buy: Decimal, open_sell: Decimal) -> bool:
    """Whether the order lowers the position even after every open order on its side fills."""
    if order.side == "sell":
        return pos > 0 and pos - open_sell - order.qty >= 0
    return pos < 0 and pos + open_buy + order.qty <= 0


def _valid(order: RiskOrder) -> str | None:
    if not isinstance(order.symbol, str) or not order.symbol:
        return f"symbol={order.symbol!r} is not a symbol"
    if order.side not in _SIDES:
        return f"side={order.side!r} is not buy or sell"
    if not is_amount(order.qty):
        return f"qty={order.qty!r} {amount_problem(order.qty)}"
    if order.price is not None and not is_amount(order.price):
        return f"price={order.price!r} {amount_problem(order.price)}"
    return None


def _time_problem(now: float, sent_at: tuple[float, ...]) -> str | None:
    """Why the throttle cannot count (a NaN compares false and would count nothing)."""
    try:
        if math.isfinite(now) and all(map(math.isfinite, sent_at)):
            return None
    except (TypeError, ValueError):  # not a number at all: named below
        pass
    for name, t in (("now", now), *(("sent_at", t) for t in sent_at)):
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            return f"{name}={t!r} is not a finite time"
    return None


def _n(value: Decimal | None) -> str:
    """A Decimal as an operator reads it: ``1200``, ``0.01``, never ``1.2E+3`` or ``1200.000``."""
    if value is None:
        return "None"
    return format(value.normalize(), "f")


def total_exposure(book: RiskBook) -> Decimal | None:
    """The book's live notional across symbols, at the marks; ``None`` when a mark is missing
    (or not a positive finite number) or the book holds a bad number."""
    sums, bad = _scan(book)
    return None if bad is not None else _total(book, sums)


def _total(book: RiskBook, sums: dict[str, tuple[Decimal, Decimal]]) -> Decimal | None:
    total = _ZERO
    positions, marks = book.positions, book.marks
    for symbol in positions.keys() | sums.keys():
        open_buy, open_sell = sums.get(symbol, _NONE_OPEN)
        pos = positions.get(symbol, _ZERO)
        exposure = max(abs(pos + open_buy), abs(pos - open_sell))  # _exposure, inlined
        if exposure:
            mark = marks.get(symbol)
            if (
                type(mark) is not Decimal
                or not mark.is_finite()
                or not (  # is_amount, inlined
                    MIN_AMOUNT <= mark <= MAX_AMOUNT
                )
            ):
                return None
            total += exposure * mark
    return total


def check_order(
    limits: RiskLimits,
    book: RiskBook | None,
    order: RiskOrder,
    now: float,
    activity: Activity = _NO_ACTIVITY,
) -> Verdict:
    """Decide whether ``order`` may be sent; pure (no I/O, no clock).

    Args:
        limits: the ``[risk]`` limits.
        book: positions, open orders and reference prices; ``None`` when it could not be read.
        order: the order about to be sent.
        now: seconds (same clock as ``activity.sent_at``).
        activity: orders sent recently and the day's realized PnL.

    Returns:
        A :class:`Verdict`; every limit is checked, so ``reasons`` lists each one crossed.
    """
    bad = _valid(order)
    if bad is not None:
        return Verdict(False, ("risk_invalid_order",), (f"risk_invalid_order {bad}",))
    reasons: list[str] = []
    details: list[str] = []

    def refuse(token: str, detail: str) -> None:
        reasons.append(token)
        details.append(f"{token} {detail}")

    sym = limits.for_symbol(order.symbol)
    rate = limits.max_orders_per_second
    if rate is not None:
        bad_time = _time_problem(now, activity.sent_at)
        if bad_time is not None:
            refuse("risk_invalid_time", f"{bad_time}: the throttle cannot count")
        else:
            recent = sum(1 for t in activity.sent_at if now - THROTTLE_WINDOW_S < t <= now)
            if recent >= rate:
                refuse("risk_throttle", f"sent_last_1s={recent} >= max_orders_per_second={rate}")
    sums: dict[str, tuple[Decimal, Decimal]] = {}
    unreadable = "positions book unreadable"
    if book is not None:
        sums, bad_book = _scan(book)
        if bad_book is not None:
            book, unreadable = None, f"positions book unusable: {bad_book}"
    ref, no_mark = (None, "no book") if book is None else _mark(book, order.symbol)
    if sym.price_collar_pct is not None and order.price is not None:
        if ref is None:
            refuse(
                "risk_no_reference_price",
                f"symbol={order.symbol} limit_price={_n(order.price)} "
                f"(price collar needs a mark: {no_mark})",
            )
        else:
            off = abs(order.price - ref) / ref * _HUNDRED
            if off > sym.price_collar_pct:
                refuse(
                    "risk_price_collar",
                    f"limit_price={_n(order.price)} reference={_n(ref)} off_pct={off:.4f} "
                    f"> price_collar_pct={_n(sym.price_collar_pct)}",
                )
    if book is None:
        if not order.reduce_only:
            refuse("risk_book_unreadable", f"{unreadable}: new risk refused")
        return Verdict(not reasons, tuple(reasons), tuple(details))
    pos = book.positions.get(order.symbol, _ZERO)
    open_buy, open_sell = sums.get(order.symbol, _NONE_OPEN)
    if _reduces(order, pos, open_buy, open_sell):
        return Verdict(not reasons, tuple(reasons), tuple(details))
    if limits.max_daily_loss is not None:
        _check_daily_loss(limits.max_daily_loss, activity, refuse)
    _check_equity_reads(limits, activity, refuse)
    if sym.max_order_qty is not None and order.qty > sym.max_order_qty:
        refuse("risk_max_order_qty", f"qty={_n(order.qty)} > max_order_qty={_n(sym.max_order_qty)}")
    price = order.price if order.price is not None else ref
    if price is not None and ref is not None and order.side == "buy":
        price = max(price, ref)  # a buy's worth is at least what the market says
    needs_price = sym.max_order_notional is not None or limits.max_live_notional_total is not None
    if needs_price and price is None:
        refuse(
            "risk_no_reference_price",
            f"symbol={order.symbol}: no limit price and no mark to value the order ({no_mark})",
        )
    if sym.max_order_notional is not None and price is not None:
        notional = order.qty * price
        if notional > sym.max_order_notional:
            refuse(
                "risk_max_order_notional",
                f"notional={_n(notional)} (qty={_n(order.qty)} x price={_n(price)}) "
                f"> max_order_notional={_n(sym.max_order_notional)}",
            )
    new_buy = open_buy + (order.qty if order.side == "buy" else _ZERO)
    new_sell = open_sell + (order.qty if order.side == "sell" else _ZERO)
    after = _exposure(pos, new_buy, new_sell)
    if sym.max_position is not None and after > sym.max_position:
        refuse(
            "risk_max_position",
            f"position={_n(pos)} open_buy={_n(open_buy)} open_sell={_n(open_sell)} "
            f"qty={_n(order.qty)} "
            f"worst_case={_n(after)} > max_position={_n(sym.max_position)}",
        )
    cap = limits.max_live_notional_total
    if cap is not None and ref is not None:
        before = _total(book, sums)
        if before is None:
            refuse("risk_no_reference_price", "a symbol with exposure has no usable mark")
        else:
            mine = _exposure(pos, open_buy, open_sell) * ref
            total = before - mine + after * ref
            if total > cap:
                refuse(
                    "risk_notional_total",
                    f"live_notional_after={_n(total)} > max_live_notional_total={_n(cap)}",
                )
    elif cap is not None and "risk_no_reference_price" not in reasons:
        refuse(
            "risk_no_reference_price",
            f"symbol={order.symbol}: no mark to value the live notional ({no_mark})",
        )
    return Verdict(not reasons, tuple(reasons), tuple(details))


def _check_daily_loss(
    daily: Decimal, activity: Activity, refuse: Callable[[str, str], None]
) -> None:
    """The daily loss, for an order that adds risk: a PnL that is not known refuses too."""
    realized = activity.realized_pnl_today
    if activity.pnl_refusal is not None:
        refuse(*activity.pnl_refusal)
    bad = total_problem(realized)
    if bad is not None:
        refuse("risk_pnl_unreadable", f"realized_pnl_today={realized!r} {bad}")
    elif activity.loss_latched or -realized >= daily:
        refuse(
            "risk_daily_loss",
            f"realized_pnl_today={_n(realized)} max_daily_loss={_n(daily)}",
        )


def _check_equity_reads(
    limits: RiskLimits, activity: Activity, refuse: Callable[[str, str], None]
) -> None:
    """The drawdown latch and the pause on a bad equity read, for an order that adds risk.

    With only the drawdown limits set, a day's PnL that is not known refuses too
    (``max_daily_loss`` already does it when set).
    """
    if activity.pnl_unavailable is not None:
        refuse(*activity.pnl_unavailable)
    if activity.drawdown_refusal is not None:
        refuse(*activity.drawdown_refusal)
    drawdown_only = limits.max_daily_loss is None and (
        limits.max_drawdown is not None or limits.max_drawdown_pct is not None
    )
    if drawdown_only and activity.pnl_refusal is not None:
        refuse(*activity.pnl_refusal)

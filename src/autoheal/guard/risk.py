"""Pre-trade risk limits: is this order allowed, and if not, which limit says no.

The decision is a pure function, :func:`check_order`, over the limits, a snapshot of
the book (positions, open orders, reference prices), the order, the time and the
recent activity (orders sent in the throttle window, realized PnL of the day). It does
no I/O and reads no clock. :class:`RiskGuard` is the thin stateful wrapper a trading
process holds: it keeps the throttle window and the day's realized PnL, logs every
refusal once with its numbers, and latches ``REDUCE_ONLY`` when the day's realized
loss reaches ``max_daily_loss``: it creates ``risk_latch.json`` in the runtime
directory (:func:`latch_reduce_only`). It never writes ``global_flags.json``: only the
daemon and an operator write that, and only they clear. The gate honours the latch
file at once; the daemon applies it as a REDUCE_ONLY that only tightens, and removes
it on an operator's clear of REDUCE_ONLY.

Quantities, prices and money are :class:`~decimal.Decimal`; a float given to
:func:`to_decimal` goes through its shortest ``repr`` (``0.1`` is ``Decimal('0.1')``).

Reason tokens (stable; add new ones, never rename): ``risk_max_order_qty``,
``risk_max_order_notional``, ``risk_max_position``, ``risk_notional_total``,
``risk_price_collar``, ``risk_throttle``, ``risk_daily_loss``,
``risk_no_reference_price``, ``risk_book_unreadable``, ``risk_invalid_order``.

Fail closed: a missing reference price where one is needed refuses the order; an
unreadable book (``book=None``) refuses everything except orders the exchange itself
keeps reduce-only (``RiskOrder.reduce_only``). An order that reduces the position (after
every open order on its side has filled) is never refused by the size limits
(``max_order_qty``, ``max_order_notional``, ``max_position``,
``max_live_notional_total``) nor by the daily loss: those limits bound risk, and it
lowers it. The price collar and the throttle apply to every order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from autoheal.core.switch import RISK

# The limits live in their own light module (the config loader imports it alone);
# they are part of this module's surface, as they always were.
from autoheal.guard.risk_limits import (
    GLOBAL_KEYS,
    SYMBOL_KEYS,
    RiskConfigError,
    RiskLimits,
    SymbolLimits,
    parse_limits,
    to_decimal,
)
from autoheal.store.flags import RISK_LATCH_FILENAME, write_risk_latch

__all__ = [
    "GLOBAL_KEYS",
    "LIMIT_OF_REASON",
    "REASONS",
    "SYMBOL_KEYS",
    "Activity",
    "OpenOrder",
    "RiskBook",
    "RiskConfigError",
    "RiskGuard",
    "RiskLimits",
    "RiskOrder",
    "SymbolLimits",
    "Verdict",
    "check_order",
    "latch_reduce_only",
    "parse_limits",
    "to_decimal",
    "total_exposure",
]

log = logging.getLogger("autoheal.guard.risk")

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
}
#: The throttle's window: ``max_orders_per_second`` counts orders sent in the last second.
THROTTLE_WINDOW_S = 1.0
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_NONE_OPEN = (_ZERO, _ZERO)


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
    """The recent past the throttle and the daily loss need: send times, realized PnL today."""

    sent_at: tuple[float, ...] = ()
    realized_pnl_today: Decimal = _ZERO
    loss_latched: bool = False


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


def _open_sums(book: RiskBook) -> dict[str, tuple[Decimal, Decimal]]:
    """Per symbol, the quantity of open buys and of open sells (one pass over the orders)."""
    buys: dict[str, Decimal] = {}
    sells: dict[str, Decimal] = {}
    for o in book.open_orders:
        side = buys if o.side == "buy" else sells
        side[o.symbol] = side.get(o.symbol, _ZERO) + o.qty
    return {s: (buys.get(s, _ZERO), sells.get(s, _ZERO)) for s in buys.keys() | sells.keys()}


def _reduces(order: RiskOrder, pos: Decimal, open_buy: Decimal, open_sell: Decimal) -> bool:
    """Whether the order lowers the position even after every open order on its side fills."""
    if order.side == "sell":
        return pos > 0 and pos - open_sell - order.qty >= 0
    return pos < 0 and pos + open_buy + order.qty <= 0


def _valid(order: RiskOrder) -> str | None:
    if order.side not in ("buy", "sell"):
        return f"side={order.side!r} is not buy or sell"
    if not isinstance(order.qty, Decimal) or not order.qty.is_finite() or order.qty <= 0:
        return f"qty={order.qty!r} is not a positive Decimal"
    if order.price is not None and (
        not isinstance(order.price, Decimal) or not order.price.is_finite() or order.price <= 0
    ):
        return f"price={order.price!r} is not a positive Decimal"
    return None


def _n(value: Decimal | None) -> str:
    """A Decimal as an operator reads it: ``1200``, ``0.01``, never ``1.2E+3`` or ``1200.000``."""
    if value is None:
        return "None"
    return format(value.normalize(), "f")


def total_exposure(book: RiskBook) -> Decimal | None:
    """The book's live notional across symbols, at the marks; ``None`` when a mark is missing."""
    return _total(book, _open_sums(book))


def _total(book: RiskBook, sums: dict[str, tuple[Decimal, Decimal]]) -> Decimal | None:
    total = _ZERO
    positions, marks = book.positions, book.marks
    for symbol in positions.keys() | sums.keys():
        open_buy, open_sell = sums.get(symbol, _NONE_OPEN)
        pos = positions.get(symbol, _ZERO)
        exposure = max(abs(pos + open_buy), abs(pos - open_sell))  # _exposure, inlined
        if exposure:
            mark = marks.get(symbol)
            if mark is None:
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
        recent = sum(1 for t in activity.sent_at if now - THROTTLE_WINDOW_S < t <= now)
        if recent >= rate:
            refuse("risk_throttle", f"sent_last_1s={recent} >= max_orders_per_second={rate}")
    ref = None if book is None else book.marks.get(order.symbol)
    if sym.price_collar_pct is not None and order.price is not None:
        if ref is None:
            refuse(
                "risk_no_reference_price",
                f"symbol={order.symbol} limit_price={_n(order.price)} (price collar needs a mark)",
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
            refuse("risk_book_unreadable", "positions book unreadable: new risk refused")
        return Verdict(not reasons, tuple(reasons), tuple(details))
    pos = book.positions.get(order.symbol, _ZERO)
    sums = _open_sums(book)
    open_buy, open_sell = sums.get(order.symbol, _NONE_OPEN)
    if _reduces(order, pos, open_buy, open_sell):
        return Verdict(not reasons, tuple(reasons), tuple(details))
    daily = limits.max_daily_loss
    if daily is not None and (activity.loss_latched or -activity.realized_pnl_today >= daily):
        refuse(
            "risk_daily_loss",
            f"realized_pnl_today={_n(activity.realized_pnl_today)} max_daily_loss={_n(daily)}",
        )
    if sym.max_order_qty is not None and order.qty > sym.max_order_qty:
        refuse("risk_max_order_qty", f"qty={_n(order.qty)} > max_order_qty={_n(sym.max_order_qty)}")
    price = order.price if order.price is not None else ref
    if price is not None and ref is not None and order.side == "buy":
        price = max(price, ref)  # a buy's worth is at least what the market says
    needs_price = sym.max_order_notional is not None or limits.max_live_notional_total is not None
    if needs_price and price is None:
        refuse(
            "risk_no_reference_price",
            f"symbol={order.symbol}: no limit price and no mark to value the order",
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
            refuse("risk_no_reference_price", "a symbol with exposure has no mark")
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
            "risk_no_reference_price", f"symbol={order.symbol}: no mark to value the live notional"
        )
    return Verdict(not reasons, tuple(reasons), tuple(details))


# -- the daily-loss latch -------------------------------------------------------------------
def latch_reduce_only(runtime_dir: Path, reason: str, *, since: float | None = None) -> str:
    """Ask for ``REDUCE_ONLY``: create ``risk_latch.json`` in ``runtime_dir``.

    A request that can only tighten: ``global_flags.json`` is never read or written
    (a read-modify-write of it raced the daemon and could clear a failsafe). A latch
    already there is never replaced: it asks for the same thing, since earlier.

    Args:
        runtime_dir: the runtime directory (it must exist).
        reason: why, for the operator (``risk_daily_loss ...``).
        since: unix seconds; default now.

    Returns:
        ``"written"``, or ``"already"`` when a latch is there (until an operator clears it).

    Raises:
        OSError: the write failed (the caller keeps its own latch and retries).
    """
    stamp = time.time() if since is None else since
    written = write_risk_latch(Path(runtime_dir), reason, since=stamp, set_by=RISK)
    return "written" if written else "already"


# -- the stateful wrapper -------------------------------------------------------------------
class RiskGuard:
    """Checks orders against ``limits``; keeps the throttle window and the day's realized PnL.

    Args:
        limits: the ``[risk]`` limits (:func:`parse_limits`).
        runtime_dir: the runtime directory, where the daily-loss latch is written
            (``risk_latch.json``); ``None`` keeps the latch in memory only.
        time_fn: the clock for the throttle (monotonic) ...
        wall_fn: ... and the one that says which UTC day the realized PnL belongs to.

    Use: ``ok, reasons = guard.check(order, book)``; after sending, ``guard.note_sent()``;
    after a fill, ``guard.record_fill(symbol, side, qty, price)``.
    """

    def __init__(
        self,
        limits: RiskLimits,
        runtime_dir: Path | None = None,
        *,
        time_fn: Callable[[], float] = time.monotonic,
        wall_fn: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.runtime_dir = None if runtime_dir is None else Path(runtime_dir)
        self._time = time_fn
        self._wall = wall_fn
        self._sent: deque[float] = deque()
        self._day = self._today()
        self._realized = _ZERO
        self._latched = False
        self._latch_written_day: int | None = None  # the UTC day whose latch is on disk
        self._avg: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (position, avg price)

    # -- state ---------------------------------------------------------------------------
    def _today(self) -> int:
        return int(self._wall() // 86400)

    def _roll_day(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._realized, self._latched = today, _ZERO, False

    @property
    def realized_pnl_today(self) -> Decimal:
        self._roll_day()
        return self._realized

    @property
    def loss_latched(self) -> bool:
        """Whether today's realized loss reached ``max_daily_loss`` (new risk refused)."""
        self._roll_day()
        return self._latched

    def activity(self, now: float) -> Activity:
        while self._sent and self._sent[0] <= now - THROTTLE_WINDOW_S:
            self._sent.popleft()
        self._roll_day()
        return Activity(tuple(self._sent), self._realized, self._latched)

    # -- the check -----------------------------------------------------------------------
    def check(self, order: RiskOrder, book: RiskBook | None) -> tuple[bool, tuple[str, ...]]:
        """``(allowed, reasons)``; a refusal is logged once, with its numbers."""
        verdict = self.verdict(order, book)
        return verdict.allowed, verdict.reasons

    def verdict(self, order: RiskOrder, book: RiskBook | None) -> Verdict:
        now = self._time()
        activity = self.activity(now)
        if activity.loss_latched and self._latch_written_day != self._day:
            self.latch_flags()
        verdict = check_order(self.limits, book, order, now, activity)
        if not verdict.allowed:
            log.warning(
                "[risk] %s %s qty=%s price=%s refused: %s",
                str(order.side).upper(),
                order.symbol,
                order.qty,
                order.price,
                "; ".join(verdict.details),
            )
        return verdict

    def note_sent(self) -> None:
        """Count an order that was sent, for the throttle."""
        self._sent.append(self._time())

    def record_fill(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """RiskBook a fill at ``price``; returns the PnL it realized (average-cost method)."""
        pos, avg = self._avg.get(symbol, (_ZERO, _ZERO))
        signed = qty if side == "buy" else -qty
        realized = _ZERO
        if pos == 0 or (pos > 0) == (signed > 0):
            new = pos + signed
            avg = (avg * abs(pos) + price * qty) / abs(new) if new else _ZERO
        else:
            closed = min(abs(pos), qty)
            realized = (price - avg) * closed * (1 if pos > 0 else -1)
            new = pos + signed
            if new == 0:
                avg = _ZERO
            elif (new > 0) != (pos > 0):
                avg = price  # flipped: the rest opened at this price
        self._avg[symbol] = (new, avg)
        self.record_realized(realized)
        return realized

    def record_realized(self, pnl: Decimal) -> None:
        """Add realized PnL (negative: a loss); reaching ``max_daily_loss`` latches."""
        self._roll_day()
        self._realized += pnl
        limit = self.limits.max_daily_loss
        if limit is not None and -self._realized >= limit and not self._latched:
            self._latched = True
            log.error(
                "[risk] risk_daily_loss realized_pnl_today=%s max_daily_loss=%s: "
                "new risk refused, REDUCE_ONLY latched",
                self._realized,
                limit,
            )
        if self._latched and self._latch_written_day != self._day:
            self.latch_flags()

    def latch_flags(self) -> bool:
        """Write the day's ``REDUCE_ONLY`` latch (retried on the next call after a failure).

        Once per UTC day: after an operator cleared it, the same day's loss does not
        latch again; a new day's does.
        """
        if self.runtime_dir is None:
            self._latch_written_day = self._day
            return True
        reason = (
            f"risk_daily_loss realized_pnl_today={self._realized} "
            f"max_daily_loss={self.limits.max_daily_loss}"
        )
        try:
            outcome = latch_reduce_only(self.runtime_dir, reason, since=self._wall())
        except OSError as exc:
            log.error(
                "[risk] cannot write the REDUCE_ONLY latch %s: %s (new risk stays refused "
                "here; retried)",
                self.runtime_dir / RISK_LATCH_FILENAME,
                exc,
            )
            return False
        log.warning("[risk] REDUCE_ONLY latch %s (%s)", outcome, reason)
        self._latch_written_day = self._day
        return True

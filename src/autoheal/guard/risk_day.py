"""The day's realized PnL as a value: what ``risk_pnl.json`` means and how a fill moves it.

Pure: no file, no clock. :mod:`autoheal.guard.risk_day_file` reads and writes the
document under the guard's lock; :class:`~autoheal.guard.risk.RiskGuard` decides with
it. The rules, each a reason a restart or a bad number cannot loosen the daily loss:

1. The day's realized PnL, the loss latch and the cost basis it is measured from live
   in one document that every trading process of the runtime shares. A restarted
   trader reads the loss it had before; a fill booked after a restart closes the
   position at the cost it was opened at, not at zero.
2. A day only rolls forward (UTC dates compare as text). A document from an earlier
   day starts today at zero PnL and unlatched, keeping the cost basis (a position
   held over midnight still has its cost). A document from a *later* day (this
   clock is behind the writer's) stays that day: a clock set back never reopens a
   finished day at zero.
3. A document that is not a valid day (torn, binary, a NaN total, an unknown schema)
   is never read as an empty one: :func:`parse_day` says why, and the guard refuses
   new risk (``risk_pnl_unreadable``) until it reads a valid one again.
4. A fill or an amount with a bad number is not booked (its numbers would poison the
   total) but counted in ``unbooked``: the day's PnL is then incomplete, and new risk
   is refused (``risk_pnl_incomplete``) until an operator, having booked it by hand,
   removes the key. A new day does not clear it: the cost basis may be wrong too.

Average cost: a fill that adds to a position (or opens one) moves its average price;
one that reduces it realizes ``(price - average) x closed`` (the sign flipped for a
short); one that crosses zero opens the rest at the fill's price.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from autoheal.guard.risk_drawdown import Drawdown, DrawdownRule, observe
from autoheal.guard.risk_numbers import amount_problem, total_problem

__all__ = [
    "SCHEMA",
    "Amount",
    "Booking",
    "DayRead",
    "EquityRead",
    "Fill",
    "RiskDay",
    "Unbookable",
    "apply",
    "day_doc",
    "fill_problem",
    "parse_day",
    "utc_day",
]

SCHEMA = 1
_ZERO = Decimal(0)
_DETAIL_CHARS = 300  # what is kept of an unbookable's description (a caller's repr)


@dataclass(frozen=True, slots=True)
class RiskDay:
    """One UTC day of realized PnL, and the cost basis (position, average price) per symbol.

    ``unbooked`` counts the fills and amounts that could not be booked (rule 4);
    ``unbooked_last`` describes the latest one.
    """

    day: str
    realized: Decimal = _ZERO
    loss_latched: bool = False
    basis: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    unbooked: int = 0
    unbooked_last: str = ""
    drawdown: Drawdown = field(default_factory=Drawdown)  # the equity reads (risk_drawdown)


@dataclass(frozen=True, slots=True)
class Fill:
    """A validated fill (see :func:`fill_problem`)."""

    symbol: str
    side: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Amount:
    """A realized PnL booked directly (negative: a loss); validated."""

    pnl: Decimal


@dataclass(frozen=True, slots=True)
class Unbookable:
    """A fill or amount refused for a bad number: counted, never added (rule 4)."""

    detail: str


@dataclass(frozen=True, slots=True)
class EquityRead:
    """A good equity read, held to ``rule`` (:func:`~autoheal.guard.risk_drawdown.observe`)."""

    equity: Decimal
    rule: DrawdownRule


Booking = Fill | Amount | Unbookable | EquityRead


class DayRead(NamedTuple):
    """What a document says: the day, or ``None`` and why not (``problem``)."""

    day: RiskDay | None
    problem: str | None = None


def utc_day(wall: float) -> str:
    """The UTC date of a unix time, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(wall, UTC).date().isoformat()


def fill_problem(symbol: Any, side: Any, qty: Any, price: Any) -> str | None:
    """Why a fill cannot be booked, or ``None``; the numbers go through :mod:`risk_numbers`."""
    if not isinstance(symbol, str) or not symbol:
        return f"symbol={symbol!r} is not a symbol"
    if side not in ("buy", "sell"):
        return f"side={side!r} is not buy or sell"
    for name, value in (("qty", qty), ("price", price)):
        problem = amount_problem(value)
        if problem is not None:
            return f"{name}={value!r} {problem}"
    return None


def apply(
    day: RiskDay, bookings: tuple[Booking, ...], today: str, max_daily_loss: Decimal | None
) -> tuple[RiskDay, tuple[Decimal, ...]]:
    """Roll ``day`` to ``today`` (forward only), then book each of ``bookings`` in order.

    Returns:
        The new day (latched once its loss reaches ``max_daily_loss``) and the PnL each
        booking realized (zero for one that was not booked).
    """
    if today > day.day:
        # The peak, the count and a drawdown latch outlive midnight; the day's first
        # equity does not (the next good read opens the new day).
        day = RiskDay(
            today,
            basis=day.basis,
            unbooked=day.unbooked,
            unbooked_last=day.unbooked_last,
            drawdown=replace(day.drawdown, day_open_equity=None),
        )
    realized = day.realized
    basis = day.basis
    unbooked, last = day.unbooked, day.unbooked_last
    latched = day.loss_latched
    drawdown = day.drawdown
    results: list[Decimal] = []
    for booking in bookings:
        gained = _ZERO
        if isinstance(booking, EquityRead):
            drawdown = observe(drawdown, booking.equity, booking.rule)
        elif isinstance(booking, Fill):
            basis, gained = _book_fill(basis, booking)
        elif isinstance(booking, Amount):
            gained = booking.pnl
        else:
            unbooked, last = unbooked + 1, booking.detail[:_DETAIL_CHARS]
        realized += gained
        results.append(gained)
        # After each booking: a loss that crossed the limit latches even if a later
        # booking of the same save wins some of it back.
        if max_daily_loss is not None and -realized >= max_daily_loss:
            latched = True
    new = replace(
        day,
        realized=realized,
        loss_latched=latched,
        basis=basis,
        unbooked=unbooked,
        unbooked_last=last,
        drawdown=drawdown,
    )
    return new, tuple(results)


def _book_fill(
    basis: Mapping[str, tuple[Decimal, Decimal]], fill: Fill
) -> tuple[dict[str, tuple[Decimal, Decimal]], Decimal]:
    pos, avg = basis.get(fill.symbol, (_ZERO, _ZERO))
    qty, price = fill.qty, fill.price
    signed = qty if fill.side == "buy" else -qty
    realized = _ZERO
    new = pos + signed
    if pos == 0 or (pos > 0) == (signed > 0):
        avg = (avg * abs(pos) + price * qty) / abs(new) if new else _ZERO
    else:
        closed = min(abs(pos), qty)
        realized = (price - avg) * closed * (1 if pos > 0 else -1)
        if new == 0:
            avg = _ZERO
        elif (new > 0) != (pos > 0):
            avg = price  # flipped: the rest opened at this price
    out = dict(basis)
    if new == 0:
        out.pop(fill.symbol, None)
    else:
        out[fill.symbol] = (new, avg)
    return out, realized


# -- the document ---------------------------------------------------------------------------
def day_doc(day: RiskDay, updated_at: float) -> dict[str, Any]:
    """The JSON document for ``day``; Decimals as exact strings (``"-450.25"``)."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "day": day.day,
        "realized_pnl": str(day.realized),
        "loss_latched": day.loss_latched,
        "cost_basis": {
            symbol: {"position": str(pos), "avg_price": str(avg)}
            for symbol, (pos, avg) in sorted(day.basis.items())
        },
        "updated_at": updated_at,
    }
    if day.unbooked:
        doc["unbooked"] = {"count": day.unbooked, "last": day.unbooked_last}
    doc.update(_drawdown_doc(day.drawdown))
    return doc


def _drawdown_doc(dd: Drawdown) -> dict[str, Any]:
    """The drawdown keys (none before the first good equity read, as before issue 24)."""
    if dd.peak_equity is None or dd.equity is None:
        return {}
    doc: dict[str, Any] = {
        "peak_equity": str(dd.peak_equity),
        "equity": str(dd.equity),
        "drawdown": str(dd.drawdown),
        "breach_reads": dd.breach_reads,
    }
    if dd.day_open_equity is not None:
        doc["day_open_equity"] = str(dd.day_open_equity)
    if dd.latched:
        doc["drawdown_latched"] = {"detail": dd.latched_detail}
    return doc


def parse_day(doc: Mapping[str, Any]) -> DayRead:
    """Read a ``risk_pnl.json`` document; never raises (rule 3)."""
    try:
        return DayRead(_parse(doc))
    except _Invalid as exc:
        return DayRead(None, str(exc))


class _Invalid(Exception):
    pass


def _parse(doc: Mapping[str, Any]) -> RiskDay:
    if doc.get("schema") != SCHEMA:
        raise _Invalid(f"schema={doc.get('schema')!r}, expected {SCHEMA}")
    day = doc.get("day")
    try:
        if not isinstance(day, str) or date.fromisoformat(day).isoformat() != day:
            raise ValueError
    except ValueError:
        raise _Invalid(f"day={day!r} is not a YYYY-MM-DD date") from None
    realized = _decimal(doc.get("realized_pnl"), "realized_pnl", total_problem)
    latched = doc.get("loss_latched", False)
    if not isinstance(latched, bool):
        raise _Invalid(f"loss_latched={latched!r} is not true or false")
    return RiskDay(
        day,
        realized,
        latched,
        _basis(doc.get("cost_basis", {})),
        *_unbooked(doc.get("unbooked")),
        _drawdown(doc),
    )


def _drawdown(doc: Mapping[str, Any]) -> Drawdown:
    """The drawdown keys; a partial or inconsistent set is invalid, never a fresh start."""
    keys = ("peak_equity", "equity", "drawdown", "breach_reads")
    present = [key for key in keys if key in doc]
    latched_raw = doc.get("drawdown_latched")
    if not present:
        if latched_raw is not None or "day_open_equity" in doc:
            raise _Invalid("drawdown_latched or day_open_equity without peak_equity")
        return Drawdown()
    if len(present) != len(keys):
        missing = [key for key in keys if key not in doc]
        raise _Invalid(f"drawdown keys incomplete: {', '.join(missing)} missing")
    peak = _decimal(doc["peak_equity"], "peak_equity", amount_problem)
    equity = _decimal(doc["equity"], "equity", amount_problem)
    drawdown = _decimal(doc["drawdown"], "drawdown", total_problem)
    if equity > peak or drawdown != peak - equity:
        raise _Invalid(f"peak_equity={peak} equity={equity} drawdown={drawdown} disagree")
    count = doc["breach_reads"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise _Invalid(f"breach_reads={count!r} is not a whole number >= 0")
    day_open = None
    if "day_open_equity" in doc:
        day_open = _decimal(doc["day_open_equity"], "day_open_equity", amount_problem)
    detail = ""
    if latched_raw is not None:
        if not isinstance(latched_raw, Mapping):
            raise _Invalid(f"drawdown_latched={latched_raw!r} is not an object")
        detail = str(latched_raw.get("detail", ""))[:_DETAIL_CHARS]
    return Drawdown(peak, equity, day_open, count, latched_raw is not None, detail)


def _basis(raw: Any) -> dict[str, tuple[Decimal, Decimal]]:
    if not isinstance(raw, Mapping):
        raise _Invalid(f"cost_basis is a {type(raw).__name__}, not an object")
    out = {}
    for symbol, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise _Invalid(f"cost_basis.{symbol} is not an object")
        pos = _decimal(entry.get("position"), f"cost_basis.{symbol}.position", total_problem)
        avg = _decimal(entry.get("avg_price"), f"cost_basis.{symbol}.avg_price", total_problem)
        if avg < 0 or (pos != 0 and avg == 0):
            raise _Invalid(f"cost_basis.{symbol}.avg_price={avg} is not a price")
        if pos != 0:
            out[symbol] = (pos, avg)
    return out


def _unbooked(raw: Any) -> tuple[int, str]:
    if raw is None:
        return 0, ""
    count = raw.get("count") if isinstance(raw, Mapping) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _Invalid(f"unbooked={raw!r} has no count of at least 1")
    return count, str(raw.get("last", ""))


def _decimal(raw: Any, key: str, check: Callable[[Decimal], str | None]) -> Decimal:
    """A Decimal from its string (as written) or a JSON number (as an operator may write)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _Invalid(f"{key}={raw!r} is not a number")
    try:
        value = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(raw)
    except InvalidOperation:
        raise _Invalid(f"{key}={raw!r} is not a number") from None
    problem = check(value)
    if problem is not None:
        raise _Invalid(f"{key}={raw!r} {problem}")
    return value

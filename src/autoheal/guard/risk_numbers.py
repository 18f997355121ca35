"""Which numbers the risk checks accept: one home for "is this a usable amount".

Every number that reaches a limit passes here first: the ``[risk]`` limits, an order's
quantity and price, the book's positions, open orders and marks, a fill, a realized
PnL, the durable day's totals. A bad number must be stopped before any arithmetic,
because each kind fails open in its own way: a NaN compares false with every limit
(or raises), an infinite price books an infinite gain that no loss can cross, a mark
of zero values any order at zero, and ``1E+999999`` overflows the Decimal context and
raises in the middle of a check.

The rule: a :class:`~decimal.Decimal` (not a float, an int or a bool: the caller chose
the exact value), finite, and either zero where zero means something (a flat
position, a PnL of nothing) or of magnitude between :data:`MIN_AMOUNT` and
:data:`MAX_AMOUNT`. Within that band every product and quotient the checks form
(quantity x price, a collar's distance over the mark, an average cost) stays far from
the context's limits, so no arithmetic downstream can trap. The checks here only
compare and ``copy_abs`` (exact, context-free): ``abs()`` of ``1E+999999999999`` would
itself overflow. Totals kept across fills
(the day's PnL, a cost basis) are only held to :data:`MAX_TOTAL`, which no real book
reaches and which keeps their sums equally safe.

Pure and stdlib-only: :mod:`autoheal.guard.risk_limits` (imported by the config
loader) uses it too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeGuard

__all__ = [
    "MAX_AMOUNT",
    "MAX_TOTAL",
    "MIN_AMOUNT",
    "amount_problem",
    "is_amount",
    "is_signed",
    "signed_problem",
    "total_problem",
]

#: The largest quantity, price, mark, position or limit the checks accept (no real
#: market comes within many orders of magnitude of it).
MAX_AMOUNT = Decimal("1e30")
#: The smallest non-zero one (far below a wei, 1e-18).
MIN_AMOUNT = Decimal("1e-30")
#: The largest running total (the day's PnL, a cost-basis position) read back from disk.
MAX_TOTAL = Decimal("1e100")


def is_amount(value: Any) -> TypeGuard[Decimal]:
    """Whether ``value`` is a usable positive amount (the hot path: no message built)."""
    return isinstance(value, Decimal) and value.is_finite() and MIN_AMOUNT <= value <= MAX_AMOUNT


def is_signed(value: Any) -> TypeGuard[Decimal]:
    """Whether ``value`` is a usable signed amount (zero, or a usable amount either side)."""
    return (
        isinstance(value, Decimal)
        and value.is_finite()
        and (value.is_zero() or MIN_AMOUNT <= value.copy_abs() <= MAX_AMOUNT)
    )


def amount_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable positive amount (a quantity, a price, a mark, a limit).

    Returns:
        ``None`` when it is; else a short phrase for a log line ("is not finite").
    """
    if is_amount(value):
        return None
    return _problem(value) or ("is not greater than zero" if value <= 0 else _out_of_band(value))


def signed_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable signed amount (a position, one realized PnL): zero is."""
    if is_signed(value):
        return None
    return _problem(value) or _out_of_band(value)


def total_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable running total (the day's PnL as stored)."""
    problem = _problem(value)
    if problem is not None:
        return problem
    return None if value.copy_abs() <= MAX_TOTAL else f"is beyond {MAX_TOTAL} in magnitude"


def _problem(value: Any) -> str | None:
    if not isinstance(value, Decimal):
        return f"is a {type(value).__name__}, not a Decimal"
    if not value.is_finite():  # before any comparison: a signalling NaN raises on one
        return "is not finite"
    return None


def _out_of_band(value: Decimal) -> str:
    return f"is outside {MIN_AMOUNT} to {MAX_AMOUNT} in magnitude"

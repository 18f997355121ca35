"""Order identity: the signature that names an order, and an idempotency key's one order.

A signal's *signature* is a hash of its normalised symbol, side, quantity and price
(:func:`order_signature`); ``("btc/usdt", "BUY", 0.0010)`` and ``("BTCUSDT", "buy",
0.001)`` sign the same. The signature is the order's ``client_order_id``, so the
exchange itself recognises a resend of the same order. A caller may instead name its
own idempotency *key*: the same key with different parameters is an error
(:class:`IdempotencyKeyConflictError`), never a duplicate. Pure rules, no file: the
ledger that records them is :class:`~autoheal.guard.idempotency.OrderLedger`.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

from autoheal.guard._symbols import normalize_action, normalize_symbol
from autoheal.guard.errors import GuardError

__all__ = ["KEY_CONFLICT", "IdempotencyKeyConflictError", "order_signature"]

KEY_CONFLICT = "idempotency_key_conflict"


class IdempotencyKeyConflictError(GuardError, ValueError):
    """An idempotency key reused for an order with different parameters: an error, not a
    duplicate (``reason`` ``idempotency_key_conflict``)."""

    def __init__(self, key: str, *, recorded: str, requested: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for another order "
            f"(recorded {recorded}, requested {requested})",
            reason=KEY_CONFLICT,
        )
        self.key = key


def _canonical_number(value: float | int | str | Decimal | None, *, what: str) -> str:
    if value is None:
        return "market"
    try:
        # str(float) is the shortest round-trip form: 0.1 signs as "0.1", not 0.1000000000000000055.
        dec = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"{what} {value!r} is not a number") from exc
    if not dec.is_finite() or dec <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return format(dec.normalize(), "f")


def order_signature(
    symbol: str, side: str, qty: float | str | Decimal, price: float | str | Decimal | None = None
) -> str:
    """The signature of an order over normalised values.

    ``("btc/usdt", "BUY", 0.0010)`` and ``("BTCUSDT", "buy", 0.001)`` sign the same.

    Raises:
        ValueError: unknown side, or a quantity/price that is not a positive finite number.
    """
    act = normalize_action(side)
    if act not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, got {side!r}")
    canonical = "|".join(
        (
            normalize_symbol(symbol),
            act,
            _canonical_number(qty, what="qty"),
            _canonical_number(price, what="price"),
        )
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def describe_record(entry: dict[str, Any]) -> str:
    """A ledger record for a conflict's message: ``buy 0.01 BTCUSDT @ market``."""
    return (
        f"{entry.get('side')} {entry.get('qty')} {entry.get('symbol')} "
        f"@ {entry.get('price') or 'market'}"
    )


def describe_order(symbol: str, side: str, qty: Any, price: Any) -> str:
    """An order's parameters, described as its record would be."""
    return describe_record(
        {
            "symbol": normalize_symbol(symbol),
            "side": normalize_action(side),
            "qty": str(qty),
            "price": None if price is None else str(price),
        }
    )

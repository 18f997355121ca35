"""The fake exchange's books: seeded random-walk prices and a ledger of filled orders.

Pure: no clock is read here (``now`` is passed in) and randomness comes from a
``random.Random`` the caller seeds, so a drill that logs its seed can replay
the same prices. Orders fill at once, like a market order on a liquid book.

Idempotency mirrors real exchanges: an order whose ``client_order_id`` was
seen before returns the *same* order and changes nothing, so a client that
retries after a timeout cannot double its position.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_PRICES", "Ledger", "OrderRejectedError", "PriceWalk"]

DEFAULT_PRICES = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "SOLUSDT": 150.0}
QUOTE = "USDT"
#: Float dust below this is treated as zero when checking balances.
EPSILON = 1e-9


class OrderRejectedError(ValueError):
    """An order the exchange refuses; ``reason`` is the error token in the 400 body."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class PriceWalk:
    """Geometric random walk per symbol, one step per :meth:`step`."""

    rng: random.Random
    prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    volatility: float = 0.0005

    @property
    def symbols(self) -> list[str]:
        return sorted(self.prices)

    def step(self) -> None:
        for symbol in self.symbols:
            drift = math.exp(self.rng.gauss(0.0, self.volatility))
            self.prices[symbol] = round(self.prices[symbol] * drift, 4)

    def quote(self, symbol: str, now: float) -> dict[str, Any]:
        """The ticker document for one symbol; ``KeyError`` for an unknown one."""
        return {"symbol": symbol, "price": self.prices[symbol], "ts": now}


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> ``("BTC", "USDT")``; every demo market is quoted in USDT."""
    return symbol.removesuffix(QUOTE), QUOTE


@dataclass(slots=True)
class Ledger:
    """Balances and filled orders, keyed by ``client_order_id``."""

    balances: dict[str, float] = field(default_factory=lambda: {QUOTE: 100000.0})
    orders: list[dict[str, Any]] = field(default_factory=list)
    by_client_id: dict[str, dict[str, Any]] = field(default_factory=dict)

    def place(
        self, doc: Any, walk: PriceWalk, now: float
    ) -> tuple[dict[str, Any], bool]:
        """Validate and fill an order.

        Args:
            doc: the ``POST /api/orders`` body.
            walk: current prices (used when the order has no price).
            now: unix time stamped on the order.

        Returns:
            ``(order, created)``; ``created`` is False for a repeated client_order_id.

        Raises:
            OrderRejectedError: ``invalid_order`` or ``insufficient_funds``.
        """
        if not isinstance(doc, dict):
            raise OrderRejectedError("invalid_order", "body must be a JSON object")
        client_id = doc.get("client_order_id")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise OrderRejectedError("invalid_order", "client_order_id must be a string")
        if client_id is not None and client_id in self.by_client_id:
            return self.by_client_id[client_id], False
        symbol, side, qty, price = self._validate(doc, walk)
        base, quote = split_symbol(symbol)
        cost = qty * price
        if side == "buy" and self.balances.get(quote, 0.0) + EPSILON < cost:
            raise OrderRejectedError("insufficient_funds", f"need {cost:.8f} {quote}")
        if side == "sell" and self.balances.get(base, 0.0) + EPSILON < qty:
            raise OrderRejectedError("insufficient_funds", f"need {qty:.8f} {base}")
        sign = 1.0 if side == "buy" else -1.0
        self.balances[base] = round(self.balances.get(base, 0.0) + sign * qty, 12)
        self.balances[quote] = round(self.balances.get(quote, 0.0) - sign * cost, 8)
        order: dict[str, Any] = {
            "order_id": f"demo-{len(self.orders) + 1}",
            "client_order_id": client_id or f"auto-{len(self.orders) + 1}",
            "symbol": symbol,
            "side": side,
            "qty": qty,
            "price": price,
            "status": "filled",
            "filled": qty,
            "ts": now,
        }
        self.orders.append(order)
        self.by_client_id[order["client_order_id"]] = order
        return order, True

    @staticmethod
    def _validate(doc: dict[str, Any], walk: PriceWalk) -> tuple[str, str, float, float]:
        symbol = doc.get("symbol")
        if symbol not in walk.prices:
            raise OrderRejectedError("invalid_order", f"unknown symbol {symbol!r}")
        side = str(doc.get("side", "")).lower()
        if side not in ("buy", "sell"):
            raise OrderRejectedError("invalid_order", "side must be buy or sell")
        qty = doc.get("qty")
        if isinstance(qty, bool) or not isinstance(qty, int | float) or not qty > 0:
            raise OrderRejectedError("invalid_order", "qty must be a positive number")
        price = doc.get("price")
        if price is None:
            price = walk.prices[symbol]
        if isinstance(price, bool) or not isinstance(price, int | float) or not price > 0:
            raise OrderRejectedError("invalid_order", "price must be a positive number")
        return symbol, side, float(qty), float(price)

    def balance_doc(self) -> dict[str, Any]:
        return {asset: {"free": amount, "used": 0.0, "total": amount}
                for asset, amount in sorted(self.balances.items())}

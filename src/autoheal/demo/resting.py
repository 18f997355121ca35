"""The fake exchange's resting limit orders, its cancel-all and its cancel-all-after countdown.

Pure: the clock is passed in (``now``), nothing is read or written. The exchange
shell (:mod:`autoheal.demo.exchange`) calls :meth:`RestingBook.expire` on every
request and from a background task, so the countdown fires on time whether or not
anyone is talking to the exchange — exactly what a dead trading host relies on.

The countdown mirrors the real ones (Binance ``countdownCancelAll``, BitMEX
``cancelAllAfter``): arming it with ``countdown_s > 0`` (re)starts it at
``now + countdown_s``; arming with ``0`` switches it off; when it runs out every
resting order is cancelled (reason ``countdown``) and the countdown is off until
armed again. An explicit cancel-all cancels with reason ``cancel_all``. Each
cancellation keeps its reason and time, so a drill can tell who emptied the book.

Resting orders never fill in the demo: they stand for the orders a dead host
leaves behind at the exchange. They reserve no balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CANCEL", "CANCEL_ALL", "COUNTDOWN", "Countdown", "RestingBook"]

CANCEL = "cancel"
CANCEL_ALL = "cancel_all"
COUNTDOWN = "countdown"
#: The longest countdown the demo accepts (Binance's limit is far below a day too).
MAX_COUNTDOWN_S = 86400.0


@dataclass(frozen=True, slots=True)
class Countdown:
    """The cancel-all-after timer: off (``deadline is None``) or running until ``deadline``."""

    countdown_s: float = 0.0
    deadline: float | None = None

    @property
    def armed(self) -> bool:
        return self.deadline is not None


@dataclass(slots=True)
class RestingBook:
    """Open limit orders by order id, the countdown, and every cancellation with its reason."""

    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_client_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    countdown: Countdown = field(default_factory=Countdown)
    countdown_fired: int = 0
    _next_id: int = 1

    def add(self, symbol: str, side: str, qty: float, price: float, *, client_order_id: str,
            now: float) -> dict[str, Any]:
        """Rest a validated limit order; returns its document (status ``open``, filled 0)."""
        order_id = f"rest-{self._next_id}"
        self._next_id += 1
        order: dict[str, Any] = {
            "order_id": order_id, "client_order_id": client_order_id, "symbol": symbol,
            "side": side, "qty": qty, "price": price, "type": "limit", "status": "open",
            "filled": 0.0, "ts": now,
        }
        self.open[order_id] = order
        self.by_client_id[client_order_id] = order
        return order

    def arm(self, countdown_s: float, now: float) -> Countdown:
        """(Re)start the countdown at ``now + countdown_s``; ``0`` switches it off.

        Raises:
            ValueError: a negative, non-finite or over-long countdown.
        """
        if not 0 <= countdown_s <= MAX_COUNTDOWN_S:
            raise ValueError(f"countdown must be within 0..{MAX_COUNTDOWN_S:g} s")
        self.countdown = (Countdown() if countdown_s == 0
                          else Countdown(countdown_s, now + countdown_s))
        return self.countdown

    def cancel_all(self, now: float, reason: str = CANCEL_ALL,
                   symbol: str | None = None) -> list[dict[str, Any]]:
        """Cancel every open order (of ``symbol``, if given); returns the cancelled ones."""
        gone = [o for o in self.open.values() if symbol is None or o["symbol"] == symbol]
        for order in gone:
            del self.open[order["order_id"]]
            order["status"] = "cancelled"
            order["cancel_reason"] = reason
            order["cancelled_ts"] = now
            self.cancelled.append(order)
        return gone

    def cancel(self, order_id: str, now: float, reason: str = CANCEL) -> dict[str, Any] | None:
        """Cancel one open order by its order id; ``None`` when it is not open."""
        order = self.open.pop(order_id, None)
        if order is None:
            return None
        order["status"] = "cancelled"
        order["cancel_reason"] = reason
        order["cancelled_ts"] = now
        self.cancelled.append(order)
        return order

    def expire(self, now: float) -> list[dict[str, Any]] | None:
        """Fire the countdown if it ran out: cancel all, switch it off.

        Returns:
            the orders it cancelled (maybe none) when it fired, else ``None``.
        """
        deadline = self.countdown.deadline
        if deadline is None or now < deadline:
            return None
        self.countdown = Countdown()
        self.countdown_fired += 1
        return self.cancel_all(now, COUNTDOWN)

    def countdown_doc(self, now: float) -> dict[str, Any]:
        deadline = self.countdown.deadline
        return {
            "armed": deadline is not None,
            "countdown_s": self.countdown.countdown_s,
            "deadline": deadline,
            "remaining_s": None if deadline is None else max(0.0, deadline - now),
            "fired": self.countdown_fired,
        }

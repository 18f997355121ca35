"""The venue's own dead man's switch through ccxt: the port :class:`DeadmanSwitch` arms.

Two ways to arm it, chosen once, when the port is made:

* ccxt's unified ``cancel_all_orders_after(timeout_ms)``, where the exchange class
  declares ``has['cancelAllOrdersAfter']`` (bybit, okx, kraken, krakenfutures, htx,
  bingx, bitvavo, woo, hyperliquid, ...). One call covers the account.
* Binance's ``countdownCancelAll``, which ccxt has only as raw endpoints, per symbol
  and per market family: ``fapiPrivatePostCountdownCancelAll`` (USDⓈ-M),
  ``dapiPrivatePostCountdownCancelAll`` (COIN-M), ``eapiPrivatePostCountdownCancelAll``
  (options). Each of the port's symbols is armed.

A venue with neither is a configuration error naming the venue
(:class:`CountdownUnsupportedError`), never a switch that silently arms nothing.
The countdown is the venue's: when it runs out the venue cancels *every* open order
(of the account, or of the symbol on Binance), a person's too; the kill of
:class:`~autoheal.ccxt.guarded.GuardedExchange` is what spares them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from autoheal.ccxt.identity import DEFAULT_PREFIX, check_prefix, is_own

__all__ = ["BINANCE_RAW", "UNIFIED", "CcxtCountdownPort", "CountdownUnsupportedError"]

log = logging.getLogger("autoheal.ccxt")

UNIFIED = "cancel_all_orders_after"
#: The shortest countdown sent through the unified method (see :meth:`CcxtCountdownPort.arm`).
MIN_UNIFIED_MS = 1000
#: Binance's raw countdown endpoint per ccxt market family.
BINANCE_RAW = {
    "linear": "fapiPrivatePostCountdownCancelAll",
    "inverse": "dapiPrivatePostCountdownCancelAll",
    "option": "eapiPrivatePostCountdownCancelAll",
}


class CountdownUnsupportedError(ValueError):
    """The venue has no cancel-all-after countdown that ccxt can arm."""


def countdown_way(exchange: Any) -> str:
    """:data:`UNIFIED`, or ``"binance"`` for the raw endpoints.

    Raises:
        CountdownUnsupportedError: the venue has neither.
    """
    has = getattr(exchange, "has", None) or {}
    if has.get("cancelAllOrdersAfter") and callable(getattr(exchange, UNIFIED, None)):
        return UNIFIED
    if any(callable(getattr(exchange, raw, None)) for raw in BINANCE_RAW.values()):
        return "binance"
    name = getattr(exchange, "id", type(exchange).__name__)
    raise CountdownUnsupportedError(
        f"{name}: ccxt has no cancel-all-after countdown for this venue (neither the "
        "unified cancelAllOrdersAfter nor Binance's countdownCancelAll), so its dead man's "
        "switch cannot be armed; trade on a venue that has one, or run without the deadman"
    )


class CcxtCountdownPort:
    """:class:`~autoheal.guard.deadman.CountdownPort` over a ``ccxt.async_support`` exchange.

    Args:
        exchange: the ccxt exchange (credentials set).
        symbols: the unified symbols traded (Binance arms each; the cancel-all covers each).
        own_prefix: when given, the cancel-all cancels only orders whose client order id
            carries it (this runtime's, :mod:`autoheal.ccxt.identity`); ``None``: every
            open order of the symbols (ccxt's ``cancel_all_orders``).

    Raises:
        CountdownUnsupportedError: the venue has no countdown (see the module docstring).
        ValueError: no symbols, or a bad prefix.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: Sequence[str],
        *,
        own_prefix: str | None = DEFAULT_PREFIX,
    ) -> None:
        if not symbols:
            raise ValueError("CcxtCountdownPort needs the symbols traded")
        self.exchange = exchange
        self.symbols = tuple(symbols)
        self.own_prefix = None if own_prefix is None else check_prefix(own_prefix)
        self.way = countdown_way(exchange)

    async def arm(self, countdown_s: float) -> None:
        """(Re)start the venue's countdown; raises what ccxt raised (the switch retries)."""
        timeout_ms = max(0, round(countdown_s * 1000))
        if self.way == UNIFIED:
            if timeout_ms < MIN_UNIFIED_MS:
                # ccxt sends whole seconds to most venues (OKX: int(ms / 1000)): under a
                # second the countdown would be sent as 0, which switches it *off*.
                raise ValueError(
                    f"{self.exchange.id}: a countdown of {countdown_s:g}s is under "
                    f"{MIN_UNIFIED_MS / 1000:g}s; ccxt would send 0, which switches it off"
                )
            await self.exchange.cancel_all_orders_after(timeout_ms)
            return
        await self.exchange.load_markets()  # cached by ccxt after the first call
        for symbol in self.symbols:
            market = self.exchange.market(symbol)
            family = (
                "option"
                if market.get("option")
                else ("inverse" if market.get("inverse") else "linear")
            )
            raw = getattr(self.exchange, BINANCE_RAW[family], None)
            if not callable(raw):
                raise CountdownUnsupportedError(
                    f"{self.exchange.id}: no countdownCancelAll for {symbol} ({family})"
                )
            await raw({"symbol": market["id"], "countdownTime": timeout_ms})

    async def cancel_all(self) -> int | None:
        """Cancel now: this runtime's open orders, or every one (see ``own_prefix``)."""
        if self.own_prefix is None:
            for symbol in self.symbols:
                await self.exchange.cancel_all_orders(symbol)
            return None
        cancelled = 0
        for symbol in self.symbols:
            for order in await self.exchange.fetch_open_orders(symbol):
                if is_own(order, self.own_prefix):
                    await self.exchange.cancel_order(order["id"], symbol)
                    cancelled += 1
        return cancelled

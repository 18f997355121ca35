"""The trader's REST client for the fake exchange, with errors mapped at the boundary.

An exchange's "no" arrives as a 400 with an ``error`` token in the body. It is
raised here as an exception named like the ccxt class for the same thing
(``InsufficientFunds``, ``InvalidOrder``), so :func:`autoheal.guard.classify`
places it by class name, exactly as it would a real exchange library's. Every
other failure is httpx's own exception (``HTTPStatusError`` keeps the response,
so the status and ``Retry-After`` stay visible to the classifier).
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ExchangeClient", "ExchangeRejectedError", "InsufficientFunds", "InvalidOrder"]


class ExchangeRejectedError(Exception):
    """The exchange refused a request for a reason of its own (a 400 with an error token)."""

    def __init__(self, token: str, detail: str = "") -> None:
        super().__init__(f"{token}: {detail}" if detail else token)
        self.token = token


class InsufficientFunds(ExchangeRejectedError):
    """Not enough balance for the order."""


class InvalidOrder(ExchangeRejectedError):
    """The order itself is wrong (symbol, side, quantity)."""


_REJECTIONS: dict[str, type[ExchangeRejectedError]] = {
    "insufficient_funds": InsufficientFunds,
    "invalid_order": InvalidOrder,
    "invalid_symbol": InvalidOrder,
    "client_order_id_conflict": InvalidOrder,
}


class ExchangeClient:
    """Thin async wrapper over the fake exchange's REST API.

    Args:
        http: an ``httpx.AsyncClient`` whose ``base_url`` is the exchange.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def fetch_balance(self) -> dict[str, Any]:
        """``{"USDT": {"free": ...}, ...}``."""
        doc = await self._request("GET", "/api/balance")
        return dict(doc.get("balances", {}))

    async def load_markets(self) -> list[str]:
        """The tradable symbols."""
        doc = await self._request("GET", "/api/markets")
        return [str(s) for s in doc.get("symbols", [])]

    async def create_order(self, symbol: str, side: str, qty: float, price: float | None,
                           client_order_id: str, *, order_type: str = "market"
                           ) -> dict[str, Any]:
        """Place an order; a repeated ``client_order_id`` returns the original order.

        ``order_type="limit"`` rests it in the book at ``price`` instead of filling it.
        """
        body: dict[str, Any] = {"symbol": symbol, "side": side, "qty": qty, "price": price,
                                "client_order_id": client_order_id}
        if order_type != "market":
            body["type"] = order_type
        return await self._request("POST", "/api/orders", json=body)

    async def fetch_order(self, client_order_id: str) -> dict[str, Any] | None:
        """The order with this client order id, or ``None`` when the exchange has none."""
        response = await self._http.get("/api/orders",
                                        params={"client_order_id": client_order_id})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        doc = response.json()
        if not isinstance(doc, dict):
            raise httpx.DecodingError("/api/orders did not return a JSON object")
        return doc

    async def fetch_orders(self) -> list[dict[str, Any]]:
        doc = await self._request("GET", "/api/orders")
        return list(doc.get("orders", []))

    async def fetch_open_orders(self) -> list[dict[str, Any]]:
        """The orders resting in the exchange's book (``GET /api/open_orders``).

        Raises:
            httpx.DecodingError: the answer has no ``orders`` list (never read as none).
        """
        doc = await self._request("GET", "/api/open_orders")
        orders = doc.get("orders")
        if not isinstance(orders, list):
            raise httpx.DecodingError("/api/open_orders did not return an orders list")
        return orders

    async def cancel_order(self, order_id: str) -> bool:
        """Cancel one resting order (``DELETE /api/orders?order_id=``); False when it was
        not resting (gone already: the next read of the open orders says)."""
        response = await self._http.delete("/api/orders", params={"order_id": order_id})
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code == 400:
            try:
                doc = response.json()
            except ValueError:
                doc = {}
            token = str(doc.get("error", ""))
            if token in _REJECTIONS:
                raise _REJECTIONS[token](token, str(doc.get("detail", "")))
        response.raise_for_status()
        result = response.json()
        if not isinstance(result, dict):
            raise httpx.DecodingError(f"{path} did not return a JSON object")
        return result

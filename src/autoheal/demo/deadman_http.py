"""The demo exchange's side of the dead man's switch: a :class:`CountdownPort` over httpx.

``autoheal.guard`` imports no HTTP library, so the exchange-specific port lives
with the client that speaks to that exchange. Another exchange plugs in the same
way, with two calls (Binance: ``POST /fapi/v1/countdownCancelAll`` with
``countdownTime`` in ms, ``DELETE /fapi/v1/allOpenOrders``; BitMEX:
``POST /api/v1/order/cancelAllAfter`` with ``timeout`` in ms,
``DELETE /api/v1/order/all``), signed as that exchange requires.
"""

from __future__ import annotations

import logging

import httpx

__all__ = ["CancelDisabledPort", "DemoCountdownPort"]

log = logging.getLogger("autoheal.demo.deadman")


class DemoCountdownPort:
    """``POST /api/countdown_cancel_all`` and ``DELETE /api/open_orders`` on the fake exchange.

    Args:
        http: an ``httpx.AsyncClient`` whose ``base_url`` is the exchange (its timeout
            bounds every call).
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def arm(self, countdown_s: float) -> None:
        response = await self._http.post("/api/countdown_cancel_all",
                                         json={"countdown_ms": round(countdown_s * 1000)})
        response.raise_for_status()

    async def cancel_all(self) -> int | None:
        response = await self._http.delete("/api/open_orders")
        response.raise_for_status()
        count = response.json().get("cancelled")
        return count if isinstance(count, int) else None


class CancelDisabledPort(DemoCountdownPort):
    """A port whose cancel-all does nothing: the mutation that must make a drill FAIL."""

    async def cancel_all(self) -> int | None:
        log.warning("!!! deadman cancel-all DISABLED (mutation test): no cancel sent !!!")
        return 0

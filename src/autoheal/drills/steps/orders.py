"""Orders that are never sent twice: an unknown outcome is reconciled, never resent blind.

``unknown_outcome_never_resent`` runs the demo trader's guarded order path
(:class:`~autoheal.demo.session.TradingSession`, as ``duplicate_signals`` does)
against the real fake exchange, whose ``accept_then_drop`` fault *accepts* the next
order and then cuts the connection without an answer: the order exists, the trader
cannot know. The ledger keeps it ``pending``. The same signal then comes again; the
trader must ask the exchange for the order's client order id (the signature) first,
find it, settle it as placed, and send nothing. Counted at the exchange.

Mutations (each must FAIL the drill):

* ``reconcile = false``: a pending order is resent blind. The client order id is
  still the signature, so the exchange answers "duplicate" (one order) but a second
  order request reached it (``order_requests_at_exchange`` == 2).
* ``client_order_id = "random"``: the client order id is not derived from the
  signature; the lookup finds nothing, the order is sent again and the exchange
  fills it twice (``orders_at_exchange`` == 2, the position doubled).
"""

from __future__ import annotations

import uuid
from typing import Any

from autoheal.demo.client import ExchangeClient
from autoheal.demo.session import TradingSession
from autoheal.drills.context import DrillContext
from autoheal.drills.steps.guard import make_session
from autoheal.store.atomic import read_json

__all__ = ["unknown_outcome_never_resent"]

ORDERS = "POST /api/orders"
LOOKUPS = "GET /api/orders"


class _BlindResendSession(TradingSession):
    """The mutation: an unknown outcome is forgotten and the order sent again unasked."""

    async def _reconcile(self, symbol: str, side: str, sig: str) -> bool:
        self.ledger.release(sig)
        return True


class _RandomIdClient(ExchangeClient):
    """The mutation: every send gets a fresh client order id, not the signature."""

    async def create_order(self, symbol: str, side: str, qty: float, price: float | None,
                           client_order_id: str, *, order_type: str = "market"
                           ) -> dict[str, Any]:
        return await super().create_order(symbol, side, qty, price, uuid.uuid4().hex,
                                          order_type=order_type)


async def unknown_outcome_never_resent(ctx: DrillContext) -> None:
    """Accepted, then the connection cut; the repeat reconciles by client order id."""
    p = ctx.params
    price, repeats = float(p.get("price", 60000.0)), int(p.get("repeats", 3))
    ex = await ctx.start_exchange()
    async with ex.client() as http:
        session = make_session(ctx, http)
        if not bool(p.get("reconcile", True)):
            session = _BlindResendSession(session.args, http)
        if str(p.get("client_order_id", "signature")) == "random":
            session.exchange = _RandomIdClient(http)
        symbol, qty = session.args.symbol, session.args.qty
        session.markets = set(await session.exchange.load_markets())  # a warm trader
        base0 = _base_balance(await ex.stats(), symbol)
        orders0, requests0 = await ex.orders(), await ex.calls(ORDERS)
        lookups0 = await ex.calls(LOOKUPS)
        await ex.set_fault("accept_then_drop", paths=[ORDERS], count=1)
        ctx.mark_fault()
        first = await session.on_signal("buy", price)
        sig = next(iter(_pending(session)), None)
        if sig is not None:
            ctx.event("outcome_unknown")
            ctx.gate("order_outcome_unknown")
        ctx.observe("first_send_reported_placed", first)
        await ex.clear_fault()
        for _ in range(repeats):  # the same signal again: the repeat call
            await session.on_signal("buy", price)
        if sig is not None and session.ledger.status(sig) == "placed":
            ctx.event("reconciled")
        stats = await ex.stats()
        new_orders = stats["orders"][orders0:]
        kept = session.ledger.result(sig) if sig is not None else None
        ctx.observe("orders_at_exchange", await ex.orders() - orders0)
        ctx.observe("order_requests_at_exchange", await ex.calls(ORDERS) - requests0)
        ctx.observe("lookups_at_exchange", await ex.calls(LOOKUPS) - lookups0)
        ctx.observe("ledger_status", None if sig is None else session.ledger.status(sig))
        ctx.observe("kept_result_is_the_exchanges_order",
                    isinstance(kept, dict) and bool(new_orders)
                    and kept.get("order_id") == new_orders[0]["order_id"])
        bought = round(_base_balance(stats, symbol) - base0, 12)
        ctx.observe("bought_at_exchange", bought)
        held = (session.inventory.positions() or {}).get(symbol)
        ctx.observe("trader_position_matches_exchange", held == bought)
        ctx.details["qty"] = qty
        ctx.observe("log", [line for line in ctx.logs.lines
                            if "pending" in line or "found at the exchange" in line
                            or "not at the exchange" in line])
        ctx.details["client_order_id"] = sig


def _base_balance(stats: dict[str, Any], symbol: str) -> float:
    base = symbol.removesuffix("USDT")
    return float(((stats.get("balances") or {}).get(base) or {}).get("total", 0.0))


def _pending(session: TradingSession) -> list[str]:
    """Signatures whose outcome is unknown (read from the ledger file, as any process would)."""
    doc = read_json(session.ledger.path).doc or {}
    sigs = doc.get("sigs") or {}
    return [sig for sig, entry in sigs.items() if entry.get("status") == "pending"]

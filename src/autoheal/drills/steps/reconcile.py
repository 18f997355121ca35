"""Reconciliation drill: an order placed at the venue behind the guard's back is reported.

``reconcile_unknown_order`` runs the demo trader's guarded order path
(:class:`~autoheal.demo.session.TradingSession`, limit orders that rest) against the
real fake exchange, with the trader's :class:`~autoheal.guard.reconcile.Reconciler`
running on its period (runbook 10 s, scaled). The trader places one resting order
(the ledger knows it: the first pass is ok). Then an order is placed *directly* on
the exchange's API, as a person or another program would: the next pass must report
it as ``order_unknown_at_venue`` (``reconciliation.json`` and the alert) within one
period, leave it in the ledger's hands of nobody (never adopted) and at the venue
(never cancelled), and not report the trader's own order. The operator then cancels
what rests; the next pass is ok and clears the alert.

Mutations (each must FAIL the drill):

* ``period_s = 3600``: the reconciliation's period is out of reach; the order is not
  reported in time.
* ``adopt = true``: a reconciliation that adopts what it does not know (records the
  venue's order in the ledger as placed): nothing is reported and the ledger holds an
  order the guard never sent.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio

from autoheal.demo.session import TradingSession
from autoheal.drills.context import DrillContext
from autoheal.drills.steps.guard import make_session
from autoheal.guard.reconcile import ALERT_NAME, Reconciler, parse_venue_orders
from autoheal.store.alerts import read_alerts
from autoheal.store.atomic import read_json

__all__ = ["reconcile_unknown_order"]

MANUAL_ID = "manual-by-hand-1"
#: Real seconds each wait may take at most (a pass is a few milliseconds).
WAIT_CAP_S = 10.0


class _AdoptingReconciler(Reconciler):
    """The mutation: every order the venue holds is written into the ledger first."""

    async def run_once(self) -> dict[str, Any]:
        with contextlib.suppress(Exception):  # the real pass below says what went wrong
            orders = parse_venue_orders(await self.fetch_open_orders())
            known = self.ledger.records()
            for order in orders:
                if order.client_id is not None and order.client_id not in known:
                    _, key = self.ledger.check_and_record_key(
                        order.client_id, order.symbol, order.side, order.qty
                    )
                    self.ledger.mark_placed(key)
        return await super().run_once()


async def _wait_for(ctx: DrillContext, check: Any, within_s: float) -> bool:
    with anyio.move_on_after(min(within_s, WAIT_CAP_S)):
        while not check():
            await anyio.sleep(0.01)
        return True
    return False


def _last_pass(ctx: DrillContext) -> dict[str, Any]:
    doc = read_json(ctx.runtime_dir / "reconciliation.json").doc
    return doc if isinstance(doc, dict) else {}


def _reported(ctx: DrillContext, order_id: str) -> bool:
    unknown = _last_pass(ctx).get("unknown_at_venue") or []
    return any(isinstance(o, dict) and o.get("order_id") == order_id for o in unknown)


async def reconcile_unknown_order(ctx: DrillContext) -> None:
    """An order behind the guard's back: reported within one period, never adopted."""
    p = ctx.params
    price = float(p.get("price", 60000.0))
    period = ctx.scaled(float(p.get("period_s", 10.0)))
    observe = ctx.scaled(float(p.get("observe_for_s", 30.0)))
    ex = await ctx.start_exchange()
    async with ex.client() as http:
        session: TradingSession = make_session(ctx, http, order_type="limit", limit_offset_pct=1.0)
        cls = _AdoptingReconciler if bool(p.get("adopt", False)) else Reconciler
        recon = cls(
            ctx.runtime_dir,
            session.exchange.fetch_open_orders,
            session.ledger,
            venue="demo",
            lookup=session.exchange.fetch_order,
            period_s=period,
        )
        session.reconciler = recon
        session.markets = set(await session.exchange.load_markets())
        ctx.details["period_s"] = period
        await session.on_signal("buy", price)  # the trader's own resting order
        own = [o.client_id for o in parse_venue_orders(await session.exchange.fetch_open_orders())]
        async with anyio.create_task_group() as tg:
            tg.start_soon(recon.run, anyio.sleep)
            ctx.observe("own_orders_resting", len(own))
            first_ok = await _wait_for(
                ctx,
                lambda: (
                    _last_pass(ctx).get("ok") is True
                    and _last_pass(ctx).get("open_at_venue") == len(own)
                ),
                2 * period + 1.0,
            )
            ctx.observe("first_pass_ok", first_ok)
            # Behind the guard's back: straight to the exchange's API.
            ctx.mark_fault()
            placed = await http.post(
                "/api/orders",
                json={
                    "symbol": session.args.symbol,
                    "side": "sell",
                    "qty": 0.002,
                    "price": round(price * 1.05, 2),
                    "type": "limit",
                    "client_order_id": MANUAL_ID,
                },
            )
            manual = placed.json()
            manual_id = str(manual.get("order_id"))
            ctx.details["manual_order"] = manual
            if await _wait_for(ctx, lambda: _reported(ctx, manual_id), observe):
                ctx.event("reported")
            last = _last_pass(ctx)
            unknown = last.get("unknown_at_venue") or []
            ctx.observe(
                "unknown_at_venue",
                sorted(str(o.get("client_order_id")) for o in unknown if isinstance(o, dict)),
            )
            alert = read_alerts(ctx.runtime_dir).get(ALERT_NAME) or {}
            ctx.observe("alert_reasons", alert.get("reasons"))
            ctx.observe(
                "reported_order_fields",
                next(
                    (
                        {k: o.get(k) for k in ("symbol", "side", "qty")}
                        for o in unknown
                        if isinstance(o, dict) and o.get("order_id") == manual_id
                    ),
                    None,
                ),
            )
            ctx.observe("adopted_into_ledger", MANUAL_ID in session.ledger.records())
            still = [
                o.client_id for o in parse_venue_orders(await session.exchange.fetch_open_orders())
            ]
            ctx.observe("manual_order_still_at_venue", MANUAL_ID in still)
            ctx.observe(
                "own_order_reported",
                any(
                    c in own
                    for c in (str(o.get("client_order_id")) for o in unknown if isinstance(o, dict))
                ),
            )
            # The operator cancels what rests; the next pass agrees and clears the alert.
            await http.delete("/api/open_orders")
            cleared = await _wait_for(
                ctx,
                lambda: (
                    ALERT_NAME not in read_alerts(ctx.runtime_dir)
                    and _last_pass(ctx).get("ok") is True
                    and _last_pass(ctx).get("open_at_venue") == 0
                ),
                observe,
            )
            if cleared:
                ctx.event("cleared")
            ctx.observe("alert_cleared_after_cancel", cleared)
            tg.cancel_scope.cancel()
        ctx.observe("log", [line for line in ctx.logs.lines if "[reconcile]" in line])

"""A scoped kill (RTS 6 Art. 12: withdraw any subset): one symbol halted, the other trades.

``scoped_kill``: a ccxt bot (:class:`~autoheal.ccxt.GuardedExchange` for strategy
``grid``, in the drill's process) on the demo venue's binanceusdm dialect rests
orders on two symbols. An operator's scoped halt of the first symbol is written the
way the daemon writes it (the record, then the flags' key:
:mod:`autoheal.guard.scoped_record`). The bot's guard loop sees it, cancels its own
orders of that symbol, and reads the open orders again until none remain
(``[kill] scope=... verified``); the other symbol's orders stay, and a new order
there is placed while one for the halted symbol is refused (``scoped_halt:...``).
Counted at the venue. Mutations: ``scope_cancel = false`` (the bot's guard does not
act on a scoped halt: the halted symbol's orders stay resting) and ``scope_only =
false`` (a scoped kill that cancels every own order: the other symbol's go too).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio

from autoheal.ccxt import GuardedExchange, OrderRefusedError
from autoheal.demo.ccxt_trader import make_exchange
from autoheal.drills.context import DrillContext, as_the_daemon_leaves_it
from autoheal.drills.stacks.harness import poll_until
from autoheal.drills.steps.ccxt_venue import VENUES, _credentials, _env
from autoheal.guard import scoped_record as scoped_halts
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.scopes import Halt, parse_scope

__all__ = ["scoped_kill"]

HALTED = "BTC/USDT:USDT"
TRADING = "ETH/USDT:USDT"
PRICES = {HALTED: 900.0, TRADING: 100.0}  # far under the market: they rest


class _IgnoresScopes(GuardedExchange):
    """The mutation ``scope_cancel = false``: a scoped halt's orders are not cancelled."""

    async def kill(self, *, reason: str = "kill", scope: Any = None) -> Any:
        if scope is not None:
            return None
        return await super().kill(reason=reason)


class _KillsOutOfScope(GuardedExchange):
    """The mutation ``scope_only = false``: a scoped kill cancels every own order."""

    def _in_scope(self, order: dict[str, Any], scope: Any) -> bool:
        return True

    def _symbol_in_scope(self, symbol: str, scope: Any) -> bool:
        return True


async def scoped_kill(ctx: DrillContext) -> None:
    """Rest on two symbols; halt one by scope; its orders go, the other keeps trading."""
    p = ctx.params
    venue = VENUES["binanceusdm"]
    ctx.details["venue"] = "binanceusdm"
    creds = _credentials(ctx, venue)
    ex = await ctx.start_exchange(credentials=creds)
    rt = as_the_daemon_leaves_it(ctx.runtime_dir / "bot")
    kind: type[GuardedExchange] = GuardedExchange
    if not bool(p.get("scope_cancel", True)):
        kind = _IgnoresScopes
    if not bool(p.get("scope_only", True)):
        kind = _KillsOutOfScope
    scope = parse_scope(str(p.get("scope", "symbol=BTCUSDT")))
    ctx.details["scope"] = str(scope)
    bot = kind(
        make_exchange(venue.ccxt_class, ex.url, _env(creds)),
        symbols=[HALTED, TRADING],
        gate=TradingGate(rt, rt / "STOP.TXT"),
        ledger=OrderLedger(rt),
        breaker=CircuitBreaker(rt),
        strategy=str(p.get("strategy", "grid")),
        kill_within_s=float(p.get("kill_within_s", 5.0)),
        poll_s=0.05,
    )
    per_symbol = int(p.get("resting_per_symbol", 2))

    async def book() -> dict[str, list[dict[str, Any]]]:
        by: dict[str, list[dict[str, Any]]] = {"BTCUSDT": [], "ETHUSDT": []}
        for o in (await ex.stats())["open_orders"]:
            by.setdefault(str(o.get("symbol")), []).append(o)
        return by

    try:
        await bot.load_markets()
        for symbol in (HALTED, TRADING):
            for i in range(per_symbol):
                await bot.create_order(symbol, "limit", "buy", venue.qty, PRICES[symbol] + i)
        before = await book()
        ctx.observe("halted_resting_before", len(before["BTCUSDT"]))
        ctx.observe("other_resting_before", len(before["ETHUSDT"]))
        ctx.observe(
            "client_ids_carry_strategy",
            all(
                str(o["client_order_id"]).startswith("ahS4grid")
                for orders in before.values()
                for o in orders
            ),
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(bot.guard, tick_s=0.02))
            scoped_halts.set_halt(rt, str(scope), Halt("drill scoped_kill_symbol", 0.0, "drill"))
            scoped_halts.sync_flags(rt)
            ctx.mark_fault()

            async def halted_gone() -> bool:
                return not (await book())["BTCUSDT"]

            if await poll_until(halted_gone, ctx.scaled(float(p.get("observe_for_s", 300.0)))):
                ctx.event("scope_orders_gone")
            refused = ""
            try:
                await bot.create_order(HALTED, "limit", "buy", venue.qty, PRICES[HALTED] + 50)
            except OrderRefusedError as exc:
                refused = exc.reason
            ctx.observe("halted_new_order", refused or "placed")
            placed = await bot.create_order(
                TRADING, "limit", "buy", venue.qty, PRICES[TRADING] + 50
            )
            ctx.observe("other_new_order", "placed" if placed.get("id") else "refused")
            tg.cancel_scope.cancel()
    finally:
        await bot.close()
    after = await book()
    ctx.observe("halted_open_after", len(after["BTCUSDT"]))
    ctx.observe("other_open_after", len(after["ETHUSDT"]))
    entry = bot.ledger.entry(next(iter(_names(bot))))
    ctx.observe("ledger_records_strategy", (entry or {}).get("strategy"))
    if "scope_orders_gone" in ctx.events:
        ctx.gate("scoped_kill_verified")


def _names(bot: GuardedExchange) -> list[str]:
    """The ledger's order names (its records), for the strategy check."""
    import json

    doc = json.loads(bot.ledger.path.read_text())
    sigs = doc.get("sigs", doc) if isinstance(doc, dict) else {}
    return [k for k, v in sigs.items() if isinstance(v, dict)]

"""The repeated-execution throttle (issue 24; RTS 6 Art. 15(3)) as a drill.

Kind ``risk_repeated_execution`` (``repeated_execution_throttle``): two strategies of
the demo trader's risk-checked order path (:class:`~autoheal.demo.trader.RiskCheckedSession`,
the real guard on the drill's runtime directory, sharing it as two traders of one
runtime do) against the real fake exchange. Strategy ``grid`` buys until its
``max_repeated_executions``-th fill disables ``strategy=grid,symbol=...,side=buy``
(written to ``risk_scope_latches.json``); its next buy never reaches the exchange,
while the other scopes (``trend``'s buys, ``grid``'s sells) still trade. An operator's
enable of another scope changes nothing; ``autoheal risk enable`` naming the scope
(:func:`~autoheal.guard.risk_enable.submit_enable`, the CLI's own path, journaled with
the operator) lets ``grid`` buy again.

Mutation hook ``latch``: ``"file"`` (as shipped), ``"none"`` (the guard never counts
executions), ``"memory"`` (the latch kept in the process only: no file, so another
process does not see it and no operator can lift it).
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from autoheal.demo.trader import RiskCheckedSession
from autoheal.drills.context import DrillContext
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.steps.guard import make_session
from autoheal.guard.risk import parse_limits
from autoheal.guard.risk_enable import submit_enable
from autoheal.guard.scope_latches import read_latches
from autoheal.guard.throttle_state import Throttles
from autoheal.guard.throttles import execution_scope

__all__ = ["repeated_execution"]

OPERATOR = "drill-operator"
#: More than the trading gate's re-check interval (25 ms).
GATE_RECHECK_S = 0.1


class _Trader:
    """One strategy's session, signalling at a fresh price each time (no duplicates)."""

    def __init__(self, session: RiskCheckedSession, ex: ExchangeHarness, price: float) -> None:
        self.session, self.ex, self.price = session, ex, price

    async def signal(self, side: str) -> bool:
        """One signal; whether it reached the exchange as an order."""
        before = await self.ex.orders()
        self.price += 1.0
        await self.session.on_signal(side, self.price)
        return await self.ex.orders() > before


async def repeated_execution(ctx: DrillContext) -> None:
    """N fills disable one scope; the others trade; only an enable naming it lifts it."""
    p = ctx.params
    limits = parse_limits(p.get("risk_limits") or {}, "params.risk_limits")
    n = limits.max_repeated_executions or 0
    price, symbol = float(p.get("price", 50000.0)), str(p.get("symbol", "BTCUSDT"))
    mode = str(p.get("latch", "file"))
    scope = execution_scope("grid", symbol, "buy")
    ex = await ctx.start_exchange()
    async with ex.client() as http:
        traders: dict[str, _Trader] = {}
        for offset, strategy in enumerate(("grid", "trend")):
            base = make_session(ctx, http, strategy=strategy)
            session = RiskCheckedSession(base.args, http, limits)
            if mode == "none":
                session.risk.throttles.record_fill = _never  # type: ignore[method-assign]
            elif mode == "memory":
                session.risk.throttles = Throttles(
                    limits, None, time_fn=time.monotonic, wall_fn=time.time
                )
            session.markets = set(await session.exchange.load_markets())  # a warm trader
            # apart in price: the idempotency ledger must not be what says no
            traders[strategy] = _Trader(session, ex, price + 1000.0 * offset)
        grid, trend = traders["grid"], traders["trend"]
        ctx.mark_fault()
        placed = [await grid.signal("buy") for _ in range(n)]
        ctx.observe("grid_buys_placed", sum(placed))
        view = read_latches(ctx.runtime_dir)
        entry = dict(view.latches.get(scope) or {})
        if entry:
            ctx.event("scope_disabled")
            ctx.gate("risk_repeated_execution")
        ctx.observe("latched_scopes", ",".join(sorted(view.latches)) or "-")
        ctx.observe("latch_executions", entry.get("executions", 0))
        mark = ctx.logs.mark()
        ctx.observe("grid_buy_while_disabled", await grid.signal("buy"))
        ctx.observe("refused_with_token", ctx.logs.count("risk_repeated_execution", mark) > 0)
        ctx.observe("trend_buy_while_disabled", await trend.signal("buy"))
        ctx.observe("grid_sell_while_disabled", await grid.signal("sell"))
        wrong = execution_scope("trend", symbol, "buy")
        _enable(ctx, wrong)
        ctx.observe("grid_buy_after_other_enable", await grid.signal("buy"))
        command = _enable(ctx, scope)
        ctx.observe("enable_status", command.status)
        ctx.observe("enabled_by", command.requested_by)
        ctx.observe("enabled_scope", str((command.result or {}).get("enabled")))
        # The next tick, as a trader's comes: the trading gate re-checks its files at
        # most every 25 ms (TradingGate.recheck_interval_s), the guard on every check.
        await anyio.sleep(GATE_RECHECK_S)
        ok = await grid.signal("buy")
        if ok:
            ctx.event("re_enabled")
        ctx.observe("grid_buy_after_enable", ok)
    ctx.details["latches"] = {k: dict(v) for k, v in read_latches(ctx.runtime_dir).latches.items()}


def _never(*_args: Any, **_kwargs: Any) -> None:
    return None


def _enable(ctx: DrillContext, scope: str) -> Any:
    """``autoheal risk enable SCOPE --operator drill-operator``, the CLI's own path."""
    return submit_enable(ctx.runtime_dir, scope, operator=OPERATOR, os_user="drill", timeout=10.0)

"""Loss limits that do not cry wolf (issue 24): equity reads, the peak, a durable day.

Two kinds:

* ``risk_equity_reads`` (``phantom_loss_read``, ``drawdown_from_peak``): the demo
  trader's risk-checked order path (:class:`~autoheal.demo.trader.RiskCheckedSession`,
  the real guard on the drill's runtime directory) against the real fake exchange.
  ``params.script`` is a list of steps, each ``{equity = X}`` (a read reported to
  :meth:`~autoheal.guard.risk.RiskGuard.observe_equity`; ``"nan"`` and ``"none"`` are
  the bad reads) or ``{order = "buy" | "sell"}`` (one signal, counted at the exchange);
  a step's ``observe = NAME`` records, after it, whether the drawdown is latched (a
  read) or whether the order reached the exchange (an order).
  Mutation hook ``measure = "day_start"``: the guard measures the fall from the day's
  first equity, not from the peak (what "drawdown" means when it is done wrong).
* ``risk_daily_loss_restart`` (``daily_loss_survives_restart``): the real demo trader
  process with ``--risk-config`` (``max_daily_loss``): it books a loss, is SIGKILLed,
  is started again on the same runtime directory, books a smaller loss that crosses
  the limit only when added to the first: latched, and its next buy never reaches the
  exchange. Mutation hook ``durable_day = false``: ``risk_pnl.json`` is removed while
  the trader is down (the day kept in memory only).
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from autoheal.demo.session import PRICES_FILENAME
from autoheal.demo.trader import RiskCheckedSession
from autoheal.drills.context import DrillContext, as_the_daemon_leaves_it
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.stacks.harness import Spawned
from autoheal.drills.steps.guard import make_session
from autoheal.guard.risk import RiskGuard, parse_limits, to_decimal
from autoheal.guard.risk_drawdown import DrawdownRule
from autoheal.store import layout
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["daily_loss_restart", "equity_reads"]

LATCH = layout.RISK_LATCH
PNL = layout.RISK_PNL
#: Real seconds an order may take to reach the exchange, and a trader to start.
ORDER_WAIT_S = 10.0
TRADER_STOP_S = 5.0


class _FromDayStartGuard(RiskGuard):
    """The mutation: the fall is measured from the day's first equity, not from the peak."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rule = DrawdownRule(
            max_daily_loss=self.limits.max_drawdown, breach_reads=self.limits.loss_breach_reads
        )


def _equity(raw: Any) -> Decimal | None:
    if raw == "none":
        return None
    if raw == "nan":
        return Decimal("NaN")
    return to_decimal(raw, "params.script.equity")


async def equity_reads(ctx: DrillContext) -> None:
    """Equity reads and signals through the real guard; each named step observed."""
    p = ctx.params
    limits = parse_limits(p.get("risk_limits") or {}, "params.risk_limits")
    price = float(p.get("price", 50000.0))
    ex = await ctx.start_exchange()
    async with ex.client() as http:
        base = make_session(ctx, http)
        session = RiskCheckedSession(base.args, http, limits)
        if str(p.get("measure", "peak")) == "day_start":
            session.risk = _FromDayStartGuard(limits, ctx.runtime_dir)
        session.markets = set(await session.exchange.load_markets())  # a warm trader
        orders0 = await ex.orders()
        ctx.mark_fault()
        for n, step in enumerate(p.get("script") or []):
            if "equity" in step:
                seen = session.risk.observe_equity(_equity(step["equity"]))
                value: Any = seen.latched
                if seen.latched:
                    ctx.event("drawdown_latched")
                    ctx.gate("risk_drawdown")
                if not seen.good:
                    ctx.gate("risk_pnl_unavailable")
            else:
                before = await ex.orders()
                # A fresh price per signal: the idempotency guard must not be what says no.
                await session.on_signal(str(step["order"]), price + n)
                value = await ex.orders() > before
            if "observe" in step:
                ctx.observe(str(step["observe"]), value)
        ctx.observe("orders_at_exchange", await ex.orders() - orders0)
    _observe_files(ctx, ctx.runtime_dir)


def _observe_files(ctx: DrillContext, runtime_dir: Path) -> None:
    latch = read_json(runtime_dir / LATCH).doc or {}
    ctx.observe("latch_reason", str(latch.get("reason", "")).split(" ", 1)[0])
    pnl = read_json(runtime_dir / PNL).doc or {}
    ctx.details["risk_pnl"] = pnl
    for key in ("peak_equity", "equity", "drawdown", "realized_pnl"):
        if key in pnl:
            ctx.observe(key, float(pnl[key]))
    if "day_open_equity" in pnl and "equity" in pnl:
        day = Decimal(pnl["equity"]) - Decimal(pnl["day_open_equity"])
        ctx.observe("marked_pnl_today", float(day))


# -- the durable day across a SIGKILL --------------------------------------------------------
async def daily_loss_restart(ctx: DrillContext) -> None:
    """A loss, SIGKILL, a restart on the same day: the second loss crosses the limit."""
    p = ctx.params
    runtime = as_the_daemon_leaves_it(ctx.runtime_dir / "trader")
    config = ctx.runtime_dir / "risk.toml"
    config.write_text(f"[risk]\nmax_daily_loss = {float(p.get('max_daily_loss', 50.0))!r}\n")
    prices = [float(x) for x in p.get("prices", [50000.0, 46000.0, 46000.0, 44500.0])]
    ex = await ctx.start_exchange()
    first = await _trader(ctx, ex, runtime, config, "trader1")
    await _trade(ctx, ex, runtime, prices[0], holding=True)  # buy
    await _trade(ctx, ex, runtime, prices[1], holding=False)  # sell: the first loss
    before = _realized(runtime)
    ctx.observe("realized_before_kill", before)
    ctx.mark_fault()
    await anyio.to_thread.run_sync(first.kill)  # SIGKILL: no goodbye, no flush
    ctx.event("trader_killed")
    if not bool(p.get("durable_day", True)):
        (runtime / PNL).unlink(missing_ok=True)  # the mutation: the day in memory only
    second = await _trader(ctx, ex, runtime, config, "trader2")
    ctx.observe("restarted", second.pid != first.pid)
    await _trade(ctx, ex, runtime, prices[2], holding=True)  # buy
    await _trade(ctx, ex, runtime, prices[3], holding=False)  # sell: the second loss
    ctx.observe("realized_after_restart", _realized(runtime))
    # The latch is written right after the booking that crossed the limit: a bounded wait.
    deadline = time.monotonic() + float(p.get("latch_wait_s", 2.0))
    while not (runtime / LATCH).exists() and time.monotonic() < deadline:
        await anyio.sleep(0.01)
    if (runtime / LATCH).exists():
        ctx.event("loss_latched")
        ctx.gate("risk_daily_loss")
    # One more buy signal: the limit must hold (no order may reach the exchange).
    orders = await ex.orders()
    placed = await _trade(ctx, ex, runtime, prices[3] - 1, wait_s=float(p.get("hold_s", 1.0)))
    ctx.observe("buys_after_limit", (await ex.orders()) - orders if placed else 0)
    _observe_files(ctx, runtime)


async def _trader(
    ctx: DrillContext, ex: ExchangeHarness, runtime: Path, config: Path, name: str
) -> Spawned:
    argv = [
        sys.executable, "-m", "autoheal.demo.trader", "--runtime-dir", str(runtime),
        "--stop-file", str(runtime / "STOP.TXT"), "--exchange", ex.url,
        "--symbol", str(ctx.params.get("symbol", "BTCUSDT")),
        "--qty", str(ctx.params.get("qty", 0.01)), "--interval", "0.4",
        "--heartbeat-interval", "0.2", "--http-timeout", "1.0", "--max-price-age", "5",
        "--risk-config", str(config),
    ]  # fmt: skip
    trader = Spawned(argv, ctx.runtime_dir / f"{name}.log", roster=ctx.processes)

    async def stop() -> Any:
        return await anyio.to_thread.run_sync(trader.stop, TRADER_STOP_S)

    ctx.add_rollback(f"stop_{name}", stop)
    ctx.details[f"{name}_pid"] = trader.pid
    return trader


async def _trade(
    ctx: DrillContext,
    ex: ExchangeHarness,
    runtime: Path,
    price: float,
    *,
    wait_s: float = 0,
    holding: bool | None = None,
) -> bool:
    """Offer one price until one order reaches the exchange (or ``wait_s`` passes), then
    take the price away, so the trader's next tick has nothing to trade on; wait until
    the fill is booked in ``risk_pnl.json`` (``holding``: a position after it, or none)."""
    path = runtime / PRICES_FILENAME
    symbol = str(ctx.params.get("symbol", "BTCUSDT"))
    orders = await ex.orders()
    now = time.time()
    doc = {"ts": now, "prices": {symbol: {"price": price, "ts": now}}}
    write_json_atomic(path, doc, durable=False)
    deadline = time.monotonic() + (wait_s or ORDER_WAIT_S)
    placed = False
    while time.monotonic() < deadline:
        if await ex.orders() > orders:
            placed = True
            break
        await anyio.sleep(0.01)
    path.unlink(missing_ok=True)
    if not placed and not wait_s:
        raise RuntimeError(f"no order at {price} within {ORDER_WAIT_S} s; see the trader log")
    while holding is not None and time.monotonic() < deadline:
        if _holding(runtime, symbol) == holding:
            break
        await anyio.sleep(0.01)
    return placed


def _holding(runtime: Path, symbol: str) -> bool | None:
    doc = read_json(runtime / PNL).doc
    return None if doc is None else symbol in (doc.get("cost_basis") or {})


def _realized(runtime: Path) -> float | None:
    try:
        return float(json.loads((runtime / PNL).read_text())["realized_pnl"])
    except (OSError, ValueError, KeyError):
        return None

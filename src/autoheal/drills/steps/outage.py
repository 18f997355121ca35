"""The exchange-outage drill: its 8 phases against the real fake exchange.

The reference ran them against a mocked exchange object; here every fault is a
real HTTP answer (502, 503, 429 with Retry-After, a request never answered, a
connection dropped) from the fake exchange subprocess, the trading path is the
demo trader's :class:`TradingSession`, and every count is taken at the exchange.
Like the reference, the breaker's cooldown is passed with a clock jump
(:class:`OffsetClock` shared by the breaker, the gate and the ledger) instead of
waiting 30 minutes.

Phases (each recorded as an observation ``phase<N>_<name>`` plus its measurements):

1. classification of each fault mode's exception: exact ``category/reason`` tokens;
2. retry: a read failing 4x then succeeding returns after exactly 5 calls;
3. breaker trip: a 502 storm on the balance read exhausts 5 retries and opens it;
4. buy paused: ``paused: outage_circuit_breaker_active``, zero calls at the exchange;
   a real :class:`TradingGate` reading the persisted breaker refuses buys for the
   symbol and lets a position-reducing sell through;
5. sell: one placement attempt only (502, and a permanent ``insufficient_funds``);
6. markets cache: empty cache, reload retried 5x, a held position stays tradable;
7. recovery: cooldown passes, half_open, two successful probes close it, the gate
   allows buys again, a buy goes out;
8. telemetry: the exact ``[outage-retry]`` and ``paused:`` lines were logged.
"""

from __future__ import annotations

import anyio

from autoheal.demo.session import TradingSession
from autoheal.drills.context import DrillContext, OffsetClock
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.steps.guard import ORDERS, make_session
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.breaker_state import BreakerPolicy
from autoheal.guard.classify import classify
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.inventory import write_positions_snapshot
from autoheal.guard.retry import Backoff, acall_with_retry

__all__ = ["exchange_outage"]

BALANCE = "GET /api/balance"
MARKETS = "GET /api/markets"
MODES = ("http_502", "http_503", "timeout", "rate_limit", "down")


async def _phase1_classify(ctx: DrillContext, ex: ExchangeHarness, s: TradingSession) -> None:
    tokens: dict[str, str] = {}
    for mode in MODES:
        await ex.set_fault(mode, paths=[BALANCE], retry_after=0.5)
        try:
            await s.exchange.fetch_balance()
            tokens[mode] = "no_error"
        except Exception as exc:
            category, reason = classify(exc)
            tokens[mode] = f"{category}/{reason}"
    await ex.clear_fault()
    try:
        # More than the exchange holds: its 400 insufficient_funds, a permanent error.
        await s.exchange.create_order(s.args.symbol, "sell", 1000.0, None, "drill-classify")
        tokens["insufficient_funds"] = "no_error"
    except Exception as exc:
        category, reason = classify(exc)
        tokens["insufficient_funds"] = f"{category}/{reason}"
    ctx.observe("classification", tokens)
    ctx.details["classification"] = tokens


async def _phase2_retry(ctx: DrillContext, ex: ExchangeHarness, s: TradingSession) -> None:
    await ex.set_fault("http_502", paths=[BALANCE], count=4)
    calls0 = await ex.calls(BALANCE)
    try:
        result = await acall_with_retry(s.exchange.fetch_balance, op_label="fetch_balance",
                                        attempts=s.args.retries, backoff=s.backoff,
                                        sleep_fn=anyio.sleep,
                                        rng=ctx.rng)
        ok = "USDT" in result
    except Exception:
        ok = False
    ctx.observe("retry_calls_until_success", await ex.calls(BALANCE) - calls0)
    ctx.observe("retry_result_ok", ok)


async def _phase3_trip(ctx: DrillContext, ex: ExchangeHarness, s: TradingSession) -> None:
    await ex.set_fault("http_502", paths=[BALANCE])
    ctx.mark_fault()
    calls0 = await ex.calls(BALANCE)
    placed = await s.on_signal("buy", 50000.0)
    ctx.observe("storm_buy_placed", placed)
    ctx.observe("storm_balance_calls", await ex.calls(BALANCE) - calls0)
    state = s.breaker.state(s.args.symbol)
    ctx.observe("breaker_after_storm", state)
    if state == "open":
        ctx.event("breaker_open")


async def _phase4_buy_pause(ctx: DrillContext, ex: ExchangeHarness, s: TradingSession) -> None:
    calls0 = await ex.calls()
    placed = await s.on_signal("buy", 50001.0)
    ctx.observe("paused_buy_placed", placed)
    ctx.observe("paused_buy_exchange_calls", await ex.calls() - calls0)
    # A real trading gate on the same runtime directory reads the persisted breaker:
    # new buys for the symbol refused, a position-reducing sell let through.
    symbol = s.args.symbol
    ctx.observe("gate_buy_while_open", s.gate.allowed("buy", symbol=symbol)[1])
    ctx.observe("gate_sell_while_open",
                s.gate.allowed("sell", symbol=symbol, reduces_position=True)[1])
    if ctx.logs.count("paused: outage_circuit_breaker_active"):
        ctx.gate("outage_circuit_breaker_active")


async def _phase5_sell(ctx: DrillContext, ex: ExchangeHarness, s: TradingSession) -> None:
    await ex.set_fault("http_502", paths=[ORDERS])
    calls0 = await ex.calls(ORDERS)
    await s.on_signal("sell", 50002.0)
    ctx.observe("sell_attempts_on_502", await ex.calls(ORDERS) - calls0)
    await ex.clear_fault()
    calls0 = await ex.calls(ORDERS)
    await s.on_signal("sell", 50003.0)  # the exchange holds none: insufficient_funds
    ctx.observe("sell_attempts_on_permanent", await ex.calls(ORDERS) - calls0)


async def _phase6_markets(ctx: DrillContext, ex: ExchangeHarness, s: TradingSession) -> None:
    s.markets = set()
    await ex.set_fault("http_502", paths=[MARKETS])
    calls0, orders0 = await ex.calls(MARKETS), await ex.calls(ORDERS)
    mark = ctx.logs.mark()
    await s.on_signal("sell", 50004.0)
    ctx.observe("markets_reload_calls", await ex.calls(MARKETS) - calls0)
    held_tradable = any("tradable for sell" in line for line in ctx.logs.since(mark))
    ctx.observe("held_position_tradable", held_tradable)
    ctx.observe("held_sell_reached_exchange", await ex.calls(ORDERS) - orders0 == 1)
    await ex.clear_fault()
    ctx.event("fault_cleared")


async def _phase7_recover(ctx: DrillContext, ex: ExchangeHarness, s: TradingSession,
                          clock: OffsetClock) -> None:
    symbol, breaker = s.args.symbol, s.breaker
    clock.advance(breaker.policy.cooldown_s + 1.0)
    keys = [k for k in (symbol, None) if breaker.state(k) != "closed"]
    if keys and all(breaker.state(k) == "half_open" for k in keys):
        ctx.event("breaker_half_open")
    for key in keys:
        for i in range(breaker.policy.half_open_required_successes):
            await acall_with_retry(s.exchange.fetch_balance, op_label=f"probe{i + 1}",
                                   attempts=1, sleep_fn=anyio.sleep, breaker=breaker,
                                   breaker_key=key)
    allowed, _ = breaker.allow_call("buy", symbol)
    if allowed and breaker.state(symbol) == breaker.state(None) == "closed":
        ctx.event("breaker_closed")
    ctx.observe("breaker_after_recovery", breaker.state(symbol))
    ctx.observe("gate_buy_after_recovery", s.gate.allowed("buy", symbol=symbol)[1])
    orders0 = await ex.orders()
    placed = await s.on_signal("buy", 50005.0)
    ctx.observe("recovered_buy_placed", placed and await ex.orders() - orders0 == 1)


async def exchange_outage(ctx: DrillContext) -> None:
    """Run the 8 phases in order; each phase's observations feed the scenario's criteria."""
    p = ctx.params
    clock = OffsetClock()
    ex = await ctx.start_exchange()
    async with ex.client(timeout_s=float(p.get("http_timeout_s", 0.3))) as http:
        s = make_session(ctx, http, backoff=float(p.get("backoff_s", 0.005)))
        rt, symbol = ctx.runtime_dir, s.args.symbol
        s.breaker = CircuitBreaker(rt, BreakerPolicy(
            failure_threshold=int(p.get("failure_threshold", 5)),
            window_failures=int(p.get("window_failures", 3)),
            window_s=float(p.get("window_s", 60.0)),
            cooldown_s=float(p.get("cooldown_s", 1800.0))), time_fn=clock)
        s.gate = TradingGate(rt, s.args.stop_file, time_fn=clock)
        s.ledger = OrderLedger(rt, time_fn=clock)
        s.backoff = Backoff(base_s=s.args.backoff, max_s=s.args.backoff * 8, jitter=0.2)
        s.rng = ctx.rng
        write_positions_snapshot(rt, {symbol: float(p.get("held_qty", 0.002))})
        s.markets = set(await s.exchange.load_markets())
        await _phase1_classify(ctx, ex, s)
        await _phase2_retry(ctx, ex, s)
        await _phase3_trip(ctx, ex, s)
        await _phase4_buy_pause(ctx, ex, s)
        await _phase5_sell(ctx, ex, s)
        await _phase6_markets(ctx, ex, s)
        await _phase7_recover(ctx, ex, s, clock)
    ctx.observe("log", list(ctx.logs.lines))
    ctx.details["clock_jump_s"] = clock.offset

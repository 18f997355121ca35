"""Runbook drills that need no daemon: duplicates, SELL without position, breaker, state bus.

Each runs the real guard on real files in the drill's runtime directory and, where
an exchange is involved, the real demo trading path (:class:`TradingSession`)
against the real fake exchange, counting at the exchange.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import httpx

from autoheal.demo.session import TradingSession
from autoheal.drills.context import DrillContext
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.breaker_state import BreakerPolicy
from autoheal.guard.errors import StateBusValidationError
from autoheal.guard.idempotency import OrderLedger, order_signature
from autoheal.guard.inventory import POSITIONS_FILENAME, InventoryGate
from autoheal.guard.retry import acall_with_retry
from autoheal.guard.state_bus import StateBus, StateSchema
from autoheal.store.atomic import read_json

__all__ = ["breaker_trip", "duplicate_signals", "make_session", "sell_without_position",
           "state_bus_corrupt"]

ORDERS = "POST /api/orders"


def make_session(ctx: DrillContext, http: httpx.AsyncClient, **overrides: Any) -> TradingSession:
    """The demo trader's guarded order path, on the drill's runtime directory."""
    p = ctx.params
    args = argparse.Namespace(
        runtime_dir=ctx.runtime_dir, stop_file=ctx.runtime_dir / "STOP.TXT",
        symbol=str(p.get("symbol", "BTCUSDT")), qty=float(p.get("qty", 0.001)),
        backoff=float(p.get("backoff_s", 0.01)), retries=int(p.get("retries", 5)),
        no_gate=bool(p.get("no_gate", False)), max_orders=None, max_price_age=5.0)
    for key, value in overrides.items():
        setattr(args, key, value)
    return TradingSession(args, http)


class _NoLedger(OrderLedger):
    """The mutation: a ledger that remembers nothing, so every signal is new."""

    def check_and_record(self, symbol: str, side: str, qty: Any,
                         price: Any = None, *, strategy: str | None = None) -> tuple[bool, str]:
        return False, order_signature(symbol, side, qty, price)

    def status(self, sig: str) -> str | None:
        return None

    def mark_placed(self, sig: str) -> None:
        pass

    def mark_pending(self, sig: str, reason: str = "timeout") -> None:
        pass

    def release(self, sig: str) -> None:
        pass


class _NoInventoryCheck(InventoryGate):
    """The mutation: an inventory gate that allows every order (the check disabled)."""

    def validate_order(self, symbol: str, side: str, qty: float) -> tuple[bool, str]:
        return True, "ok"


class _AnySchema(StateSchema):
    """The mutation: a state bus whose schema validation accepts any document."""

    def validate(self, doc: object) -> list[str]:
        return []


async def duplicate_signals(ctx: DrillContext) -> None:
    """N identical signals at once through gate, idempotency and the order path."""
    p = ctx.params
    n, price = int(p.get("signals", 10)), float(p.get("price", 50000.0))
    ex = await ctx.start_exchange()
    async with ex.client() as http:
        session = make_session(ctx, http)
        # ttl_s is the mutation knob: 0 disables the idempotency ledger. (A TTL alone
        # no longer does: a record is pending until placed, and pending never expires.)
        ttl_s = float(p.get("ttl_s", 120.0))
        ledger = OrderLedger if ttl_s > 0 else _NoLedger
        session.ledger = ledger(ctx.runtime_dir, ttl_s=ttl_s)
        requests0, orders0 = await ex.calls(ORDERS), await ex.orders()
        placed: list[bool] = []

        async def signal() -> None:
            placed.append(await session.on_signal(str(p.get("side", "buy")), price))

        ctx.mark_fault()
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(signal)
        ctx.event("signals_handled")
    duplicates = ctx.logs.count("duplicate signal")
    ctx.observe("signals", n)
    ctx.observe("placed_by_trader", sum(placed))
    ctx.observe("duplicates_blocked", duplicates)
    ctx.observe("order_requests_at_exchange", await ex.calls(ORDERS) - requests0)
    ctx.observe("orders_at_exchange", await ex.orders() - orders0)
    if duplicates:
        ctx.gate("order_idempotency")


async def sell_without_position(ctx: DrillContext) -> None:
    """Positions ``{}``, then a SELL signal: skipped before any exchange call.

    ``params.inventory_check = false`` is the mutation hook: the trader's inventory
    gate allows every order (the check disabled).
    """
    p = ctx.params
    ex = await ctx.start_exchange()
    async with ex.client() as http:
        session = make_session(ctx, http)
        if not bool(p.get("inventory_check", True)):
            session.inventory = _NoInventoryCheck(ctx.runtime_dir)
        session.markets = set(await session.exchange.load_markets())  # a healthy, warm trader
        calls0 = await ex.calls()
        # The runbook's `Set-Content positions_snapshot.json -Value "{}"`, byte for byte.
        (ctx.runtime_dir / POSITIONS_FILENAME).write_text("{}\n")
        ctx.mark_fault()
        mark = ctx.logs.mark()
        placed = await session.on_signal("sell", float(p.get("price", 50000.0)))
        # The trader's own gate (the one its order path used), asked once more for the reason.
        allowed, reason = session.inventory.validate_order(
            session.args.symbol, "sell", session.args.qty)
        if not allowed:
            ctx.event("sell_rejected")
        calls = await ex.calls() - calls0
    ctx.observe("placed", placed)
    ctx.observe("allowed", allowed)
    ctx.observe("reason", reason)
    ctx.observe("exchange_calls", calls)
    ctx.observe("log", ctx.logs.since(mark))
    if not allowed:
        ctx.gate(reason)


async def _signal_until(ctx: DrillContext, session: TradingSession, price: float,
                        count: int) -> list[bool]:
    out = []
    for i in range(count):
        out.append(await session.on_signal("buy", price + i))  # distinct signals, not dups
    return out


async def breaker_trip(ctx: DrillContext) -> None:
    """Failures at the exchange trip the breaker; no orders while open; half_open; closed."""
    p = ctx.params
    policy = BreakerPolicy(
        failure_threshold=int(p.get("failure_threshold", 5)),
        window_failures=int(p.get("window_failures", 3)),
        window_s=ctx.scaled(float(p.get("window_s", 60.0))),
        cooldown_s=ctx.scaled(float(p.get("cooldown_s", 120.0))),
        half_open_required_successes=int(p.get("half_open_required_successes", 2)))
    ctx.details["breaker_policy"] = {"window_s": policy.window_s, "cooldown_s": policy.cooldown_s,
                                     "window_failures": policy.window_failures,
                                     "failure_threshold": policy.failure_threshold}
    ex = await ctx.start_exchange()
    async with ex.client() as http:
        session = make_session(ctx, http)
        session.breaker = breaker = CircuitBreaker(ctx.runtime_dir, policy)
        symbol = session.args.symbol
        session.markets = set(await session.exchange.load_markets())
        await ex.set_fault("http_502", paths=[ORDERS])
        ctx.mark_fault()
        for i in range(int(p.get("failures", 3))):
            await session.on_signal("buy", 50000.0 + i)
            if breaker.state(symbol) == "open":
                ctx.event("breaker_open")
        ctx.observe("state_after_failures", breaker.state(symbol))
        requests0 = await ex.calls(ORDERS)
        placed_while_open = await _signal_until(ctx, session, 51000.0,
                                                int(p.get("signals_while_open", 5)))
        ctx.observe("still_open_after_signals", breaker.state(symbol) == "open")
        ctx.observe("orders_while_open", await ex.calls(ORDERS) - requests0)
        ctx.observe("placed_while_open", sum(placed_while_open))
        if ctx.logs.count("outage_circuit_breaker_active"):
            ctx.gate("outage_circuit_breaker_active")
        await ex.clear_fault()
        ctx.event("fault_cleared")
        # Wait for half_open only if it ever opened (a breaker that never tripped
        # has nothing to recover from; its missing events already fail the drill).
        deadline = anyio.current_time() + policy.cooldown_s * 3 + 1.0
        while ("breaker_open" in ctx.events and breaker.state(symbol) != "half_open"
               and anyio.current_time() < deadline):
            await anyio.sleep(0.01)
        if breaker.state(symbol) == "half_open":
            ctx.event("breaker_half_open")
        # Probes one at a time: still half_open after the first, closed after the required.
        states = []
        for i in range(policy.half_open_required_successes):
            await acall_with_retry(session.exchange.fetch_balance, op_label=f"probe{i + 1}",
                                   attempts=1, sleep_fn=anyio.sleep, breaker=breaker,
                                   breaker_key=symbol)
            states.append(breaker.state(symbol))
        if breaker.state(symbol) == "closed":
            ctx.event("breaker_closed")
        ctx.observe("states_after_probes", states)
        orders0 = await ex.orders()
        await session.on_signal("buy", 52000.0)
        ctx.observe("orders_after_recovery", await ex.orders() - orders0)
        ctx.observe("final_state", breaker.state(symbol))


async def state_bus_corrupt(ctx: DrillContext) -> None:
    """``{ invalid json`` in state_bus.json: backup read, alert, invalid write rejected.

    ``params.schema_validation = false`` is the mutation hook: the bus's schema accepts
    any document (validation disabled).
    """
    validate = bool(ctx.params.get("schema_validation", True))
    bus = StateBus(ctx.runtime_dir) if validate else StateBus(ctx.runtime_dir,
                                                              schema=_AnySchema())
    good = bus.write({"schema_version": 1, "mode": "NORMAL", "positions": {"BTCUSDT": 0.5},
                      "signals": {}, "components": {}, "note": "before the drill"})
    bus.path.write_text(str(ctx.params.get("corrupt_with", "{ invalid json")))
    ctx.mark_fault()
    read = bus.read()
    if read.source != "primary":
        ctx.event("fallback_read")
    ctx.observe("read_source", read.source)
    ctx.observe("read_matches_last_good", read.doc == good)
    ctx.observe("alert_file", bus.alert_path.exists())
    if bus.alert_path.exists():
        ctx.event("alert_written")
        ctx.gate("state_bus_invalid")
    corrupt_bytes = bus.path.read_bytes()
    try:
        bus.write({"schema_version": 1, "mode": 42, "bogus_field": True})
        rejected = False
    except StateBusValidationError:
        rejected = True
    ctx.observe("invalid_write_rejected", rejected)
    ctx.observe("rejected_write_left_disk_alone", bus.path.read_bytes() == corrupt_bytes)
    bus.update(note="after the drill")
    after = bus.read()
    if after.source == "primary":
        ctx.event("recovered")
    ctx.observe("final_source", after.source)
    ctx.observe("primary_valid_json", read_json(bus.path).doc is not None)
    ctx.observe("positions_kept", after.doc.get("positions") == good["positions"])

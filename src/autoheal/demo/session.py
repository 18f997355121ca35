"""One trading session of the demo trader: a signal in, at most one guarded order out.

:class:`TradingSession` holds the guard objects (gate, breaker, idempotency
ledger, inventory gate, heartbeat) and the few facts the trader keeps between
ticks (markets cache, next side, orders placed, what it last logged). The
steps of :meth:`TradingSession.on_signal` are listed in :mod:`autoheal.demo.trader`.

Log lines follow the exchange-outage drill's telemetry (``paused:``,
``blocked:``, ``outage_circuit_breaker_active``; the guard adds the
``[outage-retry]`` lines), and state changes are logged once per change, not
once per tick: ``trader halted reason=stop_file_present`` and ``trader resumed``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
import httpx

from autoheal.demo.client import ExchangeClient
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.classify import classify, outcome_unknown
from autoheal.guard.errors import CallFailedError, LedgerUnreadableError
from autoheal.guard.gate import TradingGate
from autoheal.guard.heartbeat import Heartbeat
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.inventory import InventoryGate, write_positions_snapshot
from autoheal.guard.reconcile import Reconciler
from autoheal.guard.retry import Backoff, acall_with_retry
from autoheal.guard.scopes import tagged_name
from autoheal.store.atomic import read_json

__all__ = ["VENUE", "TradingSession", "record_client_id"]

log = logging.getLogger("autoheal.demo.trader")
PRICES_FILENAME = "prices.json"
#: The demo exchange's name in scopes (``venue=demo``).
VENUE = "demo"
#: Gate reasons that stop every order (buys and sells): the kill switch, not a pause.
HALT_REASONS = frozenset({"stop_file_present", "failsafe_active", "flags_invalid",
                          "signal_read_only", "kill_switch_unknown"})


def record_client_id(name: str, entry: Mapping[str, Any]) -> str:
    """A ledger record's client order id: its name with the tag of the strategy the record
    names (:func:`~autoheal.guard.scopes.tagged_name`; none: the name itself)."""
    strategy = entry.get("strategy")
    return tagged_name(name, strategy if isinstance(strategy, str) else None)


def _outcome_unknown(entry: dict[str, Any] | None) -> bool:
    """A pending record whose sender gave up (timeout, reset) or died mid-send."""
    if entry is None or entry.get("status") != "pending":
        return False
    if entry.get("reason") != "in_flight":
        return True
    pid = entry.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True  # the sender died before it could settle the record
    except PermissionError:
        return False
    return False


class TradingSession:
    """The trader's state across ticks and the guarded path from signal to order.

    Args:
        args: the trader's parsed command line.
        http: an ``httpx.AsyncClient`` with the exchange as ``base_url``.
    """

    def __init__(self, args: argparse.Namespace, http: httpx.AsyncClient) -> None:
        self.args = args
        self.exchange = ExchangeClient(http)
        #: The strategy placing the orders (``--strategy``): in each order's client id and
        #: ledger record, and given to the gate's scoped halts; None: untagged.
        self.strategy: str | None = getattr(args, "strategy", None)
        runtime_dir = args.runtime_dir
        self.gate = TradingGate(runtime_dir, args.stop_file)
        self.breaker = CircuitBreaker(runtime_dir)
        self.ledger = OrderLedger(runtime_dir)
        self.inventory = InventoryGate(runtime_dir)
        self.heartbeat = Heartbeat(runtime_dir, "trader")
        self.backoff = Backoff(base_s=args.backoff, max_s=max(args.backoff * 8, args.backoff))
        self.rng = random.Random()
        self.markets: set[str] = set()
        self.next_side = "buy"
        self.orders_placed = 0
        self.signals = 0
        self._halt_reason: str | None = None
        self._paused: dict[str, str | None] = {"buy": None, "sell": None}
        self._notes: set[str] = set()
        #: Reconciliation with the exchange's open orders (the trader sets it); an
        #: unknown outcome makes its next pass due at once.
        self.reconciler: Reconciler | None = None
        if self.inventory.positions() is None:
            write_positions_snapshot(runtime_dir, {args.symbol: 0.0})

    # -- the tick -------------------------------------------------------------------------
    def beat(self, **extras: Any) -> None:
        """Write the heartbeat (its own timer: a slow exchange call must not make it stale)."""
        self.heartbeat.beat(orders_placed=self.orders_placed, signals=self.signals,
                            halted=self._halt_reason, **{**self.beat_extras(), **extras})

    def beat_extras(self) -> dict[str, Any]:
        """More fields for the heartbeat (the risk-checked session adds its message rates)."""
        return {}

    async def tick(self) -> None:
        """Read the price and act on the next signal."""
        if self.args.max_orders is not None and self.orders_placed >= self.args.max_orders:
            self._note_once("max_orders", "trader reached --max-orders=%d: placing no more",
                            self.args.max_orders)
            return
        price = self._read_price()
        if price is None:
            return
        side, self.next_side = self.next_side, ("sell" if self.next_side == "buy" else "buy")
        self.signals += 1
        await self.on_signal(side, price)

    def _read_price(self) -> float | None:
        result = read_json(self.args.runtime_dir / PRICES_FILENAME)
        entry = ((result.doc or {}).get("prices") or {}).get(self.args.symbol)
        if not isinstance(entry, dict) or not isinstance(entry.get("price"), int | float):
            self._note_once("no_prices", "trader waiting for prices symbol=%s", self.args.symbol)
            return None
        age = float(result.doc.get("ts", 0) if result.doc else 0)
        now = time.time()
        if now - age > self.args.max_price_age:
            self._note_once(f"stale:{int(age)}", "trader prices stale age=%.1fs: no signal",
                            now - age)
            return None
        return float(entry["price"])

    # -- one signal -----------------------------------------------------------------------
    async def on_signal(self, side: str, price: float) -> bool:
        """Run one signal through every guard; returns whether an order was placed."""
        symbol, qty, label = self.args.symbol, self.args.qty, side.upper()
        if not self.args.no_gate:
            held = (self.inventory.positions() or {}).get(symbol, 0.0)
            allowed, reason = self.gate.allowed(side, symbol=symbol,
                                                reduces_position=0 < qty <= held,
                                                strategy=self.strategy, venue=VENUE)
            self._track_gate(side, allowed, reason)
            if not allowed:
                log.debug("signal %s %s price=%g not placed reason=%s", label, symbol, price,
                          reason)
                return False
        if not await self._tradable(symbol, side):
            return False
        allowed, reason = self.inventory.validate_order(symbol, side, qty)
        if not allowed:
            return False  # the inventory gate has logged "[inventory] ... skipped: <reason>"
        allowed, why = self.breaker.allow_call(side, symbol)
        if not allowed:
            state = self.breaker.snapshot().get(symbol) or self.breaker.snapshot().get("*", {})
            log.warning("%s %s paused: %s breaker={state: %s, cooldown_remaining_s: %s}", label,
                        symbol, why, state.get("state"), state.get("cooldown_remaining_s"))
            return False
        if side == "buy" and not await self._buy_precheck(symbol, qty * price):
            return False
        try:
            is_dup, sig = self.ledger.check_and_record(symbol, side, qty, price,
                                                          strategy=self.strategy)
        except LedgerUnreadableError as exc:
            # Fail closed: the ledger has alerted and logged; no order until it is repaired.
            log.debug("%s %s blocked: %s", label, symbol, exc.reason)
            return False
        if is_dup and _outcome_unknown(self.ledger.entry(sig)):
            # An earlier send of this very order has an unknown outcome: ask the exchange
            # for its client order id before anything else is sent for it. (A send still
            # in flight in a live process is left alone: it settles its own record.)
            if not await self._reconcile(symbol, side, sig):
                return False
            is_dup, sig = self.ledger.check_and_record(symbol, side, qty, price,
                                                          strategy=self.strategy)
        if is_dup:
            log.info("%s %s duplicate signal sig=%s status=%s: not placed", label, symbol, sig,
                     self.ledger.status(sig))
            return False
        return await self._place(symbol, side, qty, price, sig)

    async def _reconcile(self, symbol: str, side: str, sig: str) -> bool:
        """Settle a pending order by its client order id; True when it may be sent again.

        Found at the exchange: settled as placed (its fill applied), never resent. Not
        there: released, so this signal goes out once more, with the same client order
        id (a late arrival of the first send is then still the same order). The
        exchange cannot be asked: it stays pending and nothing is sent.
        """
        label = side.upper()
        self._reconcile_soon()
        try:
            found = await self.exchange.fetch_order(self.client_id(sig))
        except Exception as exc:  # a failed lookup settles nothing
            log.warning("%s %s order %s outcome unknown; reconcile failed reason=%s: not "
                        "resent", label, symbol, sig, classify(exc).reason)
            return False
        if found is None:
            self.ledger.reconcile(sig, lambda _entry: "absent")
            log.warning("%s %s order %s not at the exchange: released, sent again with the "
                        "same client_order_id", label, symbol, sig)
            return True
        self.ledger.reconcile(sig, lambda _entry: "placed")
        self.ledger.keep_result(sig, found)
        self._apply_fill(symbol, side, float(found.get("filled", 0.0)))
        self.orders_placed += 1
        log.warning("%s %s order %s found at the exchange order_id=%s status=%s: settled as "
                    "placed, not resent", label, symbol, sig, found.get("order_id"),
                    found.get("status"))
        return False

    def _reconcile_soon(self) -> None:
        """After an unknown outcome: hold the whole ledger against the venue at once."""
        if self.reconciler is not None:
            self.reconciler.request()

    async def _tradable(self, symbol: str, side: str) -> bool:
        if not self.markets:
            try:
                symbols = await self._read(self.exchange.load_markets, "load_markets")
            except CallFailedError as exc:
                held = (self.inventory.positions() or {}).get(symbol, 0.0)
                if side == "sell" and held > 0:
                    # Position-aware fallback: what we hold must stay sellable in an outage.
                    log.warning("markets unavailable reason=%s: %s held, tradable for sell",
                                exc.reason, symbol)
                    return True
                log.warning("%s %s blocked: markets_unavailable underlying_reason=%s",
                            side.upper(), symbol, exc.reason)
                return False
            self.markets = set(symbols)
            log.info("Markets refreshed: %d Pairs", len(self.markets))
        return symbol in self.markets

    async def _buy_precheck(self, symbol: str, cost: float) -> bool:
        try:
            balances = await self._read(self.exchange.fetch_balance, "fetch_balance.buy_pre",
                                        action="buy", key=symbol)
        except CallFailedError as exc:
            log.warning("BUY %s blocked: balance_fetch_failed underlying_reason=%s category=%s",
                        symbol, exc.reason, exc.category)
            return False
        free = float((balances.get("USDT") or {}).get("free", 0.0))
        if free < cost:
            log.info("BUY %s skipped: insufficient_balance free=%g cost=%g", symbol, free, cost)
            return False
        return True

    async def _place(self, symbol: str, side: str, qty: float, price: float, sig: str) -> bool:
        # One attempt only: a placement that timed out may have filled. The signature is the
        # client_order_id, so even a later resend would be recognised by the exchange.
        order_type = getattr(self.args, "order_type", "market")
        if order_type == "limit":  # rests in the book, away from the price, until cancelled
            offset = Decimal(str(getattr(self.args, "limit_offset_pct", 1.0))) / 100
            factor = 1 - offset if side == "buy" else 1 + offset
            price = float((Decimal(str(price)) * factor).quantize(Decimal("1e-8")))
        place = partial(self.exchange.create_order, symbol, side, qty, price,
                        self.client_id(sig), order_type=order_type)
        try:
            order: dict[str, Any] = await acall_with_retry(
                place, op_label=f"create_market_{side}_order", attempts=1, backoff=self.backoff,
                sleep_fn=anyio.sleep, breaker=self.breaker, breaker_key=symbol)
        except CallFailedError as exc:
            cause = exc.__cause__
            if cause is not None and outcome_unknown(cause):
                self.ledger.mark_pending(sig, exc.reason)
                self._reconcile_soon()
            else:
                self.ledger.release(sig)
            log.warning("%s %s failed: reason=%s category=%s", side.upper(), symbol, exc.reason,
                        exc.category)
            return False
        self.ledger.mark_placed(sig)
        self.ledger.keep_result(sig, order)
        self._apply_fill(symbol, side, float(order.get("filled", qty)))
        self.orders_placed += 1
        log.info("order placed %s %s qty=%g price=%g order_id=%s client_order_id=%s total=%d",
                 side.upper(), symbol, qty, float(order.get("price", price)),
                 order.get("order_id"), self.client_id(sig), self.orders_placed)
        return True

    def client_id(self, sig: str) -> str:
        """The client order id of the ledger's ``sig``: with this strategy's tag."""
        return tagged_name(sig, self.strategy)

    async def _read(self, fn: Any, op_label: str, *, action: str | None = None,
                    key: str | None = None) -> Any:
        return await acall_with_retry(fn, op_label=op_label, attempts=self.args.retries,
                                      backoff=self.backoff, sleep_fn=anyio.sleep, rng=self.rng,
                                      breaker=self.breaker, breaker_key=key, action=action)

    def _apply_fill(self, symbol: str, side: str, qty: float) -> None:
        positions = self.inventory.positions() or {}
        held = positions.get(symbol, 0.0) + (qty if side == "buy" else -qty)
        positions[symbol] = max(0.0, round(held, 12))
        write_positions_snapshot(self.args.runtime_dir, positions)

    # -- logging once per change -----------------------------------------------------------
    def _track_gate(self, side: str, allowed: bool, reason: str) -> None:
        halt = reason if (not allowed and reason in HALT_REASONS) else None
        if halt != self._halt_reason:
            if halt is not None:
                log.warning("trader halted reason=%s", halt)
            else:
                log.info("trader resumed (was halted reason=%s)", self._halt_reason)
            self._halt_reason = halt
        pause = reason if (not allowed and halt is None) else None
        if pause != self._paused.get(side):
            if pause is not None:
                log.warning("%s %s paused: %s", side.upper(), self.args.symbol, pause)
            elif self._paused.get(side) is not None:
                log.info("%s %s unpaused", side.upper(), self.args.symbol)
            self._paused[side] = pause

    def _note_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._notes:
            self._notes.add(key)
            log.info(message, *args)

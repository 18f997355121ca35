"""A ccxt exchange whose orders pass the guard, and whose kill verifies.

:class:`GuardedExchange` wraps a ``ccxt.async_support`` exchange object. Everything is
the exchange's own (reads, cancels, its raw endpoints) except:

``create_order``
    1. the trading gate (``STOP.TXT``, the flags, the mode): a ``reduceOnly`` order
       counts as a sell that reduces the position, so it passes ``REDUCE_ONLY``;
    2. the ``[risk]`` limits, when a :class:`~autoheal.guard.risk.RiskGuard` is given
       (with the ``book`` function that says what is held and resting);
    3. the circuit breaker for the symbol;
    4. the idempotency ledger, written durably *before* the send: the order's
       signature (or the bot's own ``clientOrderId``, as a key) names it, and its
       client order id on the wire is derived from that name
       (:func:`~autoheal.ccxt.identity.client_order_id`);
    5. an earlier send of the same order whose outcome is unknown (a timeout, a
       reset, a 5xx, a crash) is looked up at the venue by that client order id
       before anything is sent again: found, it is returned and not resent; absent,
       it is sent again with the same id; the lookup failing, nothing is sent.

    A refusal raises :class:`OrderRefusedError` with the guard's reason token; an
    unknown outcome raises :class:`~autoheal.guard.errors.OrderOutcomeUnknownError`;
    any other failure is ccxt's own exception, after the ledger released the order.

``kill``
    (or ``kill(scope=...)``: only the own orders inside a scoped halt, by symbol,
    venue, side and the strategy tag in their client order id)
    cancels this runtime's own open orders (by client order id prefix: an order a
    person placed at the venue by hand is left alone) and reads the open orders
    again until none of its own remain, within ``kill_within_s``; else
    :class:`KillIncompleteError`, loudly. :meth:`GuardedExchange.guard` runs it on
    every halt of the gate (``STOP.TXT``, a failsafe), and a scoped kill on every new
    scoped halt (the other scopes keep trading): run it beside the bot.

Each order carries the ``strategy`` that placed it (the exchange's, when given): in
its client order id (:func:`~autoheal.guard.scopes.tagged_name`) and its ledger record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from autoheal.ccxt.identity import DEFAULT_PREFIX, check_prefix, client_order_id, is_own
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.classify import RETRYABLE, classify, outcome_unknown
from autoheal.guard.deadman import halt_reason
from autoheal.guard.errors import GuardError, LedgerUnreadableError, OrderOutcomeUnknownError
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.ledger_file import IN_FLIGHT, PENDING
from autoheal.guard.reconcile import Reconciler
from autoheal.guard.risk import RiskBook, RiskGuard, RiskOrder
from autoheal.guard.scopes import Scope, own_order_in_scope, tagged_name

__all__ = ["GuardedExchange", "KillIncompleteError", "KillReport", "OrderRefusedError"]

log = logging.getLogger("autoheal.ccxt")

#: ccxt's unified parameter for the client order id (each venue's name for it inside).
CLIENT_ID_PARAM = "clientOrderId"


class OrderRefusedError(GuardError):
    """The guard refused the order before anything was sent (``reason``: why)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} refused: {reason}", reason=reason)


class KillIncompleteError(GuardError):
    """Own orders were still open at the venue when the kill's time was up."""

    def __init__(self, left: list[str], within_s: float) -> None:
        super().__init__(
            f"kill incomplete: {len(left)} own order(s) still open after {within_s:g}s: "
            + ", ".join(left[:10]),
            reason="kill_incomplete",
        )
        self.left = left


@dataclass(frozen=True, slots=True)
class _Order:
    """One ``create_order`` call, as the guard sees it."""

    symbol: str
    market_id: str
    type: str
    side: str
    amount: float
    price: float | None
    key: str | None
    params: dict[str, Any]

    @property
    def what(self) -> str:
        return f"{self.side.upper()} {self.symbol}"


@dataclass(frozen=True, slots=True)
class KillReport:
    """A verified kill: what it cancelled, in how many reads, how long it took."""

    cancelled: tuple[str, ...]
    rounds: int
    elapsed_s: float


class GuardedExchange:
    """A ccxt exchange wrapped by the guard (see the module docstring).

    Args:
        exchange: a ``ccxt.async_support`` exchange with its credentials.
        symbols: the unified symbols the bot trades (the kill reads their open orders).
        gate: the trading gate (default: from ``AUTOHEAL_RUNTIME_DIR``/``_STOP_FILE``).
        ledger: the idempotency ledger (default: in the runtime directory).
        breaker: the circuit breaker (default: in the runtime directory; ``None`` in a
            subclass's call disables nothing: pass one explicitly to share it).
        risk: the ``[risk]`` limits, or None.
        book: what is held and resting, for the risk check (required with ``risk``);
            returns None when it cannot be read (then only reduce-only orders pass).
        prefix: this runtime's client order id prefix (2 to 8 letters or digits).
        kill_within_s: how long a kill may take to see none of its own orders left.
        poll_s: the pause between a kill's reads of the open orders.
        strategy: the strategy this exchange object places orders for (its client ids
            and ledger records carry it; the gate's scoped halts see it), or None.
        venue: the venue's name for scoped halts (default: ccxt's ``exchange.id``).
    """

    def __init__(
        self,
        exchange: Any,
        *,
        symbols: Iterable[str],
        gate: TradingGate | None = None,
        ledger: OrderLedger | None = None,
        breaker: CircuitBreaker | None = None,
        risk: RiskGuard | None = None,
        book: Callable[[str], Awaitable[RiskBook | None]] | None = None,
        prefix: str = DEFAULT_PREFIX,
        kill_within_s: float = 10.0,
        poll_s: float = 0.25,
        time_fn: Callable[[], float] = time.monotonic,
        sleep_fn: Callable[[float], Awaitable[object]] = asyncio.sleep,
        strategy: str | None = None,
        venue: str | None = None,
    ) -> None:
        if risk is not None and book is None:
            raise ValueError("a risk guard needs the book: book=async fn(symbol) -> RiskBook")
        self.exchange = exchange
        self.symbols = list(dict.fromkeys(symbols))
        self.gate = gate if gate is not None else TradingGate()
        self.ledger = ledger if ledger is not None else OrderLedger()
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.risk = risk
        self.book = book
        self.prefix = check_prefix(prefix)
        self.kill_within_s = kill_within_s
        self.poll_s = poll_s
        self._time = time_fn
        self._sleep = sleep_fn
        self.strategy = strategy
        self.venue = venue if venue is not None else getattr(exchange, "id", None)
        self._reconciler: Reconciler | None = None

    def __getattr__(self, name: str) -> Any:
        # Reads, cancels and raw endpoints are the exchange's own: cancels always pass.
        return getattr(self.exchange, name)

    # ------------------------------------------------------------------ orders

    async def create_order(  # noqa: PLR0917 (ccxt's signature)
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """ccxt's ``create_order``, through the guard (see the module docstring)."""
        params = dict(params or {})
        key = params.pop(CLIENT_ID_PARAM, None)
        await self.exchange.load_markets()
        market_id = str(self.exchange.market(symbol)["id"])
        order = _Order(
            symbol, market_id, type, side, amount, price, None if key is None else str(key), params
        )
        self._check(order)
        if self.risk is not None and self.book is not None:
            risk_order = RiskOrder(
                market_id,
                side.lower(),
                Decimal(str(amount)),
                None if price is None else Decimal(str(price)),
                self._reduce_only(order),
            )
            allowed, reasons = self.risk.check(risk_order, await self.book(symbol))
            if not allowed:
                raise OrderRefusedError(order.what, reasons[0] if reasons else "risk_refused")
        allowed, why = self.breaker.allow_call(self._action(order), market_id)
        if not allowed:
            raise OrderRefusedError(order.what, why or "outage_circuit_breaker_active")
        name = await self._record(order)
        if isinstance(name, dict):
            return name  # an earlier send, found at the venue: not resent
        try:
            return await self._send(order, name)
        finally:
            # A message went out (whatever came back): the throttle and the strategy's
            # submits count it, or a ccxt bot would never meet its message limits.
            if self.risk is not None:
                self.risk.note_sent(strategy=self.strategy)

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        """The venue's cancel, counted against the strategy's cancels; never refused.

        A refused cancel would keep an order (risk) resting: a strategy at its cancel
        limit has its submits and modifies refused instead (:mod:`autoheal.guard.throttles`).
        """
        if self.risk is not None:
            self.risk.note_message("cancel", strategy=self.strategy)
        return await self.exchange.cancel_order(id, symbol, params or {})

    async def edit_order(  # noqa: PLR0917 (ccxt's signature)
        self,
        id: str,
        symbol: str,
        type: str,
        side: str,
        amount: float | None = None,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The venue's modify, within the strategy's modify limit (``risk_message_rate``)."""
        if self.risk is not None:
            allowed, why = self.risk.check_message("modify", strategy=self.strategy)
            if not allowed:
                raise OrderRefusedError(f"modify {side} {symbol} {id}", why)
            self.risk.note_message("modify", strategy=self.strategy)
        return await self.exchange.edit_order(id, symbol, type, side, amount, price, params or {})

    @staticmethod
    def _reduce_only(order: _Order) -> bool:
        return bool(order.params.get("reduceOnly"))

    def _action(self, order: _Order) -> str:
        # A reduce-only order can only shrink a position: to the gate, a reducing sell.
        return "sell" if self._reduce_only(order) else order.side.lower()

    def _check(self, order: _Order) -> None:
        allowed, reason = self.gate.allowed(
            self._action(order),
            symbol=order.market_id,
            reduces_position=self._reduce_only(order),
            strategy=self.strategy,
            venue=self.venue,
        )
        if not allowed:
            raise OrderRefusedError(order.what, reason)

    def _recorded(self, order: _Order) -> tuple[bool, str]:
        o = order
        st = self.strategy
        if o.key is None:
            return self.ledger.check_and_record(o.market_id, o.side, o.amount, o.price, strategy=st)
        return self.ledger.check_and_record_key(
            o.key, o.market_id, o.side, o.amount, o.price, strategy=st
        )

    def client_id(self, name: str) -> str:
        """The wire id of the order the ledger calls ``name``, with this strategy's tag."""
        return client_order_id(self.prefix, tagged_name(name, self.strategy))

    async def _record(self, order: _Order) -> str | dict[str, Any]:
        """The ledger's name for this order, now recorded pending; or what the venue holds."""
        what = order.what
        try:
            is_dup, name = self._recorded(order)
            if not is_dup:
                return name
            if self.ledger.status(name) != PENDING:
                kept = self.ledger.result(name)
                log.info("%s duplicate order %s: not sent again", what, name)
                if isinstance(kept, dict):
                    return kept
                raise OrderRefusedError(what, "duplicate_order")
            if _in_flight(self.ledger.entry(name)):
                raise OrderRefusedError(what, "order_in_flight")
            cid = self.client_id(name)
            self._reconcile_soon()
            found = await self._lookup(order, name, cid)
            if found is not None:
                self.ledger.reconcile(name, lambda _entry: "placed")
                self.ledger.keep_result(name, found)
                log.warning(
                    "%s order %s found at the venue id=%s status=%s: settled as placed, not resent",
                    what,
                    cid,
                    found.get("id"),
                    found.get("status"),
                )
                return found
            self.ledger.reconcile(name, lambda _entry: "absent")
            log.warning(
                "%s order %s not at the venue: released, sent again with the same id", what, cid
            )
            is_dup, name = self._recorded(order)
            if is_dup:
                raise OrderRefusedError(what, "order_in_flight")
            return name
        except LedgerUnreadableError as exc:
            raise OrderRefusedError(what, exc.reason) from exc

    async def _lookup(self, order: _Order, name: str, cid: str) -> dict[str, Any] | None:
        """The venue's order with client order id ``cid``, None if it has none."""
        try:
            found: dict[str, Any] = await self.exchange.fetch_order(
                None, order.symbol, {CLIENT_ID_PARAM: cid}
            )
        except Exception as exc:
            if any(c.__name__ == "OrderNotFound" for c in type(exc).__mro__):
                return None
            reason = classify(exc).reason
            log.warning(
                "%s order %s outcome unknown; lookup failed reason=%s: not resent",
                order.what,
                cid,
                reason,
            )
            raise OrderOutcomeUnknownError(name, reason=reason) from exc
        return found

    async def _send(self, order: _Order, name: str) -> dict[str, Any]:
        cid = self.client_id(name)
        params = {**order.params, CLIENT_ID_PARAM: cid}
        try:
            placed: dict[str, Any] = await self.exchange.create_order(
                order.symbol, order.type, order.side, order.amount, order.price, params
            )
        except Exception as exc:
            category, reason = classify(exc)
            if category in RETRYABLE:
                self.breaker.record_failure(order.market_id, category=category, reason=reason)
            if outcome_unknown(exc):
                self.ledger.mark_pending(name, reason)
                self._reconcile_soon()
                log.warning(
                    "%s order %s outcome unknown reason=%s: pending, looked up before any resend",
                    order.what,
                    cid,
                    reason,
                )
                raise OrderOutcomeUnknownError(name, reason=reason) from exc
            self.ledger.release(name)
            log.warning(
                "%s order %s failed reason=%s category=%s", order.what, cid, reason, category
            )
            raise
        self.breaker.record_success(order.market_id)
        self.ledger.mark_placed(name)
        self.ledger.keep_result(name, placed)
        if order.symbol not in self.symbols:
            self.symbols.append(order.symbol)
        return placed

    # ------------------------------------------------------------------ reconciliation

    def reconciler(self, *, venue: str | None = None, period_s: float = 10.0) -> Reconciler:
        """The reconciliation of this exchange's open orders with the ledger
        (:mod:`autoheal.guard.reconcile`); run its ``run(asyncio.sleep)`` beside the bot.

        Every order open at the venue on :attr:`symbols` is held against the ledger: a
        person's order (no client order id of this runtime) is reported as
        ``order_unknown_at_venue`` too, never adopted; the kill still leaves it alone.
        An unknown outcome of a send makes its next pass due at once.
        """
        self._reconciler = Reconciler(
            self.ledger.runtime_dir,
            self._all_open_orders,
            self.ledger,
            venue=venue or str(getattr(self.exchange, "id", "ccxt")),
            client_id_of=self._record_client_id,
            lookup=self._order_by_client_id,
            period_s=period_s,
            time_fn=self._time,
        )
        return self._reconciler

    def _record_client_id(self, name: str, entry: Mapping[str, Any]) -> str:
        """A ledger record's wire id, with the tag of the strategy that placed it (any
        strategy sharing this ledger, not only this exchange's own)."""
        strategy = entry.get("strategy")
        tag = strategy if isinstance(strategy, str) else None
        return client_order_id(self.prefix, tagged_name(name, tag))

    def _reconcile_soon(self) -> None:
        if self._reconciler is not None:
            self._reconciler.request()

    async def _all_open_orders(self) -> list[dict[str, Any]]:
        """Every symbol's open orders; any read failing fails the whole read (no partial)."""
        orders: list[dict[str, Any]] = []
        for symbol in self.symbols:
            orders += await self.exchange.fetch_open_orders(symbol)
        return orders

    async def _order_by_client_id(self, cid: str) -> dict[str, Any] | None:
        for symbol in self.symbols:
            try:
                found: dict[str, Any] = await self.exchange.fetch_order(
                    None, symbol, {CLIENT_ID_PARAM: cid}
                )
            except Exception as exc:
                if any(c.__name__ == "OrderNotFound" for c in type(exc).__mro__):
                    continue
                raise
            return found
        return None

    # ------------------------------------------------------------------ the kill

    async def kill(self, *, reason: str = "kill", scope: Scope | None = None) -> KillReport:
        """Cancel this runtime's own open orders and verify none remain.

        ``scope``: only the own orders inside it (a scoped halt); the others stay.

        Raises:
            KillIncompleteError: some were still open after ``kill_within_s`` (each read
                and cancel that failed is logged, and tried again until then).
        """
        started = self._time()
        deadline = started + self.kill_within_s
        cancelled: list[str] = []
        rounds = 0
        where = "" if scope is None else f" scope={scope}"
        log.warning(
            "[kill]%s reason=%s: cancelling own orders (prefix %s) on %s",
            where,
            reason,
            self.prefix,
            ", ".join(self.symbols),
        )
        while True:
            rounds += 1
            own, unread = await self._own_open_orders(scope)
            if not own and not unread:
                elapsed = self._time() - started
                log.warning(
                    "[kill]%s verified: no own order open (cancelled %d, %d read(s), %.2fs)",
                    where,
                    len(cancelled),
                    rounds,
                    elapsed,
                )
                return KillReport(tuple(cancelled), rounds, elapsed)
            if self._time() >= deadline:
                left = [f"{o.get('clientOrderId')}@{o.get('symbol')}" for o in own]
                left += [f"unreadable@{s}" for s in unread]
                log.error(
                    "[kill]%s INCOMPLETE after %gs: %s",
                    where,
                    self.kill_within_s,
                    ", ".join(left),
                )
                raise KillIncompleteError(left, self.kill_within_s)
            for order in own:
                try:
                    await self.exchange.cancel_order(order["id"], order.get("symbol"))
                    cancelled.append(str(order.get("clientOrderId")))
                except Exception as exc:  # gone already, or failed: the next read says
                    log.warning(
                        "[kill] cancel of %s failed reason=%s; reading again",
                        order.get("clientOrderId"),
                        classify(exc).reason,
                    )
            await self._sleep(max(0.0, min(self.poll_s, deadline - self._time())))

    async def _own_open_orders(
        self, scope: Scope | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        own: list[dict[str, Any]] = []
        unread: list[str] = []
        for symbol in self.symbols:
            if scope is not None and not self._symbol_in_scope(symbol, scope):
                continue
            try:
                orders = await self.exchange.fetch_open_orders(symbol)
            except Exception as exc:
                log.warning(
                    "[kill] open orders of %s unreadable reason=%s", symbol, classify(exc).reason
                )
                unread.append(symbol)
                continue
            own += [o for o in orders if self._is_own(o) and self._in_scope(o, scope)]
        return own, unread

    def _is_own(self, order: dict[str, Any]) -> bool:
        return is_own(order, self.prefix)

    def _market_id(self, symbol: str) -> str:
        try:
            return str(self.exchange.market(symbol)["id"])
        except Exception:
            return symbol  # markets not loaded: the symbol itself, normalised by the scope

    def _symbol_in_scope(self, symbol: str, scope: Scope) -> bool:
        return scope.symbol is None or Scope(symbol=scope.symbol).matches(
            symbol=self._market_id(symbol)
        )

    def _in_scope(self, order: dict[str, Any], scope: Scope | None) -> bool:
        if scope is None:
            return True
        symbol = order.get("symbol")
        side = order.get("side")
        return own_order_in_scope(
            scope,
            client_id=str(order.get("clientOrderId") or ""),
            prefix=self.prefix,
            symbol=None if not isinstance(symbol, str) else self._market_id(symbol),
            venue=self.venue,
            side=side if isinstance(side, str) else None,
        )

    async def guard(self, *, tick_s: float = 0.1) -> None:
        """Kill on every halt of the gate (once per halt; again while incomplete), and
        kill a scope's own orders on every new scoped halt (once per scope)."""
        killed = False
        scopes_done: set[Scope] = set()
        while True:
            status = self.gate.status()
            reason = halt_reason(status)
            if reason is None:
                killed = False
            elif not killed:
                try:
                    await self.kill(reason=reason)
                    killed = True
                except KillIncompleteError:
                    pass  # logged loudly; tried again at the next tick
            halted = set(status.scoped.halts)
            scopes_done &= halted  # a cleared scope, halted again, is killed again
            for scope in sorted(halted - scopes_done, key=str):
                if reason is not None and killed:
                    scopes_done.add(scope)  # the whole runtime's kill covered it
                    continue
                try:
                    await self.kill(reason="scoped_halt", scope=scope)
                    scopes_done.add(scope)
                except KillIncompleteError:
                    pass  # logged loudly; tried again at the next tick
            await self._sleep(tick_s)


def _in_flight(entry: dict[str, Any] | None) -> bool:
    """A pending record whose sender is alive and still sending (not ours to settle)."""
    if entry is None or entry.get("reason") != IN_FLIGHT:
        return False
    pid = entry.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False  # the sender died before it could settle the record
    except PermissionError:
        return True
    return True

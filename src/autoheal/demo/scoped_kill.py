"""The demo trader's scoped kill: on each new scoped halt, cancel its own resting orders
inside the scope at the demo exchange, and read the open orders again until none remain.

RTS 6 Art. 12 asks that one decision withdraw all orders *or any subset* of them. The
gate already refuses new orders inside a halted scope; this withdraws the ones already
resting, as :meth:`autoheal.ccxt.guarded.GuardedExchange.kill` does for ccxt, with the
guard's own pieces: the scopes the gate reads (``GateStatus.scoped``) and
:func:`~autoheal.guard.scopes.own_order_in_scope`, which reads the strategy from the
order's client id.

An order is the trader's own when its client id is one of the order ledger's (the
wire id of a live record) or carries this trader's strategy tag: an order placed at
the exchange behind the guard's back is never cancelled (reconciliation reports it).
A kill that cannot verify within ``kill_within_s`` logs ``[kill] ... INCOMPLETE`` with
the orders left and is tried again on the next tick; a verified one is logged with
what it cancelled. A cleared scope halted again is killed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autoheal.demo.client import ExchangeClient
from autoheal.guard.classify import classify
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.scopes import Scope, own_order_in_scope, strategy_tag, strategy_tag_of

__all__ = ["ScopedKill", "ScopedKillReport"]

log = logging.getLogger("autoheal.demo.trader")

#: The venue's name in scopes (``venue=demo``).
VENUE = "demo"


@dataclass(frozen=True, slots=True)
class ScopedKillReport:
    """A verified kill: the client ids cancelled, the reads it took, the seconds."""

    scope: str
    cancelled: tuple[str, ...]
    reads: int
    elapsed_s: float


class ScopedKillIncompleteError(Exception):
    """Own orders inside the scope still open after ``kill_within_s``."""


class ScopedKill:
    """Kills the trader's own orders inside each new scoped halt.

    Args:
        exchange: the demo exchange's client.
        ledger: the trader's order ledger (its records' client ids are its own).
        gate: the trader's gate (the scoped halts it reads).
        client_id_of: a ledger record's client id (the name with its strategy's tag).
        strategy: this trader's strategy (its tag marks its own orders), or None.
    """

    def __init__(
        self,
        exchange: ExchangeClient,
        ledger: OrderLedger,
        gate: TradingGate,
        *,
        client_id_of: Callable[[str, Mapping[str, Any]], str],
        strategy: str | None = None,
        kill_within_s: float = 5.0,
        poll_s: float = 0.1,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange = exchange
        self.ledger = ledger
        self.gate = gate
        self.client_id_of = client_id_of
        self.tag = None if strategy is None else strategy_tag(strategy)
        self.kill_within_s = kill_within_s
        self.poll_s = poll_s
        self._time = time_fn

    async def run(self, sleep: Callable[[float], Awaitable[object]], tick_s: float = 0.2) -> None:
        """Kill each new scoped halt's own orders (once per halt; again while incomplete)."""
        done: set[Scope] = set()
        while True:
            view = self.gate.status().scoped
            halted = {Scope()} if view.garbage else set(view.halts)
            done &= halted  # a cleared scope, halted again, is killed again
            for scope in sorted(halted - done, key=str):
                try:
                    await self.kill(scope, sleep)
                    done.add(scope)
                except ScopedKillIncompleteError:
                    pass  # logged loudly; tried again at the next tick
            await sleep(tick_s)

    async def kill(
        self, scope: Scope, sleep: Callable[[float], Awaitable[object]]
    ) -> ScopedKillReport:
        """Cancel the own orders inside ``scope`` and read again until none remain.

        Raises:
            ScopedKillIncompleteError: some still open (or unreadable) after ``kill_within_s``.
        """
        started = self._time()
        deadline = started + self.kill_within_s
        cancelled: list[str] = []
        reads = 0
        log.warning("[kill] scope=%s reason=scoped_halt: cancelling own orders", scope)
        while True:
            reads += 1
            own = await self._own_in_scope(scope)
            if own is not None and not own:
                elapsed = self._time() - started
                log.warning(
                    "[kill] scope=%s verified: no own order open (cancelled %d: %s; "
                    "%d read(s), %.2fs)",
                    scope,
                    len(cancelled),
                    ",".join(cancelled) or "-",
                    reads,
                    elapsed,
                )
                return ScopedKillReport(str(scope), tuple(cancelled), reads, elapsed)
            if self._time() >= deadline:
                left = (
                    "open orders unreadable"
                    if own is None
                    else ", ".join(f"{o.get('client_order_id')}@{o.get('symbol')}" for o in own)
                )
                log.error(
                    "[kill] scope=%s INCOMPLETE after %gs: %s", scope, self.kill_within_s, left
                )
                raise ScopedKillIncompleteError(left)
            for order in own or ():
                try:
                    if await self.exchange.cancel_order(str(order.get("order_id"))):
                        cancelled.append(str(order.get("client_order_id")))
                except Exception as exc:  # failed: the next read says what is left
                    log.warning(
                        "[kill] cancel of %s failed reason=%s; reading again",
                        order.get("client_order_id"),
                        classify(exc).reason,
                    )
            await sleep(max(0.0, min(self.poll_s, deadline - self._time())))

    async def _own_in_scope(self, scope: Scope) -> list[dict[str, Any]] | None:
        """The own open orders inside ``scope``; None when they cannot be read."""
        try:
            orders = await self.exchange.fetch_open_orders()
            records = self.ledger.records()
        except Exception as exc:
            log.warning("[kill] open orders unreadable reason=%s", classify(exc).reason)
            return None
        mine = {self.client_id_of(name, entry) for name, entry in records.items()}
        found = []
        for order in orders:
            cid = order.get("client_order_id")
            if not isinstance(cid, str) or not self._own(cid, mine):
                continue
            symbol, side = order.get("symbol"), order.get("side")
            if own_order_in_scope(
                scope,
                client_id=cid,
                prefix="",
                symbol=symbol if isinstance(symbol, str) else None,
                venue=VENUE,
                side=side if isinstance(side, str) else None,
            ):
                found.append(order)
        return found

    def _own(self, client_id: str, mine: set[str]) -> bool:
        return client_id in mine or (
            self.tag is not None and strategy_tag_of(client_id, "") == self.tag
        )

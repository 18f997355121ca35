"""The demo trader: reads prices, alternates BUY and SELL, and obeys every guard on every order.

``python -m autoheal.demo.trader --exchange URL --runtime-dir DIR --stop-file PATH``
ticks every ``--interval`` seconds: it writes its heartbeat, reads
``DIR/prices.json`` (the feeder's), and turns the next signal into an order
only when all of these agree, in this order (cheapest and safest first):

1. the trading gate (``STOP.TXT``, failsafe, ``DEGRADED`` pauses buys);
2. the markets cache (reloaded with retries when empty; a held position stays
   sellable while the cache is unavailable);
3. the inventory gate (a SELL without position is ``SKIP_NO_POSITION``, no
   exchange call);
4. the circuit breaker (open: buys paused, ``outage_circuit_breaker_active``);
5. for buys, a balance read with retries (``fetch_balance.buy_pre``);
6. idempotency (a repeated signal within the TTL is a duplicate);
7. the pre-trade risk limits, when ``--risk-config`` names a file with a
   ``[risk]`` table (:mod:`autoheal.guard.risk`: order size and notional,
   position, total live notional, price collar against the feeder's last price,
   throttle, daily realized loss, which latches ``REDUCE_ONLY`` in the flags; with
   ``max_drawdown`` or ``max_drawdown_pct`` the trader reports its marked equity on
   every tick, :meth:`RiskCheckedSession.report_equity`);
   the execution throttles (:mod:`autoheal.guard.throttles`: submits per second,
   the collar over a window, repeated executions disabling ``--strategy``'s
   symbol/side); the heartbeat carries the guard's message rates per strategy
   (``"risk": {"message_rates": {...}}``);
   a refusal is logged once with its numbers and releases the signature;
8. the placement itself: one attempt (a placement is not blindly retried),
   with the signature as ``client_order_id``, classified and fed to the breaker.

With ``--order-type limit`` the orders rest in the exchange's book; with
``--deadman-countdown S`` a :class:`~autoheal.guard.deadman.DeadmanSwitch` task keeps
the exchange's cancel-all-after countdown armed while the gate allows trading, and
cancels all at once on ``STOP.TXT`` or a failsafe (:mod:`autoheal.guard.deadman`).

With ``--reconcile-period S`` (default 10, ``0``: off) a
:class:`~autoheal.guard.reconcile.Reconciler` task holds the order ledger against the
exchange's open orders every ``S`` seconds and at once after every unknown outcome:
an order the ledger does not know is reported (``reconciliation.json``,
``alerts/order_reconciliation.json``), never adopted, never cancelled.

With ``--strategy NAME`` (default ``demo``) each order carries the strategy's tag in
its client order id (:func:`~autoheal.guard.scopes.tagged_name`) and its ledger
record, and the gate's scoped halts see it. On every new scoped halt (``autoheal
failsafe enter --scope``, the page, ``autoheal fleet halt --scope``) a
:class:`~autoheal.demo.scoped_kill.ScopedKill` task cancels the trader's own resting
orders inside the scope and reads the open orders again until none remain
(``--kill-within`` seconds, then ``INCOMPLETE`` and tried again); the other scopes
keep trading.

The session logic lives in :mod:`autoheal.demo.session`; this module is the
command line and the tick loop. ``--no-gate`` disables step 1 on purpose, for
the mutation test that must see a drill fail; it logs a loud warning.
"""

from __future__ import annotations

import argparse
import logging
import time
import tomllib
from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx

from autoheal.demo.client import ExchangeRejectedError
from autoheal.demo.deadman_http import CancelDisabledPort, DemoCountdownPort
from autoheal.demo.lifecycle import configure_logging, run_program
from autoheal.demo.scoped_kill import ScopedKill
from autoheal.demo.session import TradingSession, record_client_id
from autoheal.guard.deadman import DeadmanPolicy, DeadmanSwitch
from autoheal.guard.reconcile import Reconciler
from autoheal.guard.risk import (
    RiskBook,
    RiskConfigError,
    RiskGuard,
    RiskLimits,
    RiskOrder,
    parse_limits,
    to_decimal,
)

__all__ = ["RiskCheckedSession", "load_risk_limits", "main", "parse_args"]

log = logging.getLogger("autoheal.demo.trader")


def load_risk_limits(path: Path | None) -> RiskLimits | None:
    """The ``[risk]`` table of an autoheal config file; ``None`` without a path or a table.

    Raises:
        RiskConfigError: the file cannot be read or a limit is invalid (key named).
    """
    if path is None:
        return None
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RiskConfigError("risk", f"cannot read {path}: {exc}") from None
    table = doc.get("risk")
    return None if table is None else parse_limits(table, "risk")


class RiskCheckedSession(TradingSession):
    """A :class:`TradingSession` whose every placement first passes the pre-trade risk limits."""

    def __init__(self, args: argparse.Namespace, http: httpx.AsyncClient,
                 limits: RiskLimits) -> None:
        super().__init__(args, http)
        self.risk = RiskGuard(
            limits, args.runtime_dir, strategy=getattr(args, "strategy", None) or "demo"
        )
        self._fill_price: Decimal | None = None

    def beat_extras(self) -> dict[str, Any]:
        """The guard's message rates per strategy (submits, modifies, cancels in the last 1 s)."""
        return {"risk": {"message_rates": self.risk.message_rates()}}

    async def tick(self) -> None:
        if self.risk.watches_equity:
            await self.report_equity()
        await super().tick()

    async def report_equity(self) -> None:
        """Report the marked equity (every balance, the base at the feeder's last price).

        No price, a balance that cannot be read or a number that is not one reports
        ``None``: the guard pauses new entries until the next good read.
        """
        equity: Decimal | None = None
        price = self._read_price()
        if price is not None and price > 0:
            try:
                balances = await self.exchange.fetch_balance()
                equity = _marked_equity(balances, self.args.symbol, price)
            except (httpx.HTTPError, ExchangeRejectedError, RiskConfigError, ValueError) as exc:
                log.warning("trader equity unreadable: %s", exc)
        self.risk.observe_equity(equity)

    def _book(self, symbol: str, price: float) -> RiskBook | None:
        positions = self.inventory.positions()
        if positions is None:
            return None  # unreadable: the guard refuses new risk
        held = {s: to_decimal(q, f"positions.{s}") for s, q in positions.items()}
        # Demo orders fill at once: nothing rests at the exchange. The mark is the
        # feeder's last price, the one the signal was computed from.
        return RiskBook(positions=held, marks={symbol: to_decimal(price, "price")})

    async def _place(self, symbol: str, side: str, qty: float, price: float, sig: str) -> bool:
        try:
            order = RiskOrder(symbol, side, to_decimal(qty, "qty"), to_decimal(price, "price"))
            book = self._book(symbol, price)
        except RiskConfigError as exc:  # a NaN price or position: fail closed
            log.warning("%s %s blocked: risk_invalid_order %s", side.upper(), symbol, exc)
            self.ledger.release(sig)
            return False
        allowed, _reasons = self.risk.check(order, book)  # a refusal is logged by the guard
        if not allowed:
            self.ledger.release(sig)
            return False
        self.risk.note_sent()
        self._fill_price = order.price
        return await super()._place(symbol, side, qty, price, sig)

    def _apply_fill(self, symbol: str, side: str, qty: float) -> None:
        super()._apply_fill(symbol, side, qty)
        if self._fill_price is not None:
            self.risk.record_fill(symbol, side, to_decimal(qty, "qty"), self._fill_price)


def _marked_equity(balances: dict[str, Any], symbol: str, price: float) -> Decimal:
    """The quote's total plus the base's total at ``price`` (``BTCUSDT``: USDT + BTC x price)."""
    base = symbol.removesuffix("USDT")
    quote = to_decimal((balances.get("USDT") or {}).get("total", 0), "balances.USDT.total")
    held = to_decimal((balances.get(base) or {}).get("total", 0), f"balances.{base}.total")
    return quote + held * to_decimal(price, "price")


async def run(args: argparse.Namespace) -> int:
    args.runtime_dir.mkdir(parents=True, exist_ok=True)
    try:
        limits = load_risk_limits(args.risk_config)
    except RiskConfigError as exc:
        log.error("trader refuses to start: %s: %s", args.risk_config, exc)
        return 2
    if args.no_gate:
        log.warning("!!! TRADING GATE DISABLED (--no-gate): STOP.TXT and the failsafe are "
                    "IGNORED; for mutation tests only !!!")
    timeout = httpx.Timeout(args.http_timeout)
    async with httpx.AsyncClient(base_url=args.exchange, timeout=timeout) as client:
        session = (TradingSession(args, client) if limits is None
                   else RiskCheckedSession(args, client, limits))
        if limits is not None:
            log.info("trader risk limits from %s [risk]", args.risk_config)
        try:
            deadman = None if args.deadman_countdown is None else _deadman(args, client, session)
        except ValueError as exc:
            log.error("trader refuses to start: %s", exc)
            return 2
        log.info("trader started exchange=%s symbol=%s qty=%g interval=%gs stop_file=%s",
                 args.exchange, args.symbol, args.qty, args.interval, args.stop_file)
        if args.reconcile_period > 0:
            session.reconciler = _reconciler(args, session)
        scoped_kill = ScopedKill(session.exchange, session.ledger, session.gate,
                                 client_id_of=record_client_id, strategy=session.strategy,
                                 kill_within_s=args.kill_within)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_beat, session, args.heartbeat_interval, deadman)
            if not args.no_gate:
                tg.start_soon(scoped_kill.run, anyio.sleep)
            if session.reconciler is not None:
                tg.start_soon(session.reconciler.run, anyio.sleep)
            if deadman is not None:
                tg.start_soon(deadman.run)
            while True:
                await session.tick()
                await anyio.sleep(args.interval)
    return 0


def _deadman(args: argparse.Namespace, client: httpx.AsyncClient,
             session: TradingSession) -> DeadmanSwitch:
    # On the trading loop's own event loop: a hung trader stops refreshing too.
    policy = DeadmanPolicy(args.deadman_countdown,
                           args.deadman_refresh or args.deadman_countdown / 4)
    port = DemoCountdownPort(client)
    if args.deadman_no_cancel:
        log.warning("!!! DEADMAN CANCEL-ALL DISABLED (--deadman-no-cancel): a halt leaves "
                    "resting orders at the exchange; for mutation tests only !!!")
        port = CancelDisabledPort(client)
    return DeadmanSwitch(port, session.gate, policy, sleep_fn=anyio.sleep)


def _reconciler(args: argparse.Namespace, session: TradingSession) -> Reconciler:
    # The demo's client order id is the ledger's name (the signature) with the tag of
    # the record's strategy (none: the name itself).
    return Reconciler(args.runtime_dir, session.exchange.fetch_open_orders, session.ledger,
                      venue="demo", client_id_of=record_client_id,
                      lookup=session.exchange.fetch_order, period_s=args.reconcile_period)


async def _beat(session: TradingSession, every_s: float,
                deadman: DeadmanSwitch | None = None) -> None:
    # A separate task: a tick stuck in retries against a hung exchange is a network
    # problem (degraded), not a hung trader (heartbeat_stale -> restart).
    while True:
        if deadman is None:
            session.beat()
        else:  # the status page's countdown per venue (autoheal.core.risk_view)
            session.beat(deadman={"demo": deadman.status_doc(time.time())})
        await anyio.sleep(every_s)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m autoheal.demo.trader",
                                     description="Demo trader that obeys autoheal.guard.")
    parser.add_argument("--exchange", default="http://127.0.0.1:8080", help="exchange base URL")
    parser.add_argument("--runtime-dir", type=Path, default=Path("shared_data"))
    parser.add_argument("--stop-file", type=Path, default=Path("STOP.TXT"))
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between signals")
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--qty", type=float, default=0.001)
    parser.add_argument("--max-orders", type=int, default=None,
                        help="stop placing orders after this many (the loop keeps running)")
    parser.add_argument("--max-price-age", type=float, default=5.0,
                        help="ignore prices older than this many seconds")
    parser.add_argument("--retries", type=int, default=5, help="attempts for exchange reads")
    parser.add_argument("--backoff", type=float, default=0.2, help="first retry delay (s)")
    parser.add_argument("--http-timeout", type=float, default=2.0)
    parser.add_argument("--risk-config", type=Path, default=None,
                        help="an autoheal config file whose [risk] table limits every order")
    parser.add_argument("--strategy", default="demo",
                        help="the strategy this trader is (message limits, repeated executions; "
                             "its tag in each client order id and ledger record, seen by "
                             "scoped halts)")
    parser.add_argument("--order-type", choices=("market", "limit"), default="market",
                        help="limit: orders rest in the book, --limit-offset-pct from the price")
    parser.add_argument("--limit-offset-pct", type=float, default=1.0,
                        help="a limit buy rests this far below the price, a sell above")
    parser.add_argument("--deadman-countdown", type=float, default=None,
                        help="keep the exchange's cancel-all-after countdown armed with this "
                             "many seconds (Binance: 120) while trading is allowed")
    parser.add_argument("--deadman-refresh", type=float, default=None,
                        help="re-arm it this often (Binance: 30; default countdown / 4)")
    parser.add_argument("--deadman-no-cancel", action="store_true",
                        help="DANGER: no cancel-all on STOP.TXT/failsafe (mutation tests only)")
    parser.add_argument("--reconcile-period", type=float, default=10.0,
                        help="hold the order ledger against the exchange's open orders this "
                             "often, and after every unknown outcome (0: off)")
    parser.add_argument("--kill-within", type=float, default=5.0,
                        help="a scoped halt's own orders must be verified gone within this "
                             "many seconds (else INCOMPLETE, logged, tried again)")
    parser.add_argument("--no-gate", action="store_true",
                        help="DANGER: ignore STOP.TXT and the failsafe (mutation tests only)")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logger = configure_logging("trader", verbose=args.verbose)
    return run_program(partial(run, args), logger)


if __name__ == "__main__":
    raise SystemExit(main())

"""A ccxt bot made safe: ccxt's own exchange class, wrapped by :mod:`autoheal.ccxt`.

``python -m autoheal.demo.ccxt_trader --venue binanceusdm --url URL --symbol S
--resting N --deadman-countdown C`` talks to a venue (the demo exchange's dialect
on loopback: ``--url``; without it, the real venue) through ccxt's unmodified class.
Its credentials come from its environment only (``AUTOHEAL_DEMO_API_KEY``,
``AUTOHEAL_DEMO_API_SECRET``, ``AUTOHEAL_DEMO_API_PASSPHRASE`` for venues that have
one), the kill switch's paths from ``AUTOHEAL_RUNTIME_DIR``/``AUTOHEAL_STOP_FILE``
(as under the daemon) or ``--runtime-dir``/``--stop-file``. It:

1. places ``--resting`` limit orders away from the price, each through
   :class:`~autoheal.ccxt.GuardedExchange` (gate, breaker, ledger, client order id);
2. keeps the venue's own countdown armed (:class:`~autoheal.ccxt.CcxtCountdownPort`
   in a :class:`~autoheal.guard.deadman.DeadmanSwitch`), unless ``--no-deadman`` (the
   drills' mutation);
3. kills on every halt of the gate (``STOP.TXT``, a failsafe): only its own orders,
   verified gone (:meth:`~autoheal.ccxt.GuardedExchange.guard`);
4. writes its heartbeat and logs what it did.

It is the drills' ccxt trader and the README's example of a bot made safe.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from autoheal.ccxt import CcxtCountdownPort, GuardedExchange, KillReport, OrderRefusedError
from autoheal.demo.lifecycle import configure_logging, run_program
from autoheal.demo.venue_urls import loopback_urls
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.deadman import DeadmanPolicy, DeadmanSwitch
from autoheal.guard.gate import TradingGate
from autoheal.guard.heartbeat import Heartbeat
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.scopes import Scope

__all__ = ["main", "make_exchange", "parse_args"]

log = logging.getLogger("autoheal.demo.ccxt_trader")

KEY_ENV, SECRET_ENV, PASSPHRASE_ENV = (
    "AUTOHEAL_DEMO_API_KEY",
    "AUTOHEAL_DEMO_API_SECRET",
    "AUTOHEAL_DEMO_API_PASSPHRASE",
)


#: ccxt options per venue: the markets this bot trades (OKX: its swaps only, one
#: instruments call instead of five).
VENUE_OPTIONS: dict[str, dict[str, Any]] = {"okx": {"fetchMarkets": {"types": ["swap"]}}}


class _KillsEverything(GuardedExchange):
    """The mutation ``--kill-everything``: a person's order counts as ours and is cancelled."""

    def _is_own(self, order: dict[str, Any]) -> bool:
        return True


class _KillsUnverified(GuardedExchange):
    """The mutation ``--kill-unverified``: one pass of cancels, never read back."""

    async def kill(self, *, reason: str = "kill", scope: Scope | None = None) -> KillReport:
        own, _unread = await self._own_open_orders(scope)
        cancelled = []
        for order in own:
            try:
                await self.exchange.cancel_order(order["id"], order.get("symbol"))
                cancelled.append(str(order.get("clientOrderId")))
            except Exception as exc:
                log.warning(
                    "[kill] cancel of %s failed (%s): not read back (mutation)",
                    order.get("clientOrderId"),
                    type(exc).__name__,
                )
        log.warning("[kill] done without verifying (mutation): cancelled %d", len(cancelled))
        return KillReport(tuple(cancelled), 1, 0.0)


def make_exchange(venue: str, url: str | None, env: Mapping[str, str] | None = None) -> Any:
    """ccxt's own ``venue`` class with the credentials of ``env`` (default: this
    process's environment), on ``url``."""
    import ccxt.async_support as ccxt  # the optional extra: imported only when used

    env = os.environ if env is None else env
    config: dict[str, Any] = {"apiKey": env.get(KEY_ENV, ""), "secret": env.get(SECRET_ENV, "")}
    if env.get(PASSPHRASE_ENV):
        config["password"] = env[PASSPHRASE_ENV]
    config["options"] = dict(VENUE_OPTIONS.get(venue, {}))
    exchange = getattr(ccxt, venue)(config)
    if url:
        exchange.urls["api"] = loopback_urls(exchange.urls["api"], url)
    return exchange


async def trade(args: argparse.Namespace) -> int:
    runtime_dir = args.runtime_dir or os.environ.get("AUTOHEAL_RUNTIME_DIR")
    stop_file = args.stop_file or os.environ.get("AUTOHEAL_STOP_FILE")
    gate = TradingGate(runtime_dir, stop_file)
    kind = (
        _KillsEverything
        if args.kill_everything
        else _KillsUnverified
        if args.kill_unverified
        else GuardedExchange
    )
    if kind is not GuardedExchange:
        log.warning("!!! kill mutated (%s): drill mutation test !!!", kind.__name__)
    exchange = kind(
        make_exchange(args.venue, args.url),
        symbols=[args.symbol],
        gate=gate,
        ledger=OrderLedger(runtime_dir),
        breaker=CircuitBreaker(runtime_dir),
        prefix=args.prefix,
        kill_within_s=args.kill_within,
        strategy=args.strategy,
    )
    heartbeat = Heartbeat(runtime_dir, "ccxt_trader")
    try:
        ticker = await exchange.fetch_ticker(args.symbol)
        last = float(ticker["last"])
        placed = 0
        for i in range(args.resting):
            price = round(last * (1 - args.offset_pct / 100) - i, 2)
            try:
                order = await exchange.create_order(args.symbol, "limit", "buy", args.qty, price)
            except OrderRefusedError as exc:
                log.warning("order refused reason=%s", exc.reason)
                continue
            placed += 1
            log.info(
                "order resting id=%s client_order_id=%s price=%g",
                order["id"],
                order["clientOrderId"],
                price,
            )
        log.info("resting orders placed=%d", placed)
        async with anyio.create_task_group() as tg:
            if args.deadman_countdown > 0:
                port = CcxtCountdownPort(exchange.exchange, [args.symbol], own_prefix=args.prefix)
                policy = DeadmanPolicy(args.deadman_countdown, args.deadman_refresh)
                switch = DeadmanSwitch(port, gate, policy, sleep_fn=anyio.sleep)
                tg.start_soon(switch.run)
            else:
                log.warning(
                    "!!! deadman DISABLED (--no-deadman): the venue's countdown is never armed !!!"
                )
            tg.start_soon(partial(exchange.guard, tick_s=args.tick))
            while True:
                heartbeat.beat(orders_placed=placed)
                await anyio.sleep(args.tick)
    finally:
        await exchange.close()
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m autoheal.demo.ccxt_trader",
        description="A ccxt bot made safe by autoheal.ccxt.",
    )
    p.add_argument("--venue", default="binanceusdm", help="the ccxt exchange class")
    p.add_argument("--url", help="the demo venue's base URL (loopback); default: the venue")
    p.add_argument("--symbol", default="BTC/USDT:USDT")
    p.add_argument("--qty", type=float, default=0.01)
    p.add_argument("--resting", type=int, default=3, help="limit orders to leave resting")
    p.add_argument("--offset-pct", type=float, default=5.0, help="below the price, per cent")
    p.add_argument(
        "--deadman-countdown",
        type=float,
        default=120.0,
        help="the venue's countdown, seconds (0: --no-deadman)",
    )
    p.add_argument("--deadman-refresh", type=float, default=30.0)
    p.add_argument("--no-deadman", dest="deadman_countdown", action="store_const", const=0.0)
    p.add_argument("--prefix", default="ah", help="this runtime's client order id prefix")
    p.add_argument(
        "--strategy",
        default=None,
        help="the strategy its orders carry (client order id, ledger; scoped halts)",
    )
    p.add_argument(
        "--kill-everything",
        action="store_true",
        help="mutation: the kill cancels a person's orders too",
    )
    p.add_argument(
        "--kill-unverified",
        action="store_true",
        help="mutation: the kill cancels once and never reads back",
    )
    p.add_argument("--kill-within", type=float, default=10.0)
    p.add_argument("--tick", type=float, default=0.1)
    p.add_argument("--runtime-dir", type=Path)
    p.add_argument("--stop-file", type=Path)
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logger = configure_logging("ccxt_trader", verbose=args.verbose)
    return run_program(partial(trade, args), logger)


if __name__ == "__main__":
    raise SystemExit(main())

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
7. the placement itself: one attempt (a placement is not blindly retried),
   with the signature as ``client_order_id``, classified and fed to the breaker.

The session logic lives in :mod:`autoheal.demo.session`; this module is the
command line and the tick loop. ``--no-gate`` disables step 1 on purpose, for
the mutation test that must see a drill fail; it logs a loud warning.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import anyio
import httpx

from autoheal.demo.lifecycle import configure_logging, run_program
from autoheal.demo.session import TradingSession

__all__ = ["main", "parse_args"]

log = logging.getLogger("autoheal.demo.trader")


async def run(args: argparse.Namespace) -> int:
    args.runtime_dir.mkdir(parents=True, exist_ok=True)
    if args.no_gate:
        log.warning("!!! TRADING GATE DISABLED (--no-gate): STOP.TXT and the failsafe are "
                    "IGNORED; for mutation tests only !!!")
    timeout = httpx.Timeout(args.http_timeout)
    async with httpx.AsyncClient(base_url=args.exchange, timeout=timeout) as client:
        session = TradingSession(args, client)
        log.info("trader started exchange=%s symbol=%s qty=%g interval=%gs stop_file=%s",
                 args.exchange, args.symbol, args.qty, args.interval, args.stop_file)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_beat, session, args.heartbeat_interval)
            while True:
                await session.tick()
                await anyio.sleep(args.interval)
    return 0


async def _beat(session: TradingSession, every_s: float) -> None:
    # A separate task: a tick stuck in retries against a hung exchange is a network
    # problem (degraded), not a hung trader (heartbeat_stale -> restart).
    while True:
        session.beat()
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

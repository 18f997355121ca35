"""The demo market-data feeder: exchange websocket in, ``prices.json`` and a heartbeat out.

``python -m autoheal.demo.feeder --exchange http://127.0.0.1:PORT --runtime-dir DIR``
consumes the exchange's price stream, reconnecting with a bounded exponential
backoff, and keeps the latest price per symbol in ``DIR/prices.json``
(atomic). Its heartbeat (``DIR/feeder.heartbeat.json``) beats on a timer of
its own, *also while the stream is down*, and carries ``ws_last_msg_ts`` (unix
time of the last stream message): so the daemon tells a stale stream
(``ws_stale``: heartbeat fresh, message time old) from a hung process
(``heartbeat_stale``). Each message's exchange event time and sequence number go to
the heartbeat's ``feed`` section (:meth:`~autoheal.guard.heartbeat.Heartbeat.feed_event`;
a reconnect is a resync), so the daemon's ``feed_lag`` probe tells a frozen symbol or a
sequence gap from a live stream, even while the socket and the heartbeat look fine.

``--fail-on-start`` exits 1 at once: the "feeder that cannot start" drill.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from autoheal.demo.lifecycle import configure_logging, run_program
from autoheal.guard.heartbeat import Heartbeat
from autoheal.store.atomic import write_json_atomic

__all__ = ["FeedState", "backoff_delays", "main", "parse_args", "ws_url_for"]

PRICES_FILENAME = "prices.json"
log = logging.getLogger("autoheal.demo.feeder")


def ws_url_for(exchange_url: str) -> str:
    """``http://h:p`` -> ``ws://h:p/ws`` (``https`` -> ``wss``)."""
    parts = urlsplit(exchange_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


def backoff_delays(first_s: float, cap_s: float) -> Any:
    """Reconnect delays: ``first_s``, doubling, never above ``cap_s``."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, cap_s)


@dataclass(slots=True)
class FeedState:
    """What the stream has told us so far."""

    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    last_msg_ts: float | None = None
    messages: int = 0
    connected: bool = False
    dirty: bool = False
    #: Where each message's exchange time and sequence number are reported (feed_lag).
    heartbeat: Heartbeat | None = None

    def apply(self, raw: str | bytes, now: float) -> bool:
        """Take one stream message; returns False for one that is not a price."""
        try:
            doc = orjson.loads(raw)
            symbol, price = str(doc["symbol"]), float(doc["price"])
            exchange_ts = doc.get("ts")
            ts = float(exchange_ts if exchange_ts is not None else now)
            seq = doc.get("seq")
            if self.heartbeat is not None and exchange_ts is not None:
                self.heartbeat.feed_event(symbol, ts, seq if isinstance(seq, int) else None,
                                          received_ts=now)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return False
        self.prices[symbol] = {"price": price, "ts": ts}
        self.last_msg_ts = now
        self.messages += 1
        self.dirty = True
        return True


async def consume(state: FeedState, url: str, args: argparse.Namespace) -> None:
    """Keep a websocket open to ``url`` forever, reconnecting after any failure."""
    delays = backoff_delays(args.min_backoff, args.max_backoff)
    attempt = 0
    while True:
        attempt += 1
        try:
            async with connect(url, open_timeout=args.stale_after, ping_interval=None) as ws:
                state.connected = True
                if state.heartbeat is not None:
                    state.heartbeat.feed_resync()  # a new connection: numbers start afresh
                log.info("ws connected url=%s attempt=%d", url, attempt)
                attempt = 0
                delays = backoff_delays(args.min_backoff, args.max_backoff)
                while True:
                    # A stream that stalls (alive but silent) is as bad as a cut one.
                    with anyio.fail_after(args.stale_after):
                        raw = await ws.recv()
                    if not state.apply(raw, time.time()):
                        log.warning("ws message ignored: not a price")
        except (OSError, WebSocketException, TimeoutError) as exc:
            reason = type(exc).__name__
        else:  # pragma: no cover - the inner loop only leaves by an exception
            reason = "closed"
        was_connected, state.connected = state.connected, False
        delay = next(delays)
        if was_connected or attempt == 1:
            log.info("ws disconnected reason=%s retry_in=%.2fs", reason, delay)
        else:
            log.debug("ws connect failed attempt=%d reason=%s retry_in=%.2fs",
                      attempt, reason, delay)
        await anyio.sleep(delay)


async def write_prices(state: FeedState, path: Path, every_s: float) -> None:
    while True:
        if state.dirty:
            state.dirty = False
            # A cache of the latest prices: atomic, not fsynced (rewritten many times a second).
            write_json_atomic(path, {"ts": time.time(), "prices": state.prices}, durable=False)
        await anyio.sleep(every_s)


async def beat(state: FeedState, heartbeat: Heartbeat, every_s: float) -> None:
    while True:
        heartbeat.beat(ws_last_msg_ts=state.last_msg_ts, ws_connected=state.connected,
                       ws_messages=state.messages)
        await anyio.sleep(every_s)


async def run(args: argparse.Namespace) -> int:
    if args.fail_on_start:
        log.error("feeder cannot start: --fail-on-start given")
        return 1
    args.runtime_dir.mkdir(parents=True, exist_ok=True)
    url = args.ws_url or ws_url_for(args.exchange)
    heartbeat = Heartbeat(args.runtime_dir, "feeder")
    state = FeedState(heartbeat=heartbeat)
    log.info("feeder started url=%s runtime_dir=%s", url, args.runtime_dir)
    async with anyio.create_task_group() as tg:
        tg.start_soon(beat, state, heartbeat, args.heartbeat_interval)
        tg.start_soon(write_prices, state, args.runtime_dir / PRICES_FILENAME, args.prices_interval)
        tg.start_soon(consume, state, url, args)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m autoheal.demo.feeder",
                                     description="Demo market-data feeder.")
    parser.add_argument("--exchange", default="http://127.0.0.1:8080", help="exchange base URL")
    parser.add_argument("--ws-url", help="websocket URL (default: derived from --exchange)")
    parser.add_argument("--runtime-dir", type=Path, default=Path("shared_data"))
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--prices-interval", type=float, default=0.2,
                        help="at most one prices.json write per this many seconds")
    parser.add_argument("--stale-after", type=float, default=5.0,
                        help="reconnect when the stream is silent this long")
    parser.add_argument("--min-backoff", type=float, default=0.1)
    parser.add_argument("--max-backoff", type=float, default=2.0)
    parser.add_argument("--fail-on-start", action="store_true",
                        help="exit 1 at once (drill: a feeder that cannot start)")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logger = configure_logging("feeder", verbose=args.verbose)
    return run_program(partial(run, args), logger)


if __name__ == "__main__":
    raise SystemExit(main())

"""A fake exchange on loopback: REST and a websocket price stream on one port, with fault modes.

``python -m autoheal.demo.exchange --port 0 --port-file PATH`` listens, then
writes ``{"port", "rest_url", "ws_url", "pid"}`` atomically to ``PATH`` so a
test or the daemon knows where it is. Endpoints:

* ``GET /api/ping``, ``/api/balance``, ``/api/markets``, ``/api/ticker?symbol=``;
* ``POST /api/orders`` ``{symbol, side, qty, price, client_order_id}`` fills at
  once; a repeated ``client_order_id`` returns the same order and is not
  counted again; ``GET /api/orders`` lists them;
* ``POST /api/orders`` with ``"type": "limit"`` (a price is required) rests in the
  book instead (:mod:`autoheal.demo.resting`); ``GET /api/open_orders`` lists the
  resting orders and the countdown, ``DELETE /api/open_orders`` (``?symbol=``)
  cancels them all at once, ``DELETE /api/orders?order_id=`` one of them (404
  ``order_not_found`` when it is not resting);
* ``POST /api/countdown_cancel_all`` ``{"countdown_ms": N}``: the exchange's dead
  man's switch (Binance ``countdownCancelAll``, BitMEX ``cancelAllAfter``): unless
  armed again within N ms, every resting order is cancelled; ``0`` switches it off;
* ``/fapi/v1/...``: the same books in Binance USDⓈ-M futures' dialect, signed as the
  venue signs (:mod:`autoheal.demo.binance`; ccxt's ``binanceusdm`` trades with it);
* ``/api/v3/...``: the walk's market data in Binance spot's dialect, candles included
  (:mod:`autoheal.demo.binance_spot`; a dry-run freqtrade reads it through ccxt's ``binance``);
* ``/api/v5/...``: the same books in OKX's v5 dialect, perpetual swaps, with its
  account-wide ``cancel-all-after`` (:mod:`autoheal.demo.okx`; ccxt's ``okx`` trades with it);
* ``GET /ws`` (websocket): ``{"symbol", "price", "ts", "seq"}`` per symbol per tick
  (``ts`` the exchange's event time, ``seq`` the symbol's sequence number; every
  event is sent once to each client, none is skipped by a slow one);
* ``POST /admin/fault`` (see :mod:`autoheal.demo.faults`), ``POST /admin/feed``
  ``{"freeze": [symbols], "skip": {symbol: n}, "quiet": bool}`` (the stream's own
  faults while the socket stays open, :mod:`autoheal.demo.feed`; ``{}`` clears) and
  ``GET /admin/stats``; admin paths are never faulted.

The drills count orders here, at the exchange, not in the trader's own log.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from collections import Counter, deque
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.abc import SocketAttribute

from autoheal.demo.binance import PREFIXES, BinanceDialect, Credentials, binance_error
from autoheal.demo.binance_spot import PREFIX as SPOT_PREFIX
from autoheal.demo.binance_spot import SpotMarketData
from autoheal.demo.candles import CandleBook
from autoheal.demo.faults import FaultPlan, FaultState, parse_fault
from autoheal.demo.feed import FeedBook, FeedPlan, parse_feed_plan
from autoheal.demo.httpserver import (
    DROP,
    HttpRequest,
    HttpResponse,
    WebSocket,
    json_response,
    serve_connection,
)
from autoheal.demo.lifecycle import configure_logging, run_program
from autoheal.demo.market import Ledger, OrderRejectedError, PriceWalk
from autoheal.demo.okx import PREFIX as OKX_PREFIX
from autoheal.demo.okx import OkxCredentials, OkxDialect, fault_response
from autoheal.demo.resting import CANCEL_ALL, RestingBook
from autoheal.store.atomic import write_json_atomic

__all__ = ["Exchange", "main", "parse_args"]

STATS_FILENAME = "exchange_stats.json"
#: The venue dialects' one API key and secret (environment only: never on a command line).
API_KEY_ENV = "AUTOHEAL_DEMO_API_KEY"
API_SECRET_ENV = "AUTOHEAL_DEMO_API_SECRET"  # noqa: S105 (a variable's name)
#: OKX's third credential, with the same key and secret.
API_PASSPHRASE_ENV = "AUTOHEAL_DEMO_API_PASSPHRASE"  # noqa: S105 (a variable's name)
_STREAM_STOPPING = ("down", "http_502", "http_503", "rate_limit")
#: Every path in a Binance dialect (futures, the wallet, spot's market data).
_BINANCE_PATHS = (*PREFIXES, SPOT_PREFIX)
log = logging.getLogger("autoheal.demo.exchange")


class Exchange:
    """The exchange's state and its request handlers; the server shell calls in."""

    def __init__(
        self,
        rng: random.Random,
        tick_s: float,
        time_fn: Any = time.time,
        credentials: Credentials | None = None,
        passphrase: str | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        self._time = time_fn
        self.walk = PriceWalk(rng)
        self.candles = CandleBook()
        self.candles.record(self.walk.prices, round(time_fn() * 1000))
        self.ledger = Ledger()
        self.resting = RestingBook()
        self.binance = BinanceDialect(self.walk, self.ledger, self.resting, credentials,
                                      wall_ms=lambda: round(self._time() * 1000))
        self.binance_spot = SpotMarketData(self.walk, self.candles,
                                           wall_ms=lambda: round(self._time() * 1000))
        okx_creds = (OkxCredentials(credentials.api_key, credentials.secret, passphrase)
                     if credentials is not None and passphrase else None)
        self.okx = OkxDialect(self.walk, self.ledger, self.resting, okx_creds,
                              wall_ms=lambda: round(self._time() * 1000))
        self.faults = FaultState()
        self.calls: Counter[str] = Counter()
        self.tick_s = tick_s
        self._fault_changed = anyio.Event()
        self.dirty = True
        self.feed = FeedBook()
        if quiet:
            self.feed.set(FeedPlan(quiet=True))
        #: The last ticks' events, numbered, so that each client gets every one once.
        self.ticks: deque[tuple[int, list[dict[str, Any]]]] = deque(maxlen=50)
        self.tick_no = 0
        self._ticked = anyio.Event()
        self._tick()

    # -- HTTP ---------------------------------------------------------------------------
    async def handle(self, request: HttpRequest) -> HttpResponse | object | None:
        """Answer one request (``None`` lets a websocket upgrade go ahead)."""
        if request.path.startswith("/admin/"):
            return self._admin(request)
        self.calls[f"{request.method} {request.path}"] += 1
        self.dirty = True
        self.expire_countdown()
        fault = self.faults.take(request.method, request.path)
        if fault is not None and fault.mode == "accept_then_drop":
            served = self._api(request)  # done at the exchange; the answer is lost
            log.info("fault accept_then_drop: %s %s served (status %d), answer dropped",
                     request.method, request.path, served.status)
            return DROP
        if fault is not None:
            return await self._inject(fault, request.path)
        if request.path == "/ws":
            return None if request.headers.get("upgrade", "").lower() == "websocket" else (
                json_response(426, {"error": "upgrade_required"}))
        return self._api(request)

    async def _inject(self, fault: FaultPlan, path: str = "") -> HttpResponse | object:
        venue_body = fault_response(fault.mode, fault.retry_after)
        if path.startswith(OKX_PREFIX) and venue_body is not None:
            return venue_body
        if path.startswith(_BINANCE_PATHS) and fault.mode in ("http_503", "rate_limit"):
            # The venue's own bodies: what ccxt reads the error codes from.
            if fault.mode == "http_503":
                return binance_error(503, -1001, "Internal error; unable to process your "
                                     "request. Please try again.")
            return HttpResponse(429, orjson.dumps(
                {"code": -1003, "msg": "Too many requests; current limit of IP is 2400 "
                 "requests per minute."}), (("retry-after", f"{fault.retry_after:g}"),))
        if fault.mode == "http_502":
            return HttpResponse(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                                content_type="text/html")
        if fault.mode == "http_503":
            return json_response(503, {"error": "service_unavailable"})
        if fault.mode == "rate_limit":
            retry = f"{fault.retry_after:g}"
            return json_response(429, {"error": "rate_limited"}, (("retry-after", retry),))
        if fault.mode == "timeout":
            # Hold the request until an operator changes the fault, then hang up unanswered.
            await self._fault_changed.wait()
        return DROP

    def _api(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(PREFIXES):
            return self.binance.answer(request)
        if request.path.startswith(SPOT_PREFIX):
            return self.binance_spot.answer(request)
        if request.path.startswith(OKX_PREFIX):
            return self.okx.answer(request)
        now = self._time()
        route = (request.method, request.path)
        if route == ("GET", "/api/ping"):
            return json_response(200, {"ok": True, "ts": now})
        if route == ("GET", "/api/balance"):
            return json_response(200, {"balances": self.ledger.balance_doc(), "ts": now})
        if route == ("GET", "/api/markets"):
            markets = {s: {"base": s.removesuffix("USDT"), "quote": "USDT", "active": True}
                       for s in self.walk.symbols}
            return json_response(200, {"symbols": self.walk.symbols, "markets": markets})
        if route == ("GET", "/api/ticker"):
            symbol = request.query.get("symbol", "")
            if symbol not in self.walk.prices:
                return json_response(400, {"error": "invalid_symbol", "detail": symbol})
            return json_response(200, self.walk.quote(symbol, now))
        if route == ("GET", "/api/orders") and "client_order_id" in request.query:
            return self._lookup(request.query["client_order_id"])
        if route == ("GET", "/api/orders"):
            return json_response(200, {"orders": self.ledger.orders})
        if route == ("POST", "/api/orders"):
            return self._place(request, now)
        if route == ("DELETE", "/api/orders"):
            return self._cancel(request.query.get("order_id", ""), now)
        if route == ("GET", "/api/open_orders"):
            return json_response(200, {"orders": list(self.resting.open.values()),
                                       "countdown": self.resting.countdown_doc(now)})
        if route == ("DELETE", "/api/open_orders"):
            gone = self.resting.cancel_all(now, CANCEL_ALL, request.query.get("symbol") or None)
            log.info("cancel-all: cancelled %d resting orders", len(gone))
            return json_response(200, {"cancelled": len(gone), "orders": gone})
        if route == ("POST", "/api/countdown_cancel_all"):
            return self._countdown(request, now)
        return json_response(404, {"error": "not_found"})

    def _cancel(self, order_id: str, now: float) -> HttpResponse:
        order = self.resting.cancel(order_id, now)
        if order is None:
            return json_response(404, {"error": "order_not_found", "detail": order_id})
        log.info("order cancelled order_id=%s client_order_id=%s symbol=%s", order_id,
                 order["client_order_id"], order["symbol"])
        return json_response(200, order)

    def _countdown(self, request: HttpRequest, now: float) -> HttpResponse:
        try:
            doc = request.json()
            ms = doc.get("countdown_ms") if isinstance(doc, dict) else None
            if isinstance(ms, bool) or not isinstance(ms, int):
                raise ValueError("countdown_ms must be an integer number of milliseconds")
            was_armed = self.resting.countdown.armed
            self.resting.arm(ms / 1000.0, now)
        except ValueError as exc:
            return json_response(400, {"error": "invalid_countdown", "detail": str(exc)})
        if not self.resting.countdown.armed:
            log.info("countdown cancel-all switched off")
        elif not was_armed:
            log.info("countdown cancel-all armed countdown_ms=%d", ms)
        else:
            log.debug("countdown cancel-all refreshed countdown_ms=%d", ms)
        return json_response(200, self.resting.countdown_doc(now))

    def expire_countdown(self) -> None:
        """Let the countdown fire if it ran out (called per request and by a timer task)."""
        now = self._time()
        gone = self.resting.expire(now)
        if gone is not None:
            self.dirty = True
            log.warning("countdown expired: cancelled %d resting orders", len(gone))
        if self.binance.expire(round(now * 1000)):
            self.dirty = True
            log.warning("binance countdown expired: resting orders of its symbol cancelled")
        if self.okx.expire(round(now * 1000)):
            self.dirty = True
            log.warning("okx cancel-all-after expired: resting orders cancelled")

    def _known(self, client_id: str) -> dict[str, Any] | None:
        return self.ledger.by_client_id.get(client_id) or self.resting.by_client_id.get(client_id)

    def _lookup(self, client_id: str) -> HttpResponse:
        """``GET /api/orders?client_order_id=``: how a client settles an unknown outcome."""
        order = self._known(client_id)
        if order is None:
            return json_response(404, {"error": "order_not_found", "detail": client_id})
        return json_response(200, order)

    def _place(self, request: HttpRequest, now: float) -> HttpResponse:
        try:
            doc = request.json()
            client_id = doc.get("client_order_id") if isinstance(doc, dict) else None
            known = self._known(client_id) if isinstance(client_id, str) else None
            if known is not None and isinstance(doc, dict):
                conflict = _conflict(known, doc)
                if conflict:
                    raise OrderRejectedError("client_order_id_conflict", f"{client_id} was "
                                             f"used for another order ({conflict} differs)")
                log.info("order duplicate client_order_id=%s order_id=%s", client_id,
                         known["order_id"])
                return json_response(200, {**known, "duplicate": True})
            if isinstance(doc, dict) and doc.get("type") == "limit":
                return self._rest(doc, client_id, now)
            order, created = self.ledger.place(doc, self.walk, now)
        except ValueError as exc:  # orjson.JSONDecodeError and OrderRejectedError both are
            reason = exc.reason if isinstance(exc, OrderRejectedError) else "invalid_order"
            log.info("order rejected reason=%s detail=%s", reason, exc)
            return json_response(400, {"error": reason, "detail": str(exc)})
        if created:
            log.info("order filled order_id=%s client_order_id=%s symbol=%s side=%s qty=%g "
                     "price=%g", order["order_id"], order["client_order_id"], order["symbol"],
                     order["side"], order["qty"], order["price"])
        else:
            log.info("order duplicate client_order_id=%s order_id=%s",
                     order["client_order_id"], order["order_id"])
        return json_response(200, {**order, "duplicate": not created})

    def _rest(self, doc: dict[str, Any], client_id: Any, now: float) -> HttpResponse:
        if client_id is not None and client_id in self.ledger.by_client_id:
            order = self.ledger.by_client_id[client_id]
            return json_response(200, {**order, "duplicate": True})
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise OrderRejectedError("invalid_order", "client_order_id must be a string")
        if doc.get("price") is None:
            raise OrderRejectedError("invalid_order", "a limit order needs a price")
        symbol, side, qty, price = Ledger._validate(doc, self.walk)
        cid = client_id or f"auto-rest-{len(self.resting.by_client_id) + 1}"
        order = self.resting.add(symbol, side, qty, price, client_order_id=cid, now=now)
        log.info("order resting order_id=%s client_order_id=%s symbol=%s side=%s qty=%g "
                 "price=%g", order["order_id"], order["client_order_id"], symbol, side, qty,
                 price)
        return json_response(200, {**order, "duplicate": False})

    def _admin(self, request: HttpRequest) -> HttpResponse:
        if (request.method, request.path) == ("GET", "/admin/stats"):
            return json_response(200, self.stats())
        if (request.method, request.path) == ("POST", "/admin/fault"):
            try:
                plan = parse_fault(request.json())
            except ValueError as exc:
                return json_response(400, {"error": "invalid_fault", "detail": str(exc)})
            self.set_fault(plan)
            return json_response(200, {"fault": self.faults.to_doc()})
        if (request.method, request.path) == ("POST", "/admin/feed"):
            try:
                feed_plan = parse_feed_plan(request.json(), self.walk.symbols)
            except ValueError as exc:
                return json_response(400, {"error": "invalid_feed", "detail": str(exc)})
            self.feed.set(feed_plan)
            self.dirty = True
            log.info("feed plan freeze=%s skip=%s quiet=%s", ",".join(sorted(feed_plan.freeze)),
                     dict(feed_plan.skip), feed_plan.quiet)
            return json_response(200, {"feed": self.feed.to_doc()})
        return json_response(404, {"error": "not_found"})

    def set_fault(self, plan: FaultPlan) -> None:
        self.faults.set(plan)
        self._fault_changed.set()
        self._fault_changed = anyio.Event()
        self.dirty = True
        if plan.mode == "none":
            log.info("fault cleared")
        else:
            log.info("fault set mode=%s paths=%s count=%s retry_after=%g", plan.mode,
                     ",".join(plan.paths), plan.count, plan.retry_after)

    def stats(self) -> dict[str, Any]:
        return {
            "orders_placed": len(self.ledger.orders),
            "orders": self.ledger.orders,
            "open_orders": list(self.resting.open.values()),
            "cancelled_orders": self.resting.cancelled,
            "countdown": self.resting.countdown_doc(self._time()),
            "binance_countdowns": self.binance.countdowns_doc(round(self._time() * 1000)),
            "okx_countdown": self.okx.countdowns_doc(round(self._time() * 1000)),
            "calls": dict(self.calls),
            "fault": self.faults.to_doc(),
            "feed": self.feed.to_doc(),
            "balances": self.ledger.balance_doc(),
        }

    # -- websocket ----------------------------------------------------------------------
    async def stream_prices(self, ws: WebSocket) -> None:
        """Send every symbol's event of each tick; a fault on ``/ws`` stalls or cuts the stream.

        A client starts at the latest tick and then gets every tick once, in order, even
        when it was slower than one tick (the last 50 are kept): a sequence gap is only
        ever a fault's (``/admin/feed`` skip), never the demo's own timing.
        """
        log.info("ws client connected")
        sent = self.tick_no - 1
        try:
            while True:
                plan = self.faults.plan
                faulted = plan.mode != "none" and plan.matches("GET", "/ws")
                if faulted and plan.mode in _STREAM_STOPPING:
                    await ws.close(1011, plan.mode)
                    return
                if faulted:  # a "timeout" fault stalls the stream: alive, silent
                    sent = self.tick_no
                for number, events in list(self.ticks):
                    if number > sent:
                        for event in events:
                            await ws.send_text(orjson.dumps(event).decode())
                        sent = number
                with anyio.move_on_after(self.tick_s * 2):  # a fault change is seen too
                    await self._ticked.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return
        finally:
            log.info("ws client disconnected")

    def _tick(self) -> None:
        """One tick of the stream: each symbol's event (see :class:`FeedBook`), numbered."""
        events = self.feed.tick(self.walk.prices, self._time())
        self.tick_no += 1
        self.ticks.append((self.tick_no, [dict(e) for e in events.values()]))
        self._ticked.set()
        self._ticked = anyio.Event()

    async def run_ticker(self) -> None:
        while True:
            await anyio.sleep(self.tick_s)
            if not self.feed.plan.quiet:  # a quiet market: no trade moves a price
                self.walk.step()
            self.candles.record(self.walk.prices, round(self._time() * 1000))
            self._tick()

    async def run_countdown(self, every_s: float = 0.02) -> None:
        """Fire the countdown on time even when nobody calls the exchange (a dead host)."""
        while True:
            self.expire_countdown()
            await anyio.sleep(every_s)


def _conflict(order: dict[str, Any], doc: dict[str, Any]) -> str:
    """The first field in which a reused client order id's request differs ('' if none)."""
    if doc.get("symbol") != order["symbol"]:
        return "symbol"
    if str(doc.get("side", "")).lower() != order["side"]:
        return "side"
    wanted_type = "limit" if doc.get("type") == "limit" else "market"
    if wanted_type != order.get("type", "market"):
        return "type"
    for key in ("qty", "price"):
        value = doc.get(key)
        if key == "price" and value is None and wanted_type == "market":
            continue  # a market order without a price filled at the market's
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                float(value) != order[key]):
            return key
    return ""


async def _write_stats(exchange: Exchange, runtime_dir: Path, every_s: float = 0.25) -> None:
    path = runtime_dir / STATS_FILENAME
    while True:
        if exchange.dirty:
            exchange.dirty = False
            # Not fsynced: a stats snapshot for humans and drills, rewritten constantly.
            write_json_atomic(path, {**exchange.stats(), "ts": time.time()}, durable=False)
        await anyio.sleep(every_s)


async def serve(args: argparse.Namespace) -> int:
    key, secret = os.environ.get(API_KEY_ENV), os.environ.get(API_SECRET_ENV)
    exchange = Exchange(random.Random(args.seed), args.tick_interval,
                        credentials=Credentials(key, secret) if key and secret else None,
                        passphrase=os.environ.get(API_PASSPHRASE_ENV), quiet=args.quiet_market)
    listener = await anyio.create_tcp_listener(local_host=args.host, local_port=args.port)
    port = listener.extra(SocketAttribute.local_port)  # noqa: S610 (anyio, not Django)
    base = f"http://{args.host}:{port}"
    info = {"port": port, "rest_url": base, "ws_url": f"ws://{args.host}:{port}/ws",
            "pid": os.getpid()}
    handler = partial(serve_connection, handler=exchange.handle,
                      ws_paths={"/ws": exchange.stream_prices})
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(exchange.run_ticker)
        tg.start_soon(exchange.run_countdown)
        if args.runtime_dir:
            args.runtime_dir.mkdir(parents=True, exist_ok=True)
            tg.start_soon(_write_stats, exchange, args.runtime_dir)
        tg.start_soon(listener.serve, handler)
        if args.port_file:
            write_json_atomic(args.port_file, info)
        log.info("exchange listening rest_url=%s ws_url=%s seed=%d", base, info["ws_url"],
                 args.seed)
        await anyio.sleep_forever()
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m autoheal.demo.exchange",
                                     description="Fake exchange for the autoheal demo stack.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the chosen port as JSON")
    parser.add_argument("--runtime-dir", type=Path, help=f"directory for {STATS_FILENAME}")
    parser.add_argument("--seed", type=int, default=1, help="seed of the price random walk")
    parser.add_argument("--tick-interval", type=float, default=0.1, help="seconds between prices")
    parser.add_argument("--quiet-market", action="store_true",
                        help="no trades, books unchanged; exchange timestamps still advance")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logger = configure_logging("exchange", verbose=args.verbose)
    return run_program(partial(serve, args), logger)


if __name__ == "__main__":
    raise SystemExit(main())

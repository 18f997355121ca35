"""The demo exchange in OKX's v5 REST dialect (``/api/v5``), so that ccxt's own,
unmodified ``okx`` class trades perpetual swaps with it over loopback.

Why a second venue: the kill switch's backstop is the venue's own dead man's switch,
and venues differ in exactly the places that matter. Binance's countdown is per symbol
and in milliseconds; OKX's ``cancel-all-after`` is per account (or per order tag), in
whole seconds, and only ``0`` or 10..120 s are accepted. ccxt's unified
``cancel_all_orders_after(timeout_ms)`` sends ``int(timeout_ms / 1000)``, so a timeout
under 1000 ms becomes ``0``, which *switches the countdown off*; 1000..9999 ms is
refused. This module lets the tests show both against the real ccxt class.

The books are the demo exchange's (:class:`~autoheal.demo.market.Ledger` for market
orders, which fill at once; :class:`~autoheal.demo.resting.RestingBook` for limit
orders, which rest); this module only speaks the venue's language: instrument ids
(``BTC-USDT-SWAP`` for the books' ``BTCUSDT``), sizes in contracts (``ctVal`` of the
base per contract), numeric string order ids, documents, codes and request signing.

Signing is checked as the venue checks it: ``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE``,
``OK-ACCESS-TIMESTAMP`` (ISO 8601 with milliseconds and ``Z``, within 30 s of the
server's clock) and ``OK-ACCESS-SIGN`` = base64(HMAC-SHA256(secret, timestamp + METHOD +
path with its query string + body)). Refusals carry the venue's HTTP status and
``{"code", "msg", "data": []}``; ccxt maps the codes onto its exceptions:

====  =================================================================  =================
HTTP  ``code`` and ``msg``                                               ccxt raises
====  =================================================================  =================
401   50103/50104/50106/50107 Request header "..." cannot be empty.      AuthenticationError
401   50111 Invalid OK-ACCESS-KEY.                                       AuthenticationError
401   50105 Request header "OK-ACCESS-PASSPHRASE" incorrect.             AuthenticationError
401   50113 Invalid signature.                                           AuthenticationError
401   50112 Invalid OK-ACCESS-TIMESTAMP. (malformed)                     AuthenticationError
401   50102 Timestamp request expired. (more than 30 s off)              InvalidNonce
400   50014 Parameter {0} can not be empty.                              BadRequest
400   51000 Parameter {0} error (e.g. ``timeOut`` outside 0, 10..120)    BadRequest
200   51001 Instrument ID ... doesn't exist.                             BadSymbol
200   51603 Order does not exist. (a lookup)                             OrderNotFound
429   50011 Too Many Requests (the fault proxy's rate limit)             RateLimitExceeded
503   50001 Service temporarily unavailable. (the fault proxy's 5xx)     OnMaintenance
====  =================================================================  =================

An order operation (place, batch place, cancel) answers ``code "1"`` ("All operations
failed") with the reason per item in ``sCode``/``sMsg``: 51000, 51001, 51008
(insufficient balance), 51016 (client order id already exists), 51400 (cancel of an
order that is filled, cancelled or unknown). ``code "2"`` is a batch that partly
succeeded.

The countdown (``POST /api/v5/trade/cancel-all-after`` ``{"timeOut": "<s>"}``) is the
account's (or, with ``tag``, that order tag's): ``timeOut`` seconds from now every open
order (of that tag) is cancelled, ``cancelSource`` 20 "Cancel all after triggered",
unless armed again; ``0`` switches it off. It fires on time with nobody calling
(:meth:`OkxDialect.expire`, run by the exchange's countdown task).

The credentials are the demo exchange's (``AUTOHEAL_DEMO_API_KEY``,
``AUTOHEAL_DEMO_API_SECRET`` and ``AUTOHEAL_DEMO_API_PASSPHRASE`` in its environment,
never on its command line); without all three every private call is refused (50111).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from autoheal.demo.httpserver import HttpRequest, HttpResponse, json_response
from autoheal.demo.market import Ledger, OrderRejectedError, PriceWalk, split_symbol
from autoheal.demo.resting import COUNTDOWN, Countdown, RestingBook

__all__ = ["PREFIX", "OkxCredentials", "OkxDialect", "fault_response", "okx_error", "sign"]

#: Every path of the dialect starts with this.
PREFIX = "/api/v5/"
#: How far a request's timestamp may be from the server's clock (ms), either way.
TIMESTAMP_WINDOW_MS = 30_000
#: ``timeOut`` of cancel-all-after: 0 (off) or this range, in seconds.
MIN_TIMEOUT_S = 10
MAX_TIMEOUT_S = 120
#: Base currency per contract (``ctVal``), as the venue's USDT swaps have it.
CONTRACT_VALUE = {"BTC": Decimal("0.01"), "ETH": Decimal("0.1"), "SOL": Decimal("1")}
#: Size step and minimum, in contracts.
LOT_SIZE = Decimal("0.01")
#: ``cancelSource``: by the user; by cancel-all-after.
BY_USER = "1"
BY_CANCEL_ALL_AFTER = "20"
#: The venue's format of ``OK-ACCESS-TIMESTAMP``.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
#: ``clOrdId`` and ``tag``: case-sensitive alphanumerics.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_TAG = re.compile(r"^[A-Za-z0-9]{1,16}$")
_INSTRUMENT_MISSING = "Instrument ID, Instrument ID code or Spread ID doesn't exist."
_NO_BALANCE = "Order failed. Insufficient USDT balance in account."
_NOT_OPEN = "Order cancellation failed as the order has been filled, canceled or does not exist."


@dataclass(frozen=True, slots=True)
class OkxCredentials:
    """One API key, its secret and its passphrase."""

    api_key: str
    secret: str
    passphrase: str


def sign(secret: str, prehash: str) -> str:
    """The venue's signature of ``timestamp + METHOD + requestPath + body``."""
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def okx_error(status: int, code: str, msg: str) -> HttpResponse:
    """An error answer as the venue writes it."""
    return json_response(status, {"code": code, "msg": msg, "data": []})


def fault_response(mode: str, retry_after: float) -> HttpResponse | None:
    """The venue's own body for the fault proxy's ``rate_limit`` and ``http_503``."""
    if mode == "rate_limit":
        body = orjson.dumps({"code": "50011", "msg": "Too Many Requests", "data": []})
        return HttpResponse(429, body, (("retry-after", f"{retry_after:g}"),))
    if mode == "http_503":
        return okx_error(503, "50001", "Service temporarily unavailable. Please try again later.")
    return None


class _Refused(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.response = okx_error(status, code, msg)


class _ItemFailed(Exception):
    """One order operation refused: its ``sCode`` and ``sMsg``."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _empty(name: str) -> _Refused:
    return _Refused(400, "50014", f"Parameter {name} can not be empty.")


def _bad(name: str) -> _Refused:
    return _Refused(400, "51000", f"Parameter {name} error")


@dataclass(slots=True)
class _Countdowns:
    #: By order tag; ``""`` is the account's.
    by_tag: dict[str, Countdown] = field(default_factory=dict)
    fired: int = 0


def inst_id(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC-USDT-SWAP``."""
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}-SWAP"


def book_symbol(instrument: str) -> str | None:
    """``BTC-USDT-SWAP`` -> ``BTCUSDT``; None for what is not a USDT swap's id."""
    parts = instrument.split("-")
    if len(parts) != 3 or parts[2] != "SWAP" or parts[1] != "USDT" or not parts[0]:
        return None
    return parts[0] + parts[1]


def _contract_value(symbol: str) -> Decimal:
    return CONTRACT_VALUE.get(split_symbol(symbol)[0], Decimal("1"))


class OkxDialect:
    """Answers ``/api/v5/...`` requests against the demo exchange's books.

    Args:
        walk: the prices.
        ledger: market orders (filled at once).
        resting: limit orders (resting until cancelled).
        credentials: the one key the venue knows, or None (private calls refused).
        wall_ms: the server's clock, in ms since the epoch.
    """

    def __init__(
        self,
        walk: PriceWalk,
        ledger: Ledger,
        resting: RestingBook,
        credentials: OkxCredentials | None,
        wall_ms: Callable[[], int],
    ) -> None:
        self._walk = walk
        self._ledger = ledger
        self._resting = resting
        self._credentials = credentials
        self._wall_ms = wall_ms
        self._countdowns = _Countdowns()
        #: The venue's numeric order ids (strings) for the books' ids, both ways.
        self._ord_id: dict[str, str] = {}
        self._by_ord_id: dict[str, str] = {}
        #: Orders placed through the dialect: their ordType, tdMode and tag.
        self._extra: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ routing

    def answer(self, request: HttpRequest) -> HttpResponse:
        """One request under :data:`PREFIX`."""
        now_ms = self._wall_ms()
        self.expire(now_ms)
        route = (request.method, request.path.removeprefix(PREFIX.rstrip("/")))
        public: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("GET", "/public/time"): lambda _p: [{"ts": str(now_ms)}],
            ("GET", "/public/instruments"): self._instruments,
            ("GET", "/market/ticker"): lambda p: self._ticker(p, now_ms),
            ("GET", "/market/tickers"): lambda p: self._tickers(p, now_ms),
        }
        private: dict[tuple[str, str], Callable[[Any, int], HttpResponse]] = {
            ("GET", "/asset/currencies"): lambda _p, _n: _ok(self._currencies()),
            ("POST", "/trade/order"): self._place_one,
            ("POST", "/trade/batch-orders"): self._place_batch,
            ("GET", "/trade/order"): self._query,
            ("GET", "/trade/orders-pending"): self._pending,
            ("POST", "/trade/cancel-order"): self._cancel,
            ("POST", "/trade/cancel-all-after"): self._countdown,
        }
        try:
            if route in public:
                return _ok(public[route](dict(request.query)))
            if route in private:
                self._authenticate(request, now_ms)
                return private[route](self._params(request), now_ms)
        except _Refused as refused:
            return refused.response
        return okx_error(404, "404", f"Not Found: {request.method} {request.path}")

    def expire(self, now_ms: int) -> int:
        """Fire every countdown that ran out; returns how many orders they cancelled."""
        gone = 0
        for tag, countdown in list(self._countdowns.by_tag.items()):
            if countdown.deadline is not None and now_ms / 1000.0 >= countdown.deadline:
                del self._countdowns.by_tag[tag]
                self._countdowns.fired += 1
                gone += len(self._cancel_tagged(tag, now_ms))
        return gone

    def countdowns_doc(self, now_ms: int) -> dict[str, Any]:
        """The armed countdowns (``""``: the account's), for the exchange's stats."""
        return {
            "armed": {
                tag: round(c.deadline - now_ms / 1000.0, 3)
                for tag, c in sorted(self._countdowns.by_tag.items())
                if c.deadline is not None
            },
            "fired": self._countdowns.fired,
        }

    # ------------------------------------------------------------------ signing

    def _authenticate(self, request: HttpRequest, now_ms: int) -> None:
        """Nothing if the request is signed by the known key, else the venue's refusal."""
        headers = request.headers
        for header, code in (
            ("ok-access-key", "50103"),
            ("ok-access-passphrase", "50104"),
            ("ok-access-sign", "50106"),
            ("ok-access-timestamp", "50107"),
        ):
            if not headers.get(header):
                raise _Refused(401, code, f'Request header "{header.upper()}" cannot be empty.')
        stamp = headers["ok-access-timestamp"]
        if not _TIMESTAMP.match(stamp):
            raise _Refused(401, "50112", "Invalid OK-ACCESS-TIMESTAMP.")
        try:
            when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            raise _Refused(401, "50112", "Invalid OK-ACCESS-TIMESTAMP.") from None
        if abs(round(when.timestamp() * 1000) - now_ms) > TIMESTAMP_WINDOW_MS:
            raise _Refused(401, "50102", "Timestamp request expired.")
        creds = self._credentials
        if creds is None or not _same(headers["ok-access-key"], creds.api_key):
            raise _Refused(401, "50111", "Invalid OK-ACCESS-KEY.")
        if not _same(headers["ok-access-passphrase"], creds.passphrase):
            raise _Refused(401, "50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
        path = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        body = request.body.decode("latin-1") if request.body else ""
        expected = sign(creds.secret, stamp + request.method + path + body)
        if not _same(headers["ok-access-sign"], expected):
            raise _Refused(401, "50113", "Invalid signature.")

    @staticmethod
    def _params(request: HttpRequest) -> Any:
        """A GET's query, a POST's JSON body (an object, or a list for a batch)."""
        if request.method == "GET":
            return dict(request.query)
        if not request.body:
            raise _Refused(400, "50000", "Body for POST request cannot be empty.")
        try:
            return orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise _Refused(400, "50002", "JSON syntax error") from None

    # ------------------------------------------------------------------ public

    def _instruments(self, params: dict[str, str]) -> list[dict[str, Any]]:
        kind = params.get("instType")
        if not kind:
            raise _empty("instType")
        if kind not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            raise _bad("instType")
        if kind != "SWAP":
            return []  # the demo lists USDT perpetual swaps only
        wanted = params.get("instId")
        return [self._instrument(s) for s in self._walk.symbols if wanted in (None, inst_id(s))]

    @staticmethod
    def _instrument(symbol: str) -> dict[str, Any]:
        base, quote = split_symbol(symbol)
        return {
            "alias": "",
            "baseCcy": "",
            "category": "1",
            "ctMult": "1",
            "ctType": "linear",
            "ctVal": str(_contract_value(symbol)),
            "ctValCcy": base,
            "expTime": "",
            "instFamily": f"{base}-{quote}",
            "instId": inst_id(symbol),
            "instType": "SWAP",
            "lever": "100",
            "listTime": "1611916828000",
            "lotSz": str(LOT_SIZE),
            "maxLmtAmt": "20000000",
            "maxLmtSz": "100000000",
            "maxMktAmt": "",
            "maxMktSz": "12000",
            "maxStopSz": "12000",
            "maxTriggerSz": "100000000",
            "maxTwapSz": "",
            "minSz": str(LOT_SIZE),
            "optType": "",
            "quoteCcy": "",
            "ruleType": "normal",
            "settleCcy": quote,
            "state": "live",
            "stk": "",
            "tickSz": "0.01",
            "uly": f"{base}-{quote}",
        }

    def _symbol(self, params: dict[str, Any]) -> str:
        instrument = params.get("instId")
        if not instrument:
            raise _empty("instId")
        symbol = book_symbol(str(instrument))
        if symbol is None or symbol not in self._walk.prices:
            raise _Refused(200, "51001", _INSTRUMENT_MISSING)
        return symbol

    def _ticker(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        return [self._ticker_doc(self._symbol(params), now_ms)]

    def _tickers(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        kind = params.get("instType")
        if not kind:
            raise _empty("instType")
        if kind != "SWAP":
            return []
        return [self._ticker_doc(s, now_ms) for s in self._walk.symbols]

    def _ticker_doc(self, symbol: str, now_ms: int) -> dict[str, Any]:
        last = _num(self._walk.prices[symbol])
        return {
            "instType": "SWAP",
            "instId": inst_id(symbol),
            "last": last,
            "lastSz": "0",
            "askPx": last,
            "askSz": "0",
            "bidPx": last,
            "bidSz": "0",
            "open24h": last,
            "high24h": last,
            "low24h": last,
            "volCcy24h": "0",
            "vol24h": "0",
            "sodUtc0": last,
            "sodUtc8": last,
            "ts": str(now_ms),
        }

    # ------------------------------------------------------------------ private

    def _currencies(self) -> list[dict[str, Any]]:
        assets = sorted({a for s in self._walk.symbols for a in split_symbol(s)})
        return [
            {
                "ccy": asset,
                "name": asset,
                "chain": f"{asset}-{asset}",
                "canDep": True,
                "canInternal": True,
                "canWd": True,
                "mainNet": True,
                "minDep": "0",
                "minWd": "0",
                "maxWd": "1000000",
                "minFee": "0",
                "maxFee": "0",
                "wdTickSz": "8",
                "wdQuota": "1000000",
                "usedWdQuota": "0",
                "logoLink": "",
            }
            for asset in assets
        ]

    def _place_one(self, params: Any, now_ms: int) -> HttpResponse:
        if not isinstance(params, dict):
            raise _Refused(400, "50002", "JSON syntax error")
        return _items([self._try_place(params, now_ms)], now_ms)

    def _place_batch(self, params: Any, now_ms: int) -> HttpResponse:
        if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
            raise _Refused(400, "50002", "JSON syntax error")
        if not params:
            raise _Refused(400, "50000", "Body for POST request cannot be empty.")
        if len(params) > 20:
            raise _Refused(400, "51000", "Parameter orders error")
        return _items([self._try_place(p, now_ms) for p in params], now_ms)

    def _try_place(self, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
        client_id = str(params.get("clOrdId") or "")
        tag = str(params.get("tag") or "")
        try:
            order = self._place(params, client_id, tag, now_ms)
        except _ItemFailed as failed:
            return _item("", client_id, failed.code, failed.msg, now_ms, tag=tag)
        return _item(self._id(order["order_id"]), client_id, "0", "Order placed", now_ms, tag=tag)

    def _place(
        self, params: dict[str, Any], client_id: str, tag: str, now_ms: int
    ) -> dict[str, Any]:
        try:
            symbol = self._symbol(params)
        except _Refused as refused:
            raise _ItemFailed(*_code_msg(refused)) from None
        if params.get("tdMode") not in ("cross", "isolated"):
            raise _ItemFailed("51000", "Parameter tdMode error")
        side = params.get("side")
        if side not in ("buy", "sell"):
            raise _ItemFailed("51000", "Parameter side error")
        kind = params.get("ordType")
        if kind not in ("limit", "market"):
            raise _ItemFailed("51000", "Parameter ordType error")  # the demo has no others
        if client_id and not _CLIENT_ID.match(client_id):
            raise _ItemFailed("51000", "Parameter clOrdId error")
        if tag and not _TAG.match(tag):
            raise _ItemFailed("51000", "Parameter tag error")
        if client_id and (
            client_id in self._ledger.by_client_id or client_id in self._resting.by_client_id
        ):
            raise _ItemFailed("51016", "Client order ID already exists.")
        contracts = _decimal(params.get("sz"))
        if contracts is None or contracts <= 0 or contracts % LOT_SIZE:
            raise _ItemFailed("51000", "Parameter sz error")
        qty = float(contracts * _contract_value(symbol))
        book_client_id = client_id or f"okx-{len(self._extra) + 1}"
        doc: dict[str, Any] = {
            "symbol": symbol,
            "side": side,
            "qty": qty,
            "client_order_id": book_client_id,
        }
        try:
            if kind == "limit":
                price = _decimal(params.get("px"))
                if price is None or price <= 0:
                    raise _ItemFailed("51000", "Parameter px error")
                doc["price"] = float(price)
                symbol, side, qty, limit = Ledger._validate(doc, self._walk)
                order = self._resting.add(
                    symbol, side, qty, limit, client_order_id=book_client_id, now=now_ms / 1000.0
                )
            else:
                order, _created = self._ledger.place(doc, self._walk, now_ms / 1000.0)
        except OrderRejectedError as exc:
            if exc.reason == "insufficient_funds":
                raise _ItemFailed("51008", _NO_BALANCE) from None
            raise _ItemFailed("51000", f"Parameter {exc.detail} error") from None
        self._extra[order["order_id"]] = {
            "ordType": str(kind),
            "tdMode": str(params["tdMode"]),
            "tag": tag,
            "clOrdId": client_id,
        }
        return order

    def _find(self, params: dict[str, Any], symbol: str) -> dict[str, Any] | None:
        """The order named by ``ordId`` (which wins) or ``clOrdId``, in ``symbol``."""
        if params.get("ordId"):
            book_id = self._by_ord_id.get(str(params["ordId"]))
            order = None
            if book_id is not None:
                order = self._resting.open.get(book_id) or next(
                    (
                        o
                        for o in [*self._resting.cancelled, *self._ledger.orders]
                        if o["order_id"] == book_id
                    ),
                    None,
                )
        elif params.get("clOrdId"):
            cid = str(params["clOrdId"])
            order = self._resting.by_client_id.get(cid) or self._ledger.by_client_id.get(cid)
            if order is not None and self._extra.get(order["order_id"], {}).get("clOrdId") != cid:
                order = None  # a client id the venue did not take (the demo's own API)
        else:
            raise _Refused(200, "51003", "Either client order ID or order ID is required.")
        if order is None or order["symbol"] != symbol:
            return None
        return order

    def _query(self, params: Any, now_ms: int) -> HttpResponse:
        order = self._find(params, self._symbol(params))
        if order is None:
            raise _Refused(200, "51603", "Order does not exist.")
        return _ok([self._doc(order, now_ms)])

    def _pending(self, params: Any, now_ms: int) -> HttpResponse:
        kind = params.get("instType")
        if kind not in (None, "SWAP", "SPOT", "MARGIN", "FUTURES", "OPTION"):
            raise _bad("instType")
        symbol = self._symbol(params) if params.get("instId") else None
        orders = [
            self._doc(o, now_ms)
            for o in reversed(self._resting.open.values())  # newest first, as the venue
            if (symbol is None or o["symbol"] == symbol) and kind in (None, "SWAP")
        ]
        return _ok(orders)

    def _cancel(self, params: Any, now_ms: int) -> HttpResponse:
        if not isinstance(params, dict):
            raise _Refused(400, "50002", "JSON syntax error")
        client_id = str(params.get("clOrdId") or "")
        try:
            symbol = self._symbol(params)
        except _Refused as refused:
            return _items([_item("", client_id, *_code_msg(refused), now_ms)], now_ms)
        order = self._find(params, symbol)
        if order is None or order["order_id"] not in self._resting.open:
            failed = _item(str(params.get("ordId") or ""), client_id, "51400", _NOT_OPEN, now_ms)
            return _items([failed], now_ms)
        del self._resting.open[order["order_id"]]
        order.update(status="cancelled", cancel_reason="cancel", cancelled_ts=now_ms / 1000.0)
        self._resting.cancelled.append(order)
        extra = self._extra.get(order["order_id"], {})
        return _items(
            [_item(self._id(order["order_id"]), extra.get("clOrdId", ""), "0", "", now_ms)], now_ms
        )

    def _countdown(self, params: Any, now_ms: int) -> HttpResponse:
        if not isinstance(params, dict):
            raise _Refused(400, "50002", "JSON syntax error")
        raw = params.get("timeOut")
        if raw is None or raw == "":
            raise _empty("timeOut")
        # The venue documents a string; ccxt sends a JSON number. Both are whole seconds.
        seconds = _decimal(raw) if not isinstance(raw, bool) else None
        if (
            seconds is None
            or seconds % 1
            or not (seconds == 0 or MIN_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S)
        ):
            raise _bad("timeOut")
        tag = str(params.get("tag") or "")
        if tag and not _TAG.match(tag):
            raise _bad("tag")
        if seconds == 0:
            self._countdowns.by_tag.pop(tag, None)
            trigger = "0"
        else:
            deadline_ms = now_ms + int(seconds) * 1000
            self._countdowns.by_tag[tag] = Countdown(float(seconds), deadline_ms / 1000.0)
            trigger = str(deadline_ms)
        return _ok([{"triggerTime": trigger, "tag": tag, "ts": str(now_ms)}])

    def _cancel_tagged(self, tag: str, now_ms: int) -> list[dict[str, Any]]:
        """Cancel (reason ``countdown``) every open order, or those placed with ``tag``."""
        now = now_ms / 1000.0
        if not tag:
            return self._resting.cancel_all(now, COUNTDOWN)
        gone = [
            o
            for o in self._resting.open.values()
            if self._extra.get(o["order_id"], {}).get("tag") == tag
        ]
        for order in gone:
            del self._resting.open[order["order_id"]]
            order.update(status="cancelled", cancel_reason=COUNTDOWN, cancelled_ts=now)
            self._resting.cancelled.append(order)
        return gone

    # ------------------------------------------------------------------ documents

    def _id(self, book_id: str) -> str:
        ord_id = self._ord_id.get(book_id)
        if ord_id is None:
            ord_id = str(2_510_789_768_709_120_000 + len(self._ord_id) + 1)
            self._ord_id[book_id] = ord_id
            self._by_ord_id[ord_id] = book_id
        return ord_id

    def _doc(self, order: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """A book's order as the venue writes one."""
        extra = self._extra.get(order["order_id"], {})
        kind = extra.get("ordType", "limit" if order.get("type") == "limit" else "market")
        state = {"open": "live", "filled": "filled", "cancelled": "canceled"}.get(
            order.get("status", ""), "live"
        )
        cancel_source = ""
        if state == "canceled":
            by_timer = order.get("cancel_reason") == COUNTDOWN
            cancel_source = BY_CANCEL_ALL_AFTER if by_timer else BY_USER
        per_contract = float(_contract_value(order["symbol"]))
        filled = float(order.get("filled", 0.0))
        price = float(order["price"])
        created = str(round(float(order["ts"]) * 1000))
        updated = order.get("cancelled_ts")
        return {
            "instType": "SWAP",
            "instId": inst_id(order["symbol"]),
            "ccy": "",
            "ordId": self._id(order["order_id"]),
            "clOrdId": extra.get("clOrdId", ""),
            "tag": extra.get("tag", ""),
            "px": _num(price) if kind == "limit" else "",
            "pxUsd": "",
            "pxVol": "",
            "pxType": "",
            "sz": _num(order["qty"] / per_contract),
            "pnl": "0",
            "ordType": kind,
            "side": order["side"],
            "posSide": "net",
            "tdMode": extra.get("tdMode", "cross"),
            "accFillSz": _num(filled / per_contract),
            "fillPx": _num(price) if filled else "",
            "tradeId": "",
            "fillSz": _num(filled / per_contract),
            "fillTime": created if filled else "",
            "avgPx": _num(price) if filled else "",
            "state": state,
            "lever": "1",
            "attachAlgoClOrdId": "",
            "tpTriggerPx": "",
            "tpTriggerPxType": "",
            "tpOrdPx": "",
            "slTriggerPx": "",
            "slTriggerPxType": "",
            "slOrdPx": "",
            "attachAlgoOrds": [],
            "linkedAlgoOrd": {"algoId": ""},
            "stpId": "",
            "stpMode": "cancel_maker",
            "feeCcy": "USDT",
            "fee": "0",
            "rebateCcy": "USDT",
            "rebate": "0",
            "source": "",
            "category": "normal",
            "reduceOnly": "false",
            "isTpLimit": "false",
            "cancelSource": cancel_source,
            "cancelSourceReason": "",
            "quickMgnType": "",
            "algoClOrdId": "",
            "algoId": "",
            "uTime": str(round(float(updated) * 1000)) if updated else created,
            "cTime": created,
        }


def _ok(data: list[dict[str, Any]]) -> HttpResponse:
    return json_response(200, {"code": "0", "msg": "", "data": data})


def _item(
    ord_id: str, client_id: str, code: str, msg: str, now_ms: int, *, tag: str = ""
) -> dict[str, Any]:
    return {
        "ordId": ord_id,
        "clOrdId": client_id,
        "tag": tag,
        "ts": str(now_ms),
        "sCode": code,
        "sMsg": msg,
    }


def _items(items: list[dict[str, Any]], now_ms: int) -> HttpResponse:
    """An order operation's answer: ``0`` all done, ``1`` none, ``2`` some."""
    failed = sum(1 for i in items if i["sCode"] != "0")
    code, msg = "0", ""
    if failed == len(items):
        code, msg = "1", "All operations failed"
    elif failed:
        code, msg = "2", "Bulk operation partially succeeded"
    return json_response(
        200,
        {
            "code": code,
            "msg": msg,
            "data": items,
            "inTime": str(now_ms * 1000),
            "outTime": str(now_ms * 1000),
        },
    )


def _code_msg(refused: _Refused) -> tuple[str, str]:
    doc = orjson.loads(refused.response.body)
    return str(doc["code"]), str(doc["msg"])


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _num(value: float) -> str:
    """A number as the venue writes one: a string, no exponent."""
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"

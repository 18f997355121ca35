"""The demo exchange in Binance USDⓈ-M futures' REST dialect (``/fapi/v1``), so that
ccxt's own, unmodified ``binanceusdm`` class trades with it over loopback.

The books are the demo exchange's (:class:`~autoheal.demo.market.Ledger` for market
orders, which fill at once; :class:`~autoheal.demo.resting.RestingBook` for limit
orders, which rest); this module only speaks the venue's language: its paths,
parameters, documents, numeric order ids, error codes and request signing.

Signing is checked as the venue checks it: a private call carries its API key in
``X-MBX-APIKEY`` and ``signature`` = HMAC-SHA256 (hex) of the query string followed by
the body, keyed by the secret; ``timestamp`` (ms) must lie within ``recvWindow``
(default 5000 ms) before the server's time and at most 1000 ms after it. Refusals
carry the venue's codes, which ccxt maps onto its exceptions:

========  =====================================================  =====================
HTTP      body ``code`` and ``msg``                              ccxt raises
========  =====================================================  =====================
401       -2015 Invalid API-key, IP, or permissions for action   AuthenticationError
400       -1022 Signature for this request is not valid.         AuthenticationError
400       -1021 Timestamp for this request is outside of the     InvalidNonce
          recvWindow.
400       -1121 Invalid symbol.                                  BadSymbol
400       -1102 Mandatory parameter ... was not sent             BadRequest
400       -2011 Unknown order sent. (a cancel)                   OrderNotFound
400       -2013 Order does not exist. (a lookup)                 OrderNotFound
400       -4116 ClientOrderId is duplicated.                     InvalidOrder
400       -2019 Margin is insufficient.                          InsufficientFunds
429       -1003 Too many requests (the fault proxy's rate limit) RateLimitExceeded
503       -1001 Internal error (the fault proxy's 5xx)           ExchangeNotAvailable
========  =====================================================  =====================

The countdown (``POST /fapi/v1/countdownCancelAll``) is per symbol, as at the venue:
``countdownTime`` ms from now, every open order of that symbol is cancelled unless it
is armed again; ``0`` switches it off. It fires on time with nobody calling
(:meth:`BinanceDialect.expire`, run by the exchange's countdown task).

The credentials are the demo exchange's (``AUTOHEAL_DEMO_API_KEY`` and
``AUTOHEAL_DEMO_API_SECRET`` in its environment, never on its command line); with none
set, every private call is refused (-2015).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from autoheal.demo.httpserver import HttpRequest, HttpResponse, json_response
from autoheal.demo.market import Ledger, OrderRejectedError, PriceWalk, split_symbol
from autoheal.demo.resting import CANCEL_ALL, COUNTDOWN, Countdown, RestingBook

__all__ = ["PREFIXES", "BinanceDialect", "Credentials", "binance_error", "sign", "venue_number"]

#: Every path of the dialect starts with one of these (futures; the wallet's coin list).
PREFIXES = ("/fapi/", "/sapi/")
#: The venue's default ``recvWindow`` (ms), and the most it accepts.
RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
#: How far ahead of the server's clock a timestamp may be (ms).
AHEAD_MS = 1000
#: The venue's pattern for ``newClientOrderId``.
_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
#: The signature: the last parameter of the query string or of the body.
_SIGNATURE = re.compile(r"(?:^|&)signature=([0-9a-fA-F]*)$")
#: A perpetual's ``deliveryDate`` at the venue (2100-12-25).
_PERPETUAL = 4133404800000


@dataclass(frozen=True, slots=True)
class Credentials:
    """One API key and its secret."""

    api_key: str
    secret: str


def sign(secret: str, payload: str) -> str:
    """The venue's signature of ``payload`` (the query string, then the body)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def binance_error(status: int, code: int, msg: str) -> HttpResponse:
    """An error answer as the venue writes it."""
    return json_response(status, {"code": code, "msg": msg})


class _Refused(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.response = binance_error(status, code, msg)


def _missing(name: str) -> _Refused:
    return _Refused(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


@dataclass(slots=True)
class _SymbolCountdowns:
    by_symbol: dict[str, Countdown] = field(default_factory=dict)
    fired: int = 0


class BinanceDialect:
    """Answers ``/fapi/...`` requests against the demo exchange's books.

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
        credentials: Credentials | None,
        wall_ms: Callable[[], int],
    ) -> None:
        self._walk = walk
        self._ledger = ledger
        self._resting = resting
        self._credentials = credentials
        self._wall_ms = wall_ms
        self._countdowns = _SymbolCountdowns()
        #: The venue's numeric order ids for the books' string ids, both ways.
        self._numeric: dict[str, int] = {}
        self._by_numeric: dict[int, str] = {}
        #: Orders placed through the dialect: their type, time in force, reduce-only flag.
        self._extra: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ routing

    def answer(self, request: HttpRequest) -> HttpResponse:
        """One request under :data:`PREFIXES`."""
        now_ms = self._wall_ms()
        self.expire(now_ms)
        route = (request.method, request.path)
        public: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("GET", "/fapi/v1/ping"): lambda _p: {},
            ("GET", "/fapi/v1/time"): lambda _p: {"serverTime": now_ms},
            ("GET", "/fapi/v1/exchangeInfo"): lambda _p: self._exchange_info(now_ms),
            ("GET", "/fapi/v1/ticker/price"): lambda p: self._price(p, now_ms),
            ("GET", "/fapi/v1/ticker/24hr"): lambda p: self._day(p, now_ms),
            # The wallet's margin pairs (none: the demo has no margin account).
            ("GET", "/sapi/v1/margin/allPairs"): lambda _p: [],
        }
        private = {
            ("POST", "/fapi/v1/order"): self._place,
            ("GET", "/fapi/v1/order"): self._query,
            ("DELETE", "/fapi/v1/order"): self._cancel,
            ("GET", "/fapi/v1/openOrders"): self._open_orders,
            ("DELETE", "/fapi/v1/allOpenOrders"): self._cancel_all,
            ("POST", "/fapi/v1/countdownCancelAll"): self._countdown,
            # The wallet's coin list (api.binance.com): ccxt asks for it with the markets.
            ("GET", "/sapi/v1/capital/config/getall"): self._coins,
        }
        try:
            if route in public:
                return json_response(200, public[route](self._params(request)))
            if route in private:
                params = self._signed(request, now_ms)
                return json_response(200, private[route](params, now_ms))
        except _Refused as refused:
            return refused.response
        if request.path.startswith(PREFIXES):
            return binance_error(
                404, -5000, f"Path {request.path}, Method {request.method} is invalid"
            )
        return binance_error(404, -5000, "not found")

    def expire(self, now_ms: int) -> int:
        """Fire every countdown that ran out; returns how many orders they cancelled."""
        gone = 0
        for symbol, countdown in list(self._countdowns.by_symbol.items()):
            if countdown.deadline is not None and now_ms / 1000.0 >= countdown.deadline:
                del self._countdowns.by_symbol[symbol]
                self._countdowns.fired += 1
                gone += len(self._resting.cancel_all(now_ms / 1000.0, COUNTDOWN, symbol))
        return gone

    def countdowns_doc(self, now_ms: int) -> dict[str, Any]:
        """The armed countdowns, for the exchange's stats."""
        return {
            "armed": {
                s: round(c.deadline - now_ms / 1000.0, 3)
                for s, c in sorted(self._countdowns.by_symbol.items())
                if c.deadline is not None
            },
            "fired": self._countdowns.fired,
        }

    # ------------------------------------------------------------------ parameters

    @staticmethod
    def _params(request: HttpRequest) -> dict[str, str]:
        params = dict(request.query)
        if request.body and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            params.update(parse_qsl(request.body.decode("latin-1")))
        return params

    def _signed(self, request: HttpRequest, now_ms: int) -> dict[str, str]:
        """The parameters of a signed call, or the venue's refusal."""
        key = request.headers.get("x-mbx-apikey", "")
        creds = self._credentials
        if creds is None or not hmac.compare_digest(key.encode(), creds.api_key.encode()):
            raise _Refused(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query = request.raw_query
        body = request.body.decode("latin-1") if request.body else ""
        # totalParams: the query string, then the body; the signature comes last in either.
        in_query = _SIGNATURE.search(query)
        found = in_query or _SIGNATURE.search(body)
        if found is None:
            raise _missing("signature")
        given = found.group(1)
        if in_query is not None:
            query = query[: found.start()]
        else:
            body = body[: found.start()]
        payload = query + body
        if not hmac.compare_digest(sign(creds.secret, payload), given.lower()):
            raise _Refused(400, -1022, "Signature for this request is not valid.")
        params = self._params(request)
        params.pop("signature", None)
        try:
            stamp = int(params["timestamp"])
        except (KeyError, ValueError):
            raise _missing("timestamp") from None
        try:
            window = int(params.get("recvWindow", RECV_WINDOW_MS))
        except ValueError:
            raise _missing("recvWindow") from None
        if not 0 < window <= MAX_RECV_WINDOW_MS:
            raise _Refused(400, -1131, "recvWindow must be less than 60000")
        if stamp < now_ms - window or stamp > now_ms + AHEAD_MS:
            raise _Refused(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    def _symbol(self, params: dict[str, str], *, required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise _missing("symbol")
            return None
        if symbol not in self._walk.prices:
            raise _Refused(400, -1121, "Invalid symbol.")
        return symbol

    # ------------------------------------------------------------------ public

    def _exchange_info(self, now_ms: int) -> dict[str, Any]:
        symbols = []
        for symbol in self._walk.symbols:
            base, quote = split_symbol(symbol)
            symbols.append(
                {
                    "symbol": symbol,
                    "pair": symbol,
                    "contractType": "PERPETUAL",
                    "deliveryDate": _PERPETUAL,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "baseAsset": base,
                    "quoteAsset": quote,
                    "marginAsset": quote,
                    "pricePrecision": 2,
                    "quantityPrecision": 3,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.01",
                            "maxPrice": "10000000",
                            "tickSize": "0.01",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.001",
                            "maxQty": "1000",
                            "stepSize": "0.001",
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": "0.001",
                            "maxQty": "120",
                            "stepSize": "0.001",
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MIN_NOTIONAL", "notional": "5"},
                        {
                            "filterType": "PERCENT_PRICE",
                            "multiplierUp": "1.0500",
                            "multiplierDown": "0.9500",
                            "multiplierDecimal": "4",
                        },
                    ],
                    "orderTypes": ["LIMIT", "MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": now_ms,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True}],
            "symbols": symbols,
        }

    def _price(self, params: dict[str, str], now_ms: int) -> Any:
        symbol = self._symbol(params, required=False)
        docs = [
            {"symbol": s, "price": venue_number(self._walk.prices[s]), "time": now_ms}
            for s in ([symbol] if symbol else self._walk.symbols)
        ]
        return docs[0] if symbol else docs

    def _day(self, params: dict[str, str], now_ms: int) -> Any:
        symbol = self._symbol(params, required=False)
        docs = []
        for s in [symbol] if symbol else self._walk.symbols:
            last = venue_number(self._walk.prices[s])
            docs.append(
                {
                    "symbol": s,
                    "priceChange": "0",
                    "priceChangePercent": "0",
                    "weightedAvgPrice": last,
                    "lastPrice": last,
                    "lastQty": "0",
                    "openPrice": last,
                    "highPrice": last,
                    "lowPrice": last,
                    "volume": "0",
                    "quoteVolume": "0",
                    "openTime": now_ms - 86_400_000,
                    "closeTime": now_ms,
                    "firstId": 0,
                    "lastId": 0,
                    "count": 0,
                }
            )
        return docs[0] if symbol else docs

    # ------------------------------------------------------------------ private

    def _coins(self, _params: dict[str, str], _now_ms: int) -> list[dict[str, Any]]:
        assets = sorted({a for s in self._walk.symbols for a in split_symbol(s)})
        return [
            {
                "coin": asset,
                "name": asset,
                "depositAllEnable": True,
                "withdrawAllEnable": True,
                "free": "0",
                "locked": "0",
                "freeze": "0",
                "withdrawing": "0",
                "ipoing": "0",
                "ipoable": "0",
                "storage": "0",
                "isLegalMoney": False,
                "trading": True,
                "networkList": [],
            }
            for asset in assets
        ]

    def _place(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        symbol = self._symbol(params)
        assert symbol is not None
        side = params.get("side", "")
        if side not in ("BUY", "SELL"):
            raise _missing("side")
        kind = params.get("type", "")
        if kind not in ("LIMIT", "MARKET"):
            raise _Refused(400, -1116, "Invalid orderType.")
        try:
            qty = float(params["quantity"])
        except (KeyError, ValueError):
            raise _missing("quantity") from None
        client_id = params.get("newClientOrderId") or f"autoheal-demo-{len(self._extra) + 1}"
        if not _CLIENT_ID.match(client_id):
            raise _Refused(
                400,
                -1100,
                "Illegal characters found in parameter "
                "'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        if client_id in self._ledger.by_client_id or client_id in self._resting.by_client_id:
            raise _Refused(400, -4116, "ClientOrderId is duplicated.")
        doc: dict[str, Any] = {
            "symbol": symbol,
            "side": side.lower(),
            "qty": qty,
            "client_order_id": client_id,
        }
        try:
            if kind == "LIMIT":
                if "price" not in params:
                    raise _missing("price")
                if "timeInForce" not in params:
                    raise _missing("timeInForce")
                doc["price"] = float(params["price"])
                symbol, side_l, qty, price = Ledger._validate(doc, self._walk)
                order = self._resting.add(
                    symbol, side_l, qty, price, client_order_id=client_id, now=now_ms / 1000.0
                )
            else:
                order, _created = self._ledger.place(doc, self._walk, now_ms / 1000.0)
        except OrderRejectedError as exc:
            if exc.reason == "insufficient_funds":
                raise _Refused(400, -2019, "Margin is insufficient.") from None
            raise _Refused(400, -1102, str(exc)) from None
        except ValueError:
            raise _missing("price") from None
        self._extra[order["order_id"]] = {
            "type": kind,
            "timeInForce": params.get("timeInForce", "GTC"),
            "reduceOnly": params.get("reduceOnly", "false").lower() == "true",
        }
        return self._doc(order, now_ms)

    def _find(self, params: dict[str, str], symbol: str) -> dict[str, Any] | None:
        if "orderId" in params:
            try:
                book_id = self._by_numeric.get(int(params["orderId"]))
            except ValueError:
                return None
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
        elif "origClientOrderId" in params:
            cid = params["origClientOrderId"]
            order = self._resting.by_client_id.get(cid) or self._ledger.by_client_id.get(cid)
        else:
            raise _missing("orderId")
        if order is None or order["symbol"] != symbol:
            return None
        return order

    def _query(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        symbol = self._symbol(params)
        assert symbol is not None
        order = self._find(params, symbol)
        if order is None:
            raise _Refused(400, -2013, "Order does not exist.")
        return self._doc(order, now_ms)

    def _cancel(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        symbol = self._symbol(params)
        assert symbol is not None
        order = self._find(params, symbol)
        if order is None or order["order_id"] not in self._resting.open:
            raise _Refused(400, -2011, "Unknown order sent.")
        del self._resting.open[order["order_id"]]
        order.update(status="cancelled", cancel_reason="cancel", cancelled_ts=now_ms / 1000.0)
        self._resting.cancelled.append(order)
        return self._doc(order, now_ms)

    def _open_orders(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        return [
            self._doc(o, now_ms)
            for o in self._resting.open.values()
            if symbol is None or o["symbol"] == symbol
        ]

    def _cancel_all(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        symbol = self._symbol(params)
        self._resting.cancel_all(now_ms / 1000.0, CANCEL_ALL, symbol)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _countdown(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        symbol = self._symbol(params)
        assert symbol is not None
        try:
            ms = int(params["countdownTime"])
        except (KeyError, ValueError):
            raise _missing("countdownTime") from None
        if ms < 0:
            raise _missing("countdownTime")
        if ms == 0:
            self._countdowns.by_symbol.pop(symbol, None)
        else:
            self._countdowns.by_symbol[symbol] = Countdown(ms / 1000.0, (now_ms + ms) / 1000.0)
        return {"symbol": symbol, "countdownTime": str(ms)}

    # ------------------------------------------------------------------ documents

    def _id(self, book_id: str) -> int:
        numeric = self._numeric.get(book_id)
        if numeric is None:
            numeric = 8_389_765_000_000 + len(self._numeric) + 1
            self._numeric[book_id] = numeric
            self._by_numeric[numeric] = book_id
        return numeric

    def _doc(self, order: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """A book's order as the venue writes one."""
        extra = self._extra.get(order["order_id"], {})
        kind = extra.get("type", "LIMIT" if order.get("type") == "limit" else "MARKET")
        status = {"open": "NEW", "filled": "FILLED", "cancelled": "CANCELED"}.get(
            order.get("status", ""), "NEW"
        )
        if order.get("cancel_reason") == COUNTDOWN:
            status = "EXPIRED"
        filled = float(order.get("filled", 0.0))
        price = float(order["price"])
        return {
            "orderId": self._id(order["order_id"]),
            "symbol": order["symbol"],
            "status": status,
            "clientOrderId": order["client_order_id"],
            "price": venue_number(price) if kind == "LIMIT" else "0",
            "avgPrice": venue_number(price) if filled else "0",
            "origQty": venue_number(order["qty"]),
            "executedQty": venue_number(filled),
            "cumQty": venue_number(filled),
            "cumQuote": venue_number(filled * price),
            "timeInForce": extra.get("timeInForce", "GTC"),
            "type": kind,
            "reduceOnly": extra.get("reduceOnly", False),
            "closePosition": False,
            "side": order["side"].upper(),
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": kind,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "time": round(float(order["ts"]) * 1000),
            "updateTime": now_ms,
        }


def venue_number(value: float) -> str:
    """A number as the venue writes one: a string, no exponent."""
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"

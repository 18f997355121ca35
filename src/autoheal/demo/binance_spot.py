"""The demo exchange's market data in Binance spot's REST dialect (``/api/v3``): what
freqtrade, through ccxt's unmodified ``binance`` class, reads to trade in dry-run.

Public endpoints only, in the venue's document shapes (the fields ccxt's parsers read):

======================================  ==============================================
``GET /api/v3/ping``, ``time``           ``{}``, ``{"serverTime"}``
``GET /api/v3/exchangeInfo``             every symbol of the walk, spot, ``TRADING``
``GET /api/v3/klines``                   the :class:`~autoheal.demo.candles.CandleBook`'s
                                         candles (1m to 1d; volume 0)
``GET /api/v3/ticker/24hr``              rolling 24 h from the candles, bid and ask from
                                         the book below
``GET /api/v3/ticker/price``,            the walk's price; the book's best bid and ask
``ticker/bookTicker``
``GET /api/v3/depth``                    a ladder around the walk's price
======================================  ==============================================

The book is a ladder, not anybody's orders: the best bid is the walk's price rounded
down to the tick, the best ask one tick above, each further level one tick away, each
level holding about :data:`LEVEL_NOTIONAL` USDT. Orders are not taken here (a dry-run
bot fills its own orders against this book); the futures dialect
(:mod:`autoheal.demo.binance`) is the one that trades. Refusals carry the venue's codes:
-1121 invalid symbol, -1120 invalid interval, -1100 a malformed number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from autoheal.demo.binance import binance_error, venue_number
from autoheal.demo.candles import INTERVALS, Candle, CandleBook
from autoheal.demo.httpserver import HttpRequest, HttpResponse, json_response
from autoheal.demo.market import PriceWalk, split_symbol

__all__ = ["LEVEL_NOTIONAL", "PREFIX", "SpotMarketData"]

PREFIX = "/api/v3/"
#: The price step of every demo market, and the quantity step.
TICK = 0.01
STEP = 0.00001
#: About how much quote currency each level of the book holds.
LEVEL_NOTIONAL = 10_000.0
DAY_MS = 86_400_000
_INTERVAL_MS = {name: minutes * 60_000 for name, minutes in INTERVALS.items()}


class _Refused(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.response = binance_error(400, code, msg)


class SpotMarketData:
    """Answers ``GET /api/v3/...`` from the walk and its candles.

    Args:
        walk: the prices.
        candles: the walk's recorded candles.
        wall_ms: the server's clock, in ms since the epoch.
    """

    def __init__(self, walk: PriceWalk, candles: CandleBook, wall_ms: Callable[[], int]) -> None:
        self._walk = walk
        self._candles = candles
        self._wall_ms = wall_ms

    def answer(self, request: HttpRequest) -> HttpResponse:
        """One request under :data:`PREFIX`."""
        now_ms = self._wall_ms()
        routes: dict[str, Callable[[dict[str, str], int], Any]] = {
            "ping": lambda _p, _n: {},
            "time": lambda _p, n: {"serverTime": n},
            "exchangeInfo": self._exchange_info,
            "klines": self._klines,
            "ticker/24hr": self._day,
            "ticker/price": self._price,
            "ticker/bookTicker": self._book_ticker,
            "depth": self._depth,
        }
        route = routes.get(request.path.removeprefix(PREFIX))
        if request.method != "GET" or route is None:
            return binance_error(
                404, -5000, f"Path {request.path}, Method {request.method} is invalid"
            )
        try:
            return json_response(200, route(dict(request.query), now_ms))
        except _Refused as refused:
            return refused.response

    # ------------------------------------------------------------------ parameters

    def _symbols(self, params: dict[str, str]) -> tuple[list[str], bool]:
        """The symbols asked for, and whether one was named alone (a single document)."""
        if params.get("symbol"):
            symbol = params["symbol"]
            if symbol not in self._walk.prices:
                raise _Refused(-1121, "Invalid symbol.")
            return [symbol], True
        if params.get("symbols"):
            try:
                named = orjson.loads(params["symbols"])
            except orjson.JSONDecodeError:
                raise _Refused(-1100, "Illegal characters found in parameter 'symbols'.") from None
            if not isinstance(named, list) or any(s not in self._walk.prices for s in named):
                raise _Refused(-1121, "Invalid symbol.")
            return [str(s) for s in named], False
        return self._walk.symbols, False

    @staticmethod
    def _int(params: dict[str, str], name: str, default: int | None) -> int | None:
        if name not in params:
            return default
        try:
            return int(params[name])
        except ValueError:
            raise _Refused(-1100, f"Illegal characters found in parameter '{name}'.") from None

    # ------------------------------------------------------------------ documents

    def _exchange_info(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        symbols, _one = self._symbols(params)
        return {
            "timezone": "UTC",
            "serverTime": now_ms,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 61000,
                },
            ],
            "exchangeFilters": [],
            "symbols": [_market(s) for s in symbols],
        }

    def _klines(self, params: dict[str, str], now_ms: int) -> list[list[Any]]:
        if not params.get("symbol"):
            raise _Refused(-1102, "Mandatory parameter 'symbol' was not sent.")
        symbol = self._symbols(params)[0][0]
        interval = params.get("interval", "")
        if interval not in INTERVALS:
            raise _Refused(-1120, "Invalid interval.")
        limit = self._int(params, "limit", 500) or 500
        if not 1 <= limit <= 1000:
            raise _Refused(-1130, "Data sent for parameter 'limit' is not valid.")
        candles = self._candles.klines(
            symbol,
            INTERVALS[interval],
            now_ms=now_ms,
            start_ms=self._int(params, "startTime", None),
            end_ms=self._int(params, "endTime", None),
            limit=limit,
        )
        step = _INTERVAL_MS[interval]
        return [_kline(c, step) for c in candles]

    def _best(self, symbol: str) -> tuple[float, float, float]:
        """Best bid, best ask and each level's quantity."""
        price = self._walk.prices[symbol]
        bid = math.floor(price / TICK + 1e-9) * TICK
        qty = max(STEP, round(LEVEL_NOTIONAL / price / STEP) * STEP)
        return round(bid, 2), round(bid + TICK, 2), qty

    def _day(self, params: dict[str, str], now_ms: int) -> Any:
        symbols, one = self._symbols(params)
        docs = []
        for symbol in symbols:
            day = self._candles.candle(symbol, (now_ms - DAY_MS) // 60_000 * 60_000, 1441)
            last = self._walk.prices[symbol]
            bid, ask, qty = self._best(symbol)
            change = last - day.open
            docs.append(
                {
                    "symbol": symbol,
                    "priceChange": venue_number(change),
                    "priceChangePercent": f"{change / day.open * 100:.3f}",
                    "weightedAvgPrice": venue_number(last),
                    "prevClosePrice": venue_number(day.open),
                    "lastPrice": venue_number(last),
                    "lastQty": "0",
                    "bidPrice": venue_number(bid),
                    "bidQty": venue_number(qty),
                    "askPrice": venue_number(ask),
                    "askQty": venue_number(qty),
                    "openPrice": venue_number(day.open),
                    "highPrice": venue_number(day.high),
                    "lowPrice": venue_number(day.low),
                    "volume": "0",
                    "quoteVolume": "0",
                    "openTime": now_ms - DAY_MS,
                    "closeTime": now_ms,
                    "firstId": -1,
                    "lastId": -1,
                    "count": 0,
                }
            )
        return docs[0] if one else docs

    def _price(self, params: dict[str, str], _now_ms: int) -> Any:
        symbols, one = self._symbols(params)
        docs = [{"symbol": s, "price": venue_number(self._walk.prices[s])} for s in symbols]
        return docs[0] if one else docs

    def _book_ticker(self, params: dict[str, str], _now_ms: int) -> Any:
        symbols, one = self._symbols(params)
        docs = []
        for symbol in symbols:
            bid, ask, qty = self._best(symbol)
            docs.append(
                {
                    "symbol": symbol,
                    "bidPrice": venue_number(bid),
                    "bidQty": venue_number(qty),
                    "askPrice": venue_number(ask),
                    "askQty": venue_number(qty),
                }
            )
        return docs[0] if one else docs

    def _depth(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        if not params.get("symbol"):
            raise _Refused(-1102, "Mandatory parameter 'symbol' was not sent.")
        symbol = self._symbols(params)[0][0]
        limit = self._int(params, "limit", 100) or 100
        if not 1 <= limit <= 5000:
            raise _Refused(-1130, "Data sent for parameter 'limit' is not valid.")
        bid, ask, qty = self._best(symbol)
        size = venue_number(qty)
        return {
            "lastUpdateId": now_ms,
            "bids": [
                [venue_number(round(bid - i * TICK, 2)), size]
                for i in range(limit)
                if bid - i * TICK > 0
            ],
            "asks": [[venue_number(round(ask + i * TICK, 2)), size] for i in range(limit)],
        }


def _kline(candle: Candle, step_ms: int) -> list[Any]:
    """One candle as the venue writes it (twelve fields; the last is unused)."""
    return [
        candle.open_ms,
        venue_number(candle.open),
        venue_number(candle.high),
        venue_number(candle.low),
        venue_number(candle.close),
        "0",
        candle.open_ms + step_ms - 1,
        "0",
        0,
        "0",
        "0",
        "0",
    ]


def _market(symbol: str) -> dict[str, Any]:
    base, quote = split_symbol(symbol)
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000000",
                "tickSize": venue_number(TICK),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": venue_number(STEP),
                "maxQty": "9000",
                "stepSize": venue_number(STEP),
            },
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "100", "stepSize": "0"},
            {
                "filterType": "NOTIONAL",
                "minNotional": "5",
                "applyMinToMarket": True,
                "maxNotional": "9000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }

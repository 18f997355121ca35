"""ccxt's own ``binance`` class reads the demo exchange's spot market data (``/api/v3``).

One exchange process per test, ccxt 4.5's unmodified class pointed at it: what a
dry-run freqtrade reads (markets, candles, tickers, the book, the time) parses as the
venue's does, and a call the demo does not serve is a 404 on loopback, in the venue's
words.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import ccxt.async_support as ccxt
import httpx
import pytest

from autoheal.demo.venue_urls import loopback_urls
from autoheal.drills.stacks.exchange import ExchangeHarness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ccxt's async support is asyncio's (aiohttp)


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[ExchangeHarness]:
    harness = ExchangeHarness(tmp_path / "ex")
    anyio.run(harness.start)
    try:
        yield harness
    finally:
        anyio.run(harness.stop)


async def opened(url: str) -> AsyncIterator[Any]:
    exchange = ccxt.binance({"options": {"fetchMarkets": {"types": ["spot"]}}})
    exchange.urls["api"] = loopback_urls(exchange.urls["api"], url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def fault(url: str, mode: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        body = {"mode": mode, "paths": [path], "count": 1, "retry_after": 1}
        (await client.post("/admin/fault", json=body)).raise_for_status()


@pytest.mark.anyio
async def test_markets_candles_tickers_book_and_time_parse_as_the_venues(
    venue: ExchangeHarness,
) -> None:
    async for ex in opened(venue.url):
        assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(ex.markets)
        btc = ex.market("BTC/USDT")
        assert btc["spot"] and btc["active"]
        assert btc["precision"]["price"] == 0.01
        assert btc["limits"]["cost"]["min"] == 5

        candles = await ex.fetch_ohlcv("BTC/USDT", "1m", limit=30)
        assert len(candles) == 30
        assert all(b[0] - a[0] == 60_000 for a, b in itertools.pairwise(candles))
        now_ms = time.time() * 1000
        assert now_ms - 60_000 <= candles[-1][0] <= now_ms
        assert all(c[3] <= min(c[1], c[4]) <= max(c[1], c[4]) <= c[2] for c in candles)
        five = await ex.fetch_ohlcv("ETH/USDT", "5m", limit=3)
        assert [c[0] % 300_000 for c in five] == [0, 0, 0]

        ticker = await ex.fetch_ticker("BTC/USDT")
        assert ticker["bid"] < ticker["ask"]
        assert ticker["ask"] - ticker["bid"] == pytest.approx(0.01)
        assert ticker["low"] <= ticker["last"] <= ticker["high"]
        tickers = await ex.fetch_tickers()
        assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(tickers)

        book = await ex.fetch_order_book("ETH/USDT", 20)
        assert len(book["bids"]) == len(book["asks"]) == 20
        assert book["bids"][0][0] < book["asks"][0][0]
        assert book["bids"][0][0] * book["bids"][0][1] == pytest.approx(10_000, rel=0.01)

        assert abs(await ex.fetch_time() - now_ms) < 5_000
        bids_asks = await ex.fetch_bids_asks(["SOL/USDT"])
        assert bids_asks["SOL/USDT"]["bid"] < bids_asks["SOL/USDT"]["ask"]


@pytest.mark.anyio
async def test_refusals_and_faults_carry_the_venues_codes_and_unserved_paths_are_loopback_404s(
    venue: ExchangeHarness,
) -> None:
    async for ex in opened(venue.url):
        with pytest.raises(ccxt.BadSymbol):
            await ex.publicGetTicker24hr({"symbol": "DOGEUSDT"})
        with pytest.raises(ccxt.BadRequest):
            await ex.publicGetKlines({"symbol": "BTCUSDT", "interval": "7m"})
        await fault(venue.url, "http_503", "/api/v3/depth")
        with pytest.raises(ccxt.OperationFailed, match="-1001"):
            await ex.fetch_order_book("BTC/USDT")
        await fault(venue.url, "rate_limit", "/api/v3/klines")
        with pytest.raises(ccxt.DDoSProtection, match="-1003"):
            await ex.fetch_ohlcv("BTC/USDT")
    async with httpx.AsyncClient(base_url=venue.url, timeout=5.0) as client:
        response = await client.get("/api/v3/avgPrice", params={"symbol": "BTCUSDT"})
        assert response.status_code == 404
        assert response.json()["code"] == -5000
        calls = (await client.get("/admin/stats")).json()["calls"]
    # spot markets only: no futures, COIN-M or wallet call was made
    assert calls["GET /api/v3/exchangeInfo"] == 1
    assert all(route.split()[1].startswith("/api/v3/") for route in calls)

"""ccxt's own ``binanceusdm`` class trades with the demo exchange's Binance dialect.

One exchange process per test (``python -m autoheal.demo.exchange`` on port 0, the
credentials in its environment), and the unmodified ccxt 4.5 class pointed at it
(:func:`autoheal.demo.venue_urls.loopback_urls`). What ccxt raises is what it raises
against the venue: the dialect's error codes are the venue's.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import ccxt.async_support as ccxt
import httpx
import pytest

from autoheal.demo.binance import sign
from autoheal.demo.venue_urls import loopback_urls
from autoheal.drills.stacks.exchange import ExchangeHarness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

KEY = "demo" + "k" * 60
SECRET = "demo" + "s" * 60
SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ccxt's async support is asyncio's (aiohttp)


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[ExchangeHarness]:
    harness = ExchangeHarness(tmp_path / "ex", credentials=(KEY, SECRET))
    anyio.run(harness.start)
    try:
        yield harness
    finally:
        anyio.run(harness.stop)


def binance(url: str, *, key: str = KEY, secret: str = SECRET, **options: Any) -> Any:
    exchange = ccxt.binanceusdm({"apiKey": key, "secret": secret, "options": options})
    exchange.urls["api"] = loopback_urls(exchange.urls["api"], url)
    return exchange


async def opened(url: str, **kw: Any) -> AsyncIterator[Any]:
    exchange = binance(url, **kw)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        doc: dict[str, Any] = (await client.get("/admin/stats")).raise_for_status().json()
        return doc


async def fault(url: str, mode: str, path: str, count: int = 1) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        body = {"mode": mode, "paths": [path], "count": count, "retry_after": 1}
        (await client.post("/admin/fault", json=body)).raise_for_status()


def test_loopback_urls_replace_every_origin_and_refuse_what_is_not_a_url() -> None:
    api = {
        "fapiPrivate": "https://fapi.binance.com/fapi/v1",
        "sapi": "https://api.binance.com/sapi/v1",
    }
    assert loopback_urls(api, "http://127.0.0.1:9/") == {
        "fapiPrivate": "http://127.0.0.1:9/fapi/v1",
        "sapi": "http://127.0.0.1:9/sapi/v1",
    }
    with pytest.raises(ValueError, match="not a URL"):
        loopback_urls({"x": "fapi.binance.com/fapi/v1"}, "http://127.0.0.1:9")


@pytest.mark.anyio
async def test_ccxt_trades_through_the_binance_dialect(venue: ExchangeHarness) -> None:
    async for ex in opened(venue.url):
        assert SYMBOL in ex.markets and ex.markets[SYMBOL]["linear"]
        ticker = await ex.fetch_ticker(SYMBOL)
        assert ticker["last"] > 0
        resting = await ex.create_order(
            SYMBOL, "limit", "buy", 0.01, 1000.0, {"newClientOrderId": "ah-r1"}
        )
        assert (resting["status"], resting["clientOrderId"]) == ("open", "ah-r1")
        assert isinstance(int(resting["id"]), int)  # the venue's ids are numbers
        again = await ex.fetch_order(resting["id"], SYMBOL)
        by_client = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "ah-r1"})
        assert again["id"] == by_client["id"] == resting["id"]
        assert [o["id"] for o in await ex.fetch_open_orders(SYMBOL)] == [resting["id"]]
        cancelled = await ex.cancel_order(resting["id"], SYMBOL)
        assert cancelled["status"] == "canceled"
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order(resting["id"], SYMBOL)  # -2011: not open any more
        filled = await ex.create_order(SYMBOL, "market", "buy", 0.01)
        assert filled["status"] == "closed" and filled["filled"] == pytest.approx(0.01)
        for i in range(3):
            await ex.create_order(SYMBOL, "limit", "buy", 0.01, 1000.0 + i)
        await ex.cancel_all_orders(SYMBOL)
        assert await ex.fetch_open_orders(SYMBOL) == []
        # -4116: a client order id is used once. ccxt picks its per-market error table by
        # the venue's host name (fapi.binance.com: InvalidOrder); on loopback only its
        # common table applies, so this code surfaces as the generic ExchangeError.
        with pytest.raises(ccxt.ExchangeError, match="-4116"):
            await ex.create_order(
                SYMBOL, "limit", "buy", 0.01, 1000.0, {"newClientOrderId": "ah-r1"}
            )
        with pytest.raises(ccxt.OrderNotFound):  # -2013
            await ex.fetch_order("1", SYMBOL)
    doc = await stats(venue.url)
    reasons = sorted(o["cancel_reason"] for o in doc["cancelled_orders"])
    assert reasons == ["cancel", "cancel_all", "cancel_all", "cancel_all"]


@pytest.mark.anyio
async def test_the_countdown_empties_its_symbols_book_with_nobody_calling(
    venue: ExchangeHarness,
) -> None:
    async for ex in opened(venue.url):
        await ex.create_order(SYMBOL, "limit", "buy", 0.01, 1000.0)
        await ex.create_order("ETH/USDT:USDT", "limit", "buy", 0.1, 100.0)
        answer = await ex.fapiPrivatePostCountdownCancelAll(
            {"symbol": "BTCUSDT", "countdownTime": 300}
        )
        assert answer == {"symbol": "BTCUSDT", "countdownTime": "300"}
    deadline = time.monotonic() + 5.0
    while True:  # nobody calls the venue now: its own timer must fire
        doc = await stats(venue.url)
        if doc["binance_countdowns"]["fired"]:
            break
        assert time.monotonic() < deadline, doc["binance_countdowns"]
        await anyio.sleep(0.05)
    assert [o["symbol"] for o in doc["open_orders"]] == ["ETHUSDT"]  # another symbol's stays
    assert [o["cancel_reason"] for o in doc["cancelled_orders"]] == ["countdown"]


@pytest.mark.anyio
async def test_the_venue_refuses_a_wrong_key_a_wrong_signature_and_a_stale_timestamp(
    venue: ExchangeHarness,
) -> None:
    async for ex in opened(venue.url):
        markets = ex.markets
    for kw, error, code in [
        ({"key": "not-the-key"}, ccxt.AuthenticationError, "-2015"),
        ({"secret": "not-the-secret"}, ccxt.AuthenticationError, "-1022"),
        # ccxt subtracts timeDifference from its clock: a timestamp 60 s in the past.
        ({"timeDifference": 60_000}, ccxt.InvalidNonce, "-1021"),
    ]:
        ex = binance(venue.url, **kw)
        ex.set_markets(markets)
        try:
            with pytest.raises(error, match=code):
                await ex.fetch_open_orders(SYMBOL)
        finally:
            await ex.close()
    assert (await stats(venue.url))["open_orders"] == []


@pytest.mark.anyio
async def test_a_signature_covers_the_query_and_the_body_byte_for_byte(
    venue: ExchangeHarness,
) -> None:
    stamp = int(time.time() * 1000)
    query = f"symbol=BTCUSDT&timestamp={stamp}"
    body = "side=BUY&type=LIMIT&quantity=0.01&price=1000&timeInForce=GTC"
    good = sign(SECRET, query + body)
    assert good == hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    headers = {"X-MBX-APIKEY": KEY, "content-type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient(base_url=venue.url, timeout=5.0) as client:
        moved = await client.post(
            f"/fapi/v1/order?{query}",
            content=body.replace("0.01", "0.02") + f"&signature={good}",
            headers=headers,
        )
        assert moved.status_code == 400 and moved.json()["code"] == -1022
        placed = await client.post(
            f"/fapi/v1/order?{query}", content=f"{body}&signature={good}", headers=headers
        )
        assert placed.status_code == 200, placed.text
        assert placed.json()["status"] == "NEW" and placed.json()["origQty"] == "0.01"


@pytest.mark.anyio
async def test_rate_limits_and_5xx_come_in_the_venues_words(venue: ExchangeHarness) -> None:
    async for ex in opened(venue.url):
        await fault(venue.url, "rate_limit", "/fapi/v1/order")
        with pytest.raises(ccxt.DDoSProtection, match="-1003"):  # a NetworkError: transient
            await ex.create_order(SYMBOL, "limit", "buy", 0.01, 1000.0)
        await fault(venue.url, "http_503", "/fapi/v1/order")
        with pytest.raises(ccxt.OperationFailed, match="-1001"):
            await ex.create_order(SYMBOL, "limit", "buy", 0.01, 1000.0)
        await fault(venue.url, "none", "/fapi/v1/order")
        assert (await ex.create_order(SYMBOL, "limit", "buy", 0.01, 1000.0))["status"] == "open"
    doc = await stats(venue.url)
    assert len(doc["open_orders"]) == 1  # the refused calls booked nothing

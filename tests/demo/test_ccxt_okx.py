"""ccxt's own ``okx`` class trades perpetual swaps with the demo exchange's OKX dialect.

One exchange process per test (``python -m autoheal.demo.exchange`` on port 0, the key,
secret and passphrase in its environment), and the unmodified ccxt 4.5 class pointed at
it (:func:`autoheal.demo.venue_urls.loopback_urls`). What ccxt raises is what it raises
against the venue: the dialect's error codes are the venue's.

The countdown test waits out OKX's shortest ``cancel-all-after`` (10 s): the venue
accepts no less.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import ccxt.async_support as ccxt
import httpx
import orjson
import pytest

from autoheal.demo.okx import book_symbol, inst_id, sign
from autoheal.demo.venue_urls import loopback_urls
from autoheal.drills.stacks.exchange import ExchangeHarness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

KEY = "demo" + "k" * 32
SECRET = "demo" + "s" * 32
PASSPHRASE = "Demo-pass-1"
SYMBOL = "BTC/USDT:USDT"
#: Only the swaps: one instruments call instead of four (the others answer empty).
SWAPS = {"fetchMarkets": {"types": ["swap"]}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ccxt's async support is asyncio's (aiohttp)


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[ExchangeHarness]:
    harness = ExchangeHarness(tmp_path / "ex", credentials=(KEY, SECRET, PASSPHRASE))
    anyio.run(harness.start)
    try:
        yield harness
    finally:
        anyio.run(harness.stop)


def okx(
    url: str,
    *,
    key: str = KEY,
    secret: str = SECRET,
    password: str = PASSPHRASE,
    **options: Any,
) -> Any:
    exchange = ccxt.okx(
        {"apiKey": key, "secret": secret, "password": password, "options": SWAPS | options}
    )
    exchange.urls["api"] = loopback_urls(exchange.urls["api"], url)
    return exchange


async def opened(url: str, **kw: Any) -> AsyncIterator[Any]:
    exchange = okx(url, **kw)
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


def test_instrument_ids_map_both_ways() -> None:
    assert inst_id("BTCUSDT") == "BTC-USDT-SWAP"
    assert book_symbol("BTC-USDT-SWAP") == "BTCUSDT"
    assert book_symbol("BTC-USDT") is None  # a spot id is not a swap's
    assert book_symbol("BTC-USD-SWAP") is None  # nor an inverse swap's


@pytest.mark.anyio
async def test_ccxt_trades_through_the_okx_dialect(venue: ExchangeHarness) -> None:
    async for ex in opened(venue.url):
        market = ex.markets[SYMBOL]
        assert (market["id"], market["swap"], market["linear"]) == ("BTC-USDT-SWAP", True, True)
        assert market["contractSize"] == 0.01
        assert {"BTC", "USDT"} <= set(ex.currencies)  # the private asset/currencies call
        ticker = await ex.fetch_ticker(SYMBOL)
        assert ticker["last"] > 0 and ticker["symbol"] == SYMBOL
        resting = await ex.create_order(SYMBOL, "limit", "buy", 2, 1000.0, {"clOrdId": "ahr1"})
        assert resting["clientOrderId"] == "ahr1" and resting["id"].isdigit()
        again = await ex.fetch_order(resting["id"], SYMBOL)
        by_client = await ex.fetch_order(None, SYMBOL, {"clOrdId": "ahr1"})
        assert again["id"] == by_client["id"] == resting["id"]
        assert (again["status"], again["amount"], again["price"]) == ("open", 2, 1000.0)
        assert [o["id"] for o in await ex.fetch_open_orders(SYMBOL)] == [resting["id"]]
        await ex.cancel_order(resting["id"], SYMBOL)
        assert (await ex.fetch_order(resting["id"], SYMBOL))["status"] == "canceled"
        with pytest.raises(ccxt.OrderNotFound, match="51400"):  # not open any more
            await ex.cancel_order(resting["id"], SYMBOL)
        with pytest.raises(ccxt.InvalidOrder, match="51016"):  # a client order id is used once
            await ex.create_order(SYMBOL, "limit", "buy", 1, 1000.0, {"clOrdId": "ahr1"})
        with pytest.raises(ccxt.OrderNotFound, match="51603"):
            await ex.fetch_order("1", SYMBOL)
        filled = await ex.create_order(SYMBOL, "market", "buy", 1)
        found = await ex.fetch_order(filled["id"], SYMBOL)
        assert (found["status"], found["filled"]) == ("closed", 1)
        assert await ex.fetch_open_orders(SYMBOL) == []
    doc = await stats(venue.url)
    assert [o["qty"] for o in doc["orders"]] == [pytest.approx(0.01)]  # 1 contract = 0.01 BTC
    assert [o["cancel_reason"] for o in doc["cancelled_orders"]] == ["cancel"]


@pytest.mark.anyio
async def test_cancel_all_after_empties_the_book_with_nobody_calling(
    venue: ExchangeHarness,
) -> None:
    async for ex in opened(venue.url):
        await ex.create_order(SYMBOL, "limit", "buy", 1, 1000.0)
        await ex.create_order("ETH/USDT:USDT", "limit", "buy", 1, 100.0)
        with pytest.raises(ccxt.BadRequest, match="51000"):  # 9 s: below the venue's 10
            await ex.cancel_all_orders_after(9999)
        armed = await ex.cancel_all_orders_after(10_000)
        assert armed["code"] == "0" and int(armed["data"][0]["triggerTime"]) > 0
        armed_at = time.monotonic()
    assert (await stats(venue.url))["okx_countdown"]["armed"][""] > 9
    while True:  # nobody calls the venue now: its own timer must fire
        doc = await stats(venue.url)
        if doc["okx_countdown"]["fired"]:
            break
        assert time.monotonic() - armed_at < 15.0, doc["okx_countdown"]
        await anyio.sleep(0.1)
    assert time.monotonic() - armed_at > 9.5  # not early either
    assert doc["open_orders"] == []  # the account's countdown: every symbol
    assert [o["cancel_reason"] for o in doc["cancelled_orders"]] == ["countdown"] * 2
    async for ex in opened(venue.url):
        order = doc["cancelled_orders"][0]
        found = await ex.fetch_order(None, SYMBOL, {"clOrdId": order["client_order_id"]})
        assert found["status"] == "canceled" and found["info"]["cancelSource"] == "20"


@pytest.mark.anyio
async def test_cancel_all_after_zero_switches_it_off_and_so_does_under_a_second(
    venue: ExchangeHarness,
) -> None:
    async for ex in opened(venue.url):
        await ex.create_order(SYMBOL, "limit", "buy", 1, 1000.0)
        await ex.cancel_all_orders_after(60_000)
        assert (await stats(venue.url))["okx_countdown"]["armed"]
        off = await ex.cancel_all_orders_after(0)
        assert off["data"][0]["triggerTime"] == "0"
        assert (await stats(venue.url))["okx_countdown"]["armed"] == {}
        await ex.cancel_all_orders_after(60_000)
        # ccxt sends int(ms / 1000): a 999 ms dead man's switch is no switch at all.
        off = await ex.cancel_all_orders_after(999)
        assert off["data"][0]["triggerTime"] == "0"
    doc = await stats(venue.url)
    assert doc["okx_countdown"] == {"armed": {}, "fired": 0}
    assert len(doc["open_orders"]) == 1


@pytest.mark.anyio
async def test_the_venue_refuses_a_wrong_key_secret_passphrase_and_a_stale_timestamp(
    venue: ExchangeHarness,
) -> None:
    async for ex in opened(venue.url):
        markets = ex.markets
    for kw, error, code in [
        ({"key": "not-the-key"}, ccxt.AuthenticationError, "50111"),
        ({"secret": "not-the-secret"}, ccxt.AuthenticationError, "50113"),
        ({"password": "not-the-passphrase"}, ccxt.AuthenticationError, "50105"),
        # ccxt subtracts timeDifference from its clock: a timestamp 60 s in the past.
        ({"timeDifference": 60_000}, ccxt.InvalidNonce, "50102"),
    ]:
        ex = okx(venue.url, **kw)
        ex.set_markets(markets)
        try:
            with pytest.raises(error, match=code):
                await ex.create_order(SYMBOL, "limit", "buy", 1, 1000.0)
        finally:
            await ex.close()
    doc = await stats(venue.url)
    assert doc["open_orders"] == []


@pytest.mark.anyio
async def test_a_signature_covers_timestamp_method_path_query_and_body(
    venue: ExchangeHarness,
) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    path = "/api/v5/trade/order"
    body = orjson.dumps(
        {
            "instId": "BTC-USDT-SWAP",
            "tdMode": "cross",
            "side": "buy",
            "ordType": "limit",
            "sz": "1",
            "px": "1000",
        }
    ).decode()
    good = sign(SECRET, stamp + "POST" + path + body)
    digest = hmac.new(SECRET.encode(), (stamp + "POST" + path + body).encode(), hashlib.sha256)
    assert good == base64.b64encode(digest.digest()).decode()
    headers = {
        "OK-ACCESS-KEY": KEY,
        "OK-ACCESS-PASSPHRASE": PASSPHRASE,
        "OK-ACCESS-TIMESTAMP": stamp,
        "OK-ACCESS-SIGN": good,
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(base_url=venue.url, timeout=5.0) as client:
        moved = await client.post(path, content=body.replace('"1"', '"2"'), headers=headers)
        assert moved.status_code == 401 and moved.json()["code"] == "50113"
        placed = await client.post(path, content=body, headers=headers)
        assert placed.status_code == 200 and placed.json()["code"] == "0", placed.text
        ord_id = placed.json()["data"][0]["ordId"]
        query = f"instId=BTC-USDT-SWAP&ordId={ord_id}"
        signed = sign(SECRET, stamp + "GET" + f"{path}?{query}")
        got = await client.get(f"{path}?{query}", headers={**headers, "OK-ACCESS-SIGN": signed})
        assert got.json()["data"][0]["state"] == "live", got.text
        bad = {**headers, "OK-ACCESS-TIMESTAMP": stamp.replace("Z", "")}
        refused = await client.post(path, content=body, headers=bad)
        assert (refused.status_code, refused.json()["code"]) == (401, "50112")
        one_failed = await client.post(
            path,
            content=body.replace("BTC-USDT-SWAP", "DOGE-USDT-SWAP"),
            headers={
                **headers,
                "OK-ACCESS-SIGN": sign(
                    SECRET, stamp + "POST" + path + body.replace("BTC-USDT-SWAP", "DOGE-USDT-SWAP")
                ),
            },
        )
        doc = one_failed.json()
        assert (doc["code"], doc["msg"], doc["data"][0]["sCode"]) == (
            "1",
            "All operations failed",
            "51001",
        )


@pytest.mark.anyio
async def test_rate_limits_and_5xx_come_in_the_venues_words(venue: ExchangeHarness) -> None:
    async for ex in opened(venue.url):
        await fault(venue.url, "rate_limit", "/api/v5/trade/batch-orders")
        with pytest.raises(ccxt.RateLimitExceeded, match="50011"):  # a NetworkError
            await ex.create_order(SYMBOL, "limit", "buy", 1, 1000.0)
        await fault(venue.url, "http_503", "/api/v5/trade/batch-orders")
        with pytest.raises(ccxt.OnMaintenance, match="50001"):  # ExchangeNotAvailable
            await ex.create_order(SYMBOL, "limit", "buy", 1, 1000.0)
        await fault(venue.url, "none", "/api/v5/trade/batch-orders")
        placed = await ex.create_order(SYMBOL, "limit", "buy", 1, 1000.0)
        assert (await ex.fetch_order(placed["id"], SYMBOL))["status"] == "open"
    doc = await stats(venue.url)
    assert len(doc["open_orders"]) == 1  # the refused calls booked nothing

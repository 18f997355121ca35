"""The fake exchange's resting orders, cancel-all and cancel-all-after countdown, for real.

One exchange process (``python -m autoheal.demo.exchange`` on port 0) per test, spoken
to over loopback HTTP; waits are conditions with deadlines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from autoheal.drills.stacks.exchange import ExchangeHarness

pytestmark = pytest.mark.slow


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[str]:
    harness = ExchangeHarness(tmp_path / "ex")
    anyio.run(harness.start)
    try:
        yield harness.url
    finally:
        anyio.run(harness.stop)


def limit(client: httpx.Client, cid: str, price: float = 1000.0, **extra: Any) -> dict[str, Any]:
    body = {"symbol": "BTCUSDT", "side": "buy", "qty": 0.01, "price": price, "type": "limit",
            "client_order_id": cid, **extra}
    response = client.post("/api/orders", json=body)
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


def open_orders(client: httpx.Client) -> dict[str, Any]:
    doc: dict[str, Any] = client.get("/api/open_orders").raise_for_status().json()
    return doc


def test_limit_orders_rest_and_cancel_all_empties_the_book(exchange: str) -> None:
    with httpx.Client(base_url=exchange, timeout=5.0) as client:
        first = limit(client, "c1")
        assert first["status"] == "open" and first["filled"] == 0.0 and not first["duplicate"]
        limit(client, "c2", 1001.0)
        again = limit(client, "c1")  # the same client order id: the same order, not a new one
        assert again["duplicate"] and again["order_id"] == first["order_id"]
        assert [o["client_order_id"] for o in open_orders(client)["orders"]] == ["c1", "c2"]
        market = client.post("/api/orders", json={"symbol": "BTCUSDT", "side": "buy",
                                                  "qty": 0.001, "client_order_id": "m1"})
        assert market.json()["status"] == "filled"  # a market order still fills at once
        no_price = client.post("/api/orders", json={"symbol": "BTCUSDT", "side": "buy",
                                                    "qty": 0.01, "type": "limit"})
        assert no_price.status_code == 400 and no_price.json()["error"] == "invalid_order"
        gone = client.delete("/api/open_orders").raise_for_status().json()
        assert gone["cancelled"] == 2
        assert {o["cancel_reason"] for o in gone["orders"]} == {"cancel_all"}
        assert open_orders(client)["orders"] == []
        stats = client.get("/admin/stats").json()
        assert len(stats["cancelled_orders"]) == 2 and stats["orders_placed"] == 1


def test_countdown_cancels_resting_orders_when_not_refreshed(exchange: str) -> None:
    with httpx.Client(base_url=exchange, timeout=5.0) as client:
        limit(client, "a")
        limit(client, "b", 999.0)
        armed = client.post("/api/countdown_cancel_all", json={"countdown_ms": 400}).json()
        assert armed["armed"] and armed["countdown_s"] == 0.4
        # Refreshed twice inside the window: still armed, nothing cancelled.
        for _ in range(2):
            time.sleep(0.2)
            client.post("/api/countdown_cancel_all", json={"countdown_ms": 400})
        assert len(open_orders(client)["orders"]) == 2
        refreshed_at = time.monotonic()
        # Then silence, as from a dead host: the exchange's own timer fires (stats is an
        # admin path and is no request of the trader's).
        deadline = refreshed_at + 2.0
        while (stats := client.get("/admin/stats").json())["open_orders"]:
            assert time.monotonic() < deadline, "countdown never fired"
            time.sleep(0.02)
        took = time.monotonic() - refreshed_at
        assert 0.35 <= took <= 1.0
        assert {o["cancel_reason"] for o in stats["cancelled_orders"]} == {"countdown"}
        assert stats["countdown"]["armed"] is False and stats["countdown"]["fired"] == 1


def test_countdown_zero_switches_it_off_and_bad_values_are_refused(exchange: str) -> None:
    with httpx.Client(base_url=exchange, timeout=5.0) as client:
        limit(client, "x")
        client.post("/api/countdown_cancel_all", json={"countdown_ms": 200})
        off = client.post("/api/countdown_cancel_all", json={"countdown_ms": 0}).json()
        assert off["armed"] is False
        for bad in ({"countdown_ms": -1}, {"countdown_ms": 1.5}, {"countdown_ms": True}, {}):
            response = client.post("/api/countdown_cancel_all", json=bad)
            assert response.status_code == 400, bad
            assert response.json()["error"] == "invalid_countdown"
        time.sleep(0.4)  # longer than the switched-off countdown: nothing may fire
        assert len(open_orders(client)["orders"]) == 1


def test_client_order_ids_lookup_duplicate_and_conflict(exchange: str) -> None:
    with httpx.Client(base_url=exchange, timeout=5.0) as client:
        body = {"symbol": "BTCUSDT", "side": "buy", "qty": 0.001, "price": 60000.0,
                "client_order_id": "sig-1"}
        assert client.get("/api/orders", params={"client_order_id": "sig-1"}).status_code == 404
        first = client.post("/api/orders", json=body).json()
        again = client.post("/api/orders", json=body).json()
        assert again["duplicate"] and again["order_id"] == first["order_id"]
        found = client.get("/api/orders", params={"client_order_id": "sig-1"}).json()
        assert found["order_id"] == first["order_id"] and found["status"] == "filled"
        for change in ({"qty": 0.002}, {"side": "sell"}, {"price": 1.0}, {"type": "limit"}):
            response = client.post("/api/orders", json={**body, **change})
            assert response.status_code == 400, change
            assert response.json()["error"] == "client_order_id_conflict"
        resting = limit(client, "rest-1")
        assert client.get("/api/orders",
                          params={"client_order_id": "rest-1"}).json()["order_id"] == \
            resting["order_id"]
        assert client.get("/admin/stats").json()["orders_placed"] == 1


def test_accept_then_drop_creates_the_order_and_loses_the_answer(exchange: str) -> None:
    with httpx.Client(base_url=exchange, timeout=5.0) as client:
        client.post("/admin/fault", json={"mode": "accept_then_drop",
                                          "paths": ["POST /api/orders"], "count": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/api/orders", json={"symbol": "BTCUSDT", "side": "buy", "qty": 0.001,
                                             "price": 60000.0, "client_order_id": "lost"})
        found = client.get("/api/orders", params={"client_order_id": "lost"})
        assert found.status_code == 200 and found.json()["client_order_id"] == "lost"
        assert client.get("/admin/stats").json()["orders_placed"] == 1

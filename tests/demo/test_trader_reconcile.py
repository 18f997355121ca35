"""The real demo trader process reconciles its ledger with the exchange's open orders:
an order placed on the exchange's API behind its back is reported within one period."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.demo.test_stack import Spawner, read_json, start_exchange, wait_for
from tests.guard.conftest import daemon_runtime

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PERIOD_S = 0.5


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.close()


def test_the_trader_reports_an_order_behind_its_back_within_one_period(
    spawn: Spawner, tmp_path: Path
) -> None:
    exchange = start_exchange(spawn, tmp_path)
    runtime = daemon_runtime(tmp_path / "rt")
    trader = spawn(
        "trader",
        "--exchange",
        exchange.url,
        "--runtime-dir",
        runtime,
        "--stop-file",
        tmp_path / "STOP.TXT",
        "--reconcile-period",
        str(PERIOD_S),
    )
    recon_file = runtime / "reconciliation.json"
    wait_for("a first reconciliation pass", lambda: (read_json(recon_file) or {}).get("ok"))
    placed = httpx.post(
        f"{exchange.url}/api/orders",
        timeout=2,
        json={
            "symbol": "BTCUSDT",
            "side": "buy",
            "qty": 0.003,
            "price": 1000.0,
            "type": "limit",
            "client_order_id": "by-hand-7",
        },
    ).json()
    at = time.monotonic()
    doc = wait_for(
        "the order reported", lambda: (d := read_json(recon_file)) and d["unknown_at_venue"] and d
    )
    took = time.monotonic() - at
    assert took <= PERIOD_S + 0.5, took  # one period (and a little for the file's poll)
    assert doc["ok"] is False and doc["venue"] == "demo"
    assert doc["unknown_at_venue"] == [
        {
            "order_id": placed["order_id"],
            "client_order_id": "by-hand-7",
            "symbol": "BTCUSDT",
            "side": "buy",
            "qty": "0.003",
        }
    ]
    alert = read_json(runtime / "alerts" / "order_reconciliation.json")
    assert alert is not None and alert["reasons"] == ["order_unknown_at_venue"]
    open_ids = [o["client_order_id"] for o in exchange.stats()["open_orders"]]
    assert open_ids == ["by-hand-7"]  # reported, not cancelled
    assert trader.stop() == 0
    assert "order_unknown_at_venue order_id=" in trader.text()
    ledger = read_json(runtime / "runtime" / "order_sigs.json") or {"sigs": {}}
    assert "by-hand-7" not in ledger["sigs"]  # not adopted

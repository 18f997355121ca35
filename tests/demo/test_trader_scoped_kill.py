"""The real demo trader's scoped kill (issue 24): two traders share one runtime (one
per symbol, each its own strategy) against the real demo exchange; a scoped halt of
one symbol cancels that trader's resting orders, verified gone by reading the open
orders again, while the other symbol's stay resting and an order placed by hand in the
halted symbol is left alone (not the runtime's own)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoheal.guard import scoped_record
from autoheal.guard.scopes import Halt
from tests.demo.test_stack import Spawner, read_json, start_exchange, wait_for
from tests.guard.conftest import daemon_runtime

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.close()


def open_orders(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/api/open_orders", timeout=2).json()["orders"])


def ids(orders: list[dict[str, Any]], prefix: str) -> set[str]:
    return {o["client_order_id"] for o in orders if o["client_order_id"].startswith(prefix)}


def test_a_scoped_halt_cancels_its_own_resting_orders_and_the_other_symbol_keeps_its(
    spawn: Spawner, tmp_path: Path
) -> None:
    exchange = start_exchange(spawn, tmp_path)
    runtime = daemon_runtime(tmp_path / "rt")
    spawn("feeder", "--exchange", exchange.url, "--runtime-dir", runtime)
    traders = {}
    for symbol, strategy in (("BTCUSDT", "grid"), ("ETHUSDT", "mm")):
        traders[symbol] = spawn(
            "trader", "--exchange", exchange.url, "--runtime-dir", runtime,
            "--stop-file", tmp_path / "STOP.TXT", "--symbol", symbol, "--strategy", strategy,
            "--order-type", "limit", "--interval", "0.05", "--max-orders", "2",
            "--reconcile-period", "0",
        )  # fmt: skip
    wait_for(
        "two resting orders of each strategy",
        lambda: (
            (o := open_orders(exchange.url))
            and len(ids(o, "S4grid")) == 2
            and len(ids(o, "S2mm")) == 2
        ),
    )
    by_hand = httpx.post(
        f"{exchange.url}/api/orders",
        timeout=2,
        json={"symbol": "BTCUSDT", "side": "buy", "qty": 0.001, "price": 1000.0,
              "type": "limit", "client_order_id": "by-hand-1"},
    )  # fmt: skip
    assert by_hand.status_code == 200
    before = open_orders(exchange.url)
    eth = ids(before, "S2mm")
    records = (read_json(runtime / "runtime" / "order_sigs.json") or {})["sigs"]
    assert {r.get("strategy") for r in records.values()} == {"grid", "mm"}  # the ledger too

    halted_at = time.monotonic()
    scoped_record.set_halt(runtime, "symbol=BTCUSDT", Halt("test", time.time(), "test"))
    wait_for("no own BTC order resting", lambda: not ids(open_orders(exchange.url), "S4grid"))
    took = time.monotonic() - halted_at
    after = open_orders(exchange.url)
    assert ids(after, "S2mm") == eth  # the other symbol's orders still rest
    assert ids(after, "by-hand") == {"by-hand-1"}  # not the runtime's own: never cancelled
    wait_for(
        "the kill logged as verified",
        lambda: "[kill] scope=symbol=BTCUSDT verified" in traders["BTCUSDT"].text(),
    )
    assert took < 3.0, took
    cancelled = exchange.stats()["cancelled_orders"]
    assert {o["client_order_id"] for o in cancelled} == ids(before, "S4grid")
    assert {o["cancel_reason"] for o in cancelled} == {"cancel"}  # one by one, not cancel-all

    # A strategy's scope: the other trader's orders go, the hand-placed one stays.
    scoped_record.set_halt(runtime, "strategy=mm", Halt("test", time.time(), "test"))
    wait_for("no mm order resting", lambda: not ids(open_orders(exchange.url), "S2mm"))
    assert ids(open_orders(exchange.url), "by-hand") == {"by-hand-1"}
    for proc in traders.values():
        assert proc.stop() == 0
    assert "INCOMPLETE" not in traders["ETHUSDT"].text()

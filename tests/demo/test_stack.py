"""The demo stack as real processes: fake exchange, feeder and trader on loopback.

Every process is started with ``sys.executable -m autoheal.demo.<name>``, the
exchange on port 0 (its port file says where it landed), all files in
``tmp_path``. Waits are conditions with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.guard.conftest import daemon_runtime

pytestmark = pytest.mark.slow

DEADLINE_S = 8.0


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise


class Spawner:
    """Starts demo programs with stderr to a log file; kills leftovers at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[Proc] = []

    def __call__(self, module: str, *args: str | os.PathLike[str]) -> Proc:
        log = self.directory / f"{module}.{len(self.procs)}.log"
        with open(log, "wb") as fh:
            popen = subprocess.Popen(
                [sys.executable, "-m", f"autoheal.demo.{module}", *map(str, args)],
                stdout=subprocess.DEVNULL, stderr=fh,
            )
        proc = Proc(popen, log)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
            proc.popen.wait()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.close()


@dataclass
class ExchangeInfo:
    proc: Proc
    url: str
    ws_url: str
    port: int

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/admin/stats", timeout=2).json()

    def orders(self) -> int:
        return int(self.stats()["orders_placed"])

    def fault(self, **doc: Any) -> None:
        httpx.post(f"{self.url}/admin/fault", json=doc, timeout=2).raise_for_status()


def start_exchange(spawn: Spawner, directory: Path) -> ExchangeInfo:
    port_file = directory / "exchange.port.json"
    proc = spawn("exchange", "--port", "0", "--port-file", port_file,
                 "--runtime-dir", directory / "exchange")
    info = wait_for("the exchange's port file", lambda: read_json(port_file))
    return ExchangeInfo(proc, info["rest_url"], info["ws_url"], info["port"])


@pytest.fixture(scope="module")
def shared_exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeInfo]:
    spawner = Spawner(tmp_path_factory.mktemp("exchange"))
    yield start_exchange(spawner, spawner.directory)
    spawner.close()


@pytest.fixture
def exchange(shared_exchange: ExchangeInfo) -> Iterator[ExchangeInfo]:
    """One exchange for the module (starting one costs about half a second); faults reset."""
    yield shared_exchange
    shared_exchange.fault(mode="none")


# -- exchange -----------------------------------------------------------------------------


def test_exchange_rest_endpoints_and_orders_counted(spawn: Spawner, tmp_path: Path) -> None:
    exchange = start_exchange(spawn, tmp_path)
    with httpx.Client(base_url=exchange.url, timeout=2) as client:
        assert client.get("/api/ping").json()["ok"] is True
        assert client.get("/api/balance").json()["balances"]["USDT"]["free"] > 0
        assert "BTCUSDT" in client.get("/api/markets").json()["symbols"]
        assert client.get("/api/ticker", params={"symbol": "BTCUSDT"}).json()["price"] > 0
        order = {"symbol": "BTCUSDT", "side": "buy", "qty": 0.01, "client_order_id": "sig-1"}
        first = client.post("/api/orders", json=order)
        again = client.post("/api/orders", json=order)
        assert first.status_code == again.status_code == 200
        assert first.json()["status"] == "filled"
        assert again.json()["order_id"] == first.json()["order_id"]
        assert again.json()["duplicate"] is True
        too_much = client.post("/api/orders", json={**order, "side": "sell", "qty": 5,
                                                    "client_order_id": "sig-2"})
        assert too_much.status_code == 400
        assert too_much.json()["error"] == "insufficient_funds"
        assert len(client.get("/api/orders").json()["orders"]) == 1
    stats = exchange.stats()
    assert stats["orders_placed"] == 1
    assert stats["calls"]["POST /api/orders"] == 3
    assert stats["calls"]["GET /api/ping"] == 1
    stats_file = exchange.proc.log.parent / "exchange" / "exchange_stats.json"
    wait_for("exchange_stats.json", lambda: (read_json(stats_file) or {}).get("orders_placed"))
    assert exchange.proc.stop() == 0
    assert "order filled" in exchange.proc.text()


def test_exchange_fault_502_counted_then_clears(exchange: ExchangeInfo) -> None:
    exchange.fault(mode="http_502", count=2)
    with httpx.Client(base_url=exchange.url, timeout=2) as client:
        assert [client.get("/api/ping").status_code for _ in range(3)] == [502, 502, 200]
        exchange.fault(mode="http_503", paths=["POST /api/orders"])
        assert client.get("/api/ping").status_code == 200
        assert client.post("/api/orders", json={}).status_code == 503
        assert client.get("/admin/stats").status_code == 200  # admin is never faulted
    assert exchange.stats()["fault"]["injected"] >= 3


def test_exchange_fault_rate_limit_has_retry_after(exchange: ExchangeInfo) -> None:
    exchange.fault(mode="rate_limit", retry_after=3)
    response = httpx.get(f"{exchange.url}/api/balance", timeout=2)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"


def test_exchange_fault_timeout_holds_then_closes(exchange: ExchangeInfo) -> None:
    exchange.fault(mode="timeout", paths=["/api/balance"])
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{exchange.url}/api/balance", timeout=0.3)
    assert httpx.get(f"{exchange.url}/api/ping", timeout=2).status_code == 200
    # A request held when the fault is cleared is hung up on, unanswered.
    with httpx.Client(timeout=5) as client:
        outcome: list[BaseException | httpx.Response] = []

        def held() -> None:
            try:
                outcome.append(client.get(f"{exchange.url}/api/balance"))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=held)
        thread.start()
        wait_for("the request to be held",
                 lambda: exchange.stats()["fault"]["injected"] >= 2)
        exchange.fault(mode="none")
        thread.join(timeout=5)
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
    assert httpx.get(f"{exchange.url}/api/balance", timeout=2).status_code == 200


def test_exchange_fault_down_closes_connection(exchange: ExchangeInfo) -> None:
    exchange.fault(mode="down")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{exchange.url}/api/ping", timeout=2)
    exchange.fault(mode="none")
    assert httpx.get(f"{exchange.url}/api/ping", timeout=2).status_code == 200


def test_exchange_websocket_streams_prices(exchange: ExchangeInfo) -> None:
    ws_calls = exchange.stats()["calls"].get("GET /ws", 0)
    with ws_connect(exchange.ws_url, open_timeout=2) as ws:
        messages = [json.loads(ws.recv(timeout=2)) for _ in range(6)]
        assert {m["symbol"] for m in messages} >= {"BTCUSDT", "ETHUSDT"}
        assert all(m["price"] > 0 and m["ts"] > 0 for m in messages)
        exchange.fault(mode="down", paths=["/ws"])
        with pytest.raises(Exception, match=r"1011|closed"):
            for _ in range(100):
                ws.recv(timeout=2)
    exchange.fault(mode="none")
    assert exchange.stats()["calls"]["GET /ws"] == ws_calls + 1


# -- feeder -------------------------------------------------------------------------------


def test_feeder_writes_heartbeat_with_ws_time_and_prices(
    exchange: ExchangeInfo, spawn: Spawner, tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    feeder = spawn("feeder", "--exchange", exchange.url, "--runtime-dir", runtime,
                   "--heartbeat-interval", "0.1")
    started = time.time()

    def fresh_heartbeat() -> dict[str, Any] | None:
        beat = read_json(runtime / "feeder.heartbeat.json")
        if beat and beat.get("ws_last_msg_ts") and beat["ws_last_msg_ts"] >= started:
            return beat
        return None

    beat = wait_for("a heartbeat with a recent ws_last_msg_ts", fresh_heartbeat)
    assert beat["component"] == "feeder" and beat["pid"] == feeder.popen.pid
    assert beat["ws_last_msg_ts"] >= started and beat["seq"] >= 1
    prices = wait_for("prices.json", lambda: read_json(runtime / "prices.json"))
    assert prices["prices"]["BTCUSDT"]["price"] > 0
    # The stream stalls: the heartbeat keeps beating while ws_last_msg_ts stops moving.
    exchange.fault(mode="timeout", paths=["/ws"])
    stalled_at = wait_for("the stream to stall", lambda: (
        (b := read_json(runtime / "feeder.heartbeat.json")) and b["ts"] - b["ws_last_msg_ts"] > 0.5
        and b))
    later = wait_for("two more beats", lambda: (
        (b := read_json(runtime / "feeder.heartbeat.json")) and b["seq"] >= stalled_at["seq"] + 2
        and b))
    assert later["ws_last_msg_ts"] == stalled_at["ws_last_msg_ts"]
    exchange.fault(mode="none")
    assert feeder.stop() == 0
    assert "ws connected" in feeder.text()


def test_feeder_fail_on_start_exits_1(spawn: Spawner, tmp_path: Path) -> None:
    feeder = spawn("feeder", "--exchange", "http://127.0.0.1:9", "--runtime-dir", tmp_path,
                   "--fail-on-start")
    assert feeder.popen.wait(timeout=10) == 1
    assert "cannot start" in feeder.text()
    assert not (tmp_path / "feeder.heartbeat.json").exists()


# -- trader -------------------------------------------------------------------------------


def test_trader_places_orders_halts_on_stop_file_and_resumes(
    exchange: ExchangeInfo, spawn: Spawner, tmp_path: Path
) -> None:
    runtime = daemon_runtime(tmp_path / "rt")  # no daemon here: its flags, NORMAL
    stop_file = tmp_path / "STOP.TXT"
    spawn("feeder", "--exchange", exchange.url, "--runtime-dir", runtime,
          "--heartbeat-interval", "0.2")
    trader = spawn("trader", "--exchange", exchange.url, "--runtime-dir", runtime,
                   "--stop-file", stop_file, "--interval", "0.05", "--backoff", "0.01",
                   "--heartbeat-interval", "0.05")
    before = exchange.orders()
    wait_for("two orders at the exchange", lambda: exchange.orders() >= before + 2)
    orders = exchange.stats()["orders"][before:]
    assert {o["side"] for o in orders[:2]} == {"buy", "sell"}
    # The strategy's tag (--strategy, default demo) and the idempotency signature.
    assert all(o["client_order_id"].startswith("S4demo") for o in orders)
    assert all(len(o["client_order_id"]) == 6 + 32 for o in orders)

    stop_file.write_text("test: halt\n")
    wait_for("the trader to log that it is halted",
             lambda: "trader halted reason=stop_file_present" in trader.text())
    halted_count = exchange.orders()
    signals = read_json(runtime / "trader.heartbeat.json")["signals"]
    wait_for("five more signals", lambda: (
        (read_json(runtime / "trader.heartbeat.json") or {"signals": 0})["signals"] >= signals + 5))
    assert exchange.orders() == halted_count
    assert trader.text().count("trader halted reason=stop_file_present") == 1

    stop_file.unlink()
    wait_for("orders again after STOP.TXT is gone",
             lambda: exchange.orders() > halted_count)
    assert "trader resumed" in trader.text()
    positions = read_json(runtime / "positions_snapshot.json")
    assert positions is not None and "BTCUSDT" in positions["positions"]
    assert trader.stop() == 0


def test_trader_no_gate_trades_through_stop_file_and_max_orders(
    exchange: ExchangeInfo, spawn: Spawner, tmp_path: Path
) -> None:
    runtime = tmp_path / "rt"
    stop_file = tmp_path / "STOP.TXT"
    stop_file.write_text("test: halt\n")
    spawn("feeder", "--exchange", exchange.url, "--runtime-dir", runtime)
    before = exchange.orders()
    trader = spawn("trader", "--exchange", exchange.url, "--runtime-dir", runtime,
                   "--stop-file", stop_file, "--interval", "0.05", "--no-gate",
                   "--max-orders", "2")
    wait_for("the trader to reach --max-orders",
             lambda: "reached --max-orders=2" in trader.text())
    assert exchange.orders() == before + 2
    assert "TRADING GATE DISABLED" in trader.text()
    assert trader.stop() == 0


def test_trader_under_502_storm_retries_trips_breaker_and_places_nothing(
    exchange: ExchangeInfo, spawn: Spawner, tmp_path: Path
) -> None:
    runtime = daemon_runtime(tmp_path / "rt")
    spawn("feeder", "--exchange", exchange.url, "--runtime-dir", runtime)
    trader = spawn("trader", "--exchange", exchange.url, "--runtime-dir", runtime,
                   "--stop-file", tmp_path / "STOP.TXT", "--interval", "0.05",
                   "--backoff", "0.01", "--retries", "3")
    wait_for("the trader's markets cache", lambda: "Markets refreshed" in trader.text())
    exchange.fault(mode="http_502")
    before = exchange.orders()
    wait_for("buys paused by the open breaker",
             lambda: "outage_circuit_breaker_active" in trader.text())
    text = trader.text()
    assert "[outage-retry] fetch_balance.buy_pre attempt 1/3 failed category=transient " \
           "reason=exchange_502 backoff=" in text
    assert "[outage-retry] fetch_balance.buy_pre retries exhausted (3/3)" in text
    assert "BUY BTCUSDT blocked: balance_fetch_failed underlying_reason=exchange_502" in text
    assert exchange.orders() == before
    exchange.fault(mode="none")
    assert trader.stop() == 0

"""The demo trader with ``[risk]``: refused orders never reach the exchange; losses latch."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from autoheal.demo.trader import RiskCheckedSession, load_risk_limits, parse_args
from autoheal.guard import TradingGate
from autoheal.guard.inventory import write_positions_snapshot
from autoheal.guard.risk import RiskConfigError, parse_limits
from autoheal.store.flags import read_flags, read_risk_latch
from tests.demo.test_stack import ExchangeInfo, Spawner, start_exchange
from tests.guard.conftest import daemon_runtime


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeInfo]:
    """The real demo exchange on a free loopback port, one per module (about 0.5 s)."""
    spawner = Spawner(tmp_path_factory.mktemp("exchange"))
    yield start_exchange(spawner, spawner.directory)
    spawner.close()


def args_for(tmp_path: Path, qty: float) -> argparse.Namespace:
    daemon_runtime(tmp_path)
    args = parse_args(["--runtime-dir", str(tmp_path), "--stop-file", str(tmp_path / "STOP.TXT"),
                       "--qty", str(qty), "--retries", "1", "--backoff", "0.001"])
    return args


def run_signals(exchange: ExchangeInfo, tmp_path: Path, limits: dict[str, Any], qty: float,
                signals: list[tuple[str, float]]) -> tuple[int, RiskCheckedSession, list[bool]]:
    """Feed the signals to a risk-checked session; returns (orders the exchange got, ...)."""
    before = exchange.orders()
    results: list[bool] = []

    async def main() -> RiskCheckedSession:
        async with httpx.AsyncClient(base_url=exchange.url, timeout=5) as http:
            session = RiskCheckedSession(args_for(tmp_path, qty), http, parse_limits(limits))
            for side, price in signals:
                results.append(await session.on_signal(side, price))
            return session

    session = anyio.run(main)
    return exchange.orders() - before, session, results


def test_an_order_over_a_limit_never_reaches_the_exchange(
    exchange: ExchangeInfo, tmp_path: Path, caplog
) -> None:
    with caplog.at_level(logging.WARNING, logger="autoheal.guard.risk"):
        placed, _session, results = run_signals(
            exchange, tmp_path, {"max_order_notional": 50}, 0.001, [("buy", 60000.0)])
    assert results == [False]
    assert placed == 0
    assert "risk_max_order_notional notional=60 (qty=0.001 x price=60000) " \
           "> max_order_notional=50" in caplog.text


def test_orders_inside_the_limits_are_placed(exchange: ExchangeInfo, tmp_path: Path) -> None:
    placed, session, results = run_signals(
        exchange, tmp_path, {"max_order_qty": 0.01, "max_position": 0.05}, 0.001,
        [("buy", 60000.0), ("sell", 60010.0)])
    assert results == [True, True]
    assert placed == 2
    assert session.risk.realized_pnl_today == Decimal("0.010")  # (60010 - 60000) x 0.001


def test_max_position_stops_buys_but_lets_the_position_be_sold(
    exchange: ExchangeInfo, tmp_path: Path
) -> None:
    placed, _s, results = run_signals(
        exchange, tmp_path, {"max_position": 0.002}, 0.001,
        [("buy", 100.0), ("buy", 101.0), ("buy", 102.0), ("sell", 103.0), ("sell", 104.0)])
    assert results == [True, True, False, True, True]
    assert placed == 4


def test_daily_loss_latches_reduce_only(exchange: ExchangeInfo, tmp_path: Path) -> None:
    placed, session, results = run_signals(
        exchange, tmp_path, {"max_daily_loss": 5}, 1.0,
        [("buy", 100.0), ("sell", 94.0), ("buy", 95.0)])
    assert results == [True, True, False]
    assert placed == 2
    latch = read_risk_latch(tmp_path)
    assert latch is not None and latch.reason.startswith("risk_daily_loss")
    flags = read_flags(tmp_path).flags  # the daemon's to write, not the guard's
    assert flags is not None and flags.mode == "NORMAL" and flags.set_by == ""
    assert TradingGate(tmp_path, tmp_path / "STOP.TXT").allowed("buy") == (False, "reduce_only")
    assert session.risk.loss_latched


def test_an_unreadable_positions_book_refuses_new_risk(
    exchange: ExchangeInfo, tmp_path: Path
) -> None:
    write_positions_snapshot(tmp_path, {"BTCUSDT": 0.0})
    before = exchange.orders()

    async def main() -> list[bool]:
        async with httpx.AsyncClient(base_url=exchange.url, timeout=5) as http:
            session = RiskCheckedSession(args_for(tmp_path, 0.001), http, parse_limits({}))
            # Corrupt the book after start: the inventory gate then sees no position either.
            book = session._book("BTCUSDT", 100.0)
            assert book is not None
            (tmp_path / "positions_snapshot.json").write_bytes(b"\x00garbage")
            return [session._book("BTCUSDT", 100.0) is None,
                    await session.on_signal("buy", 100.0), exchange.orders() == before]

    assert anyio.run(main) == [True, False, True]


def test_load_risk_limits_reads_the_risk_table(tmp_path: Path) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text('environment = "paper"\n[risk]\nmax_order_qty = 0.5\n')
    limits = load_risk_limits(path)
    assert limits is not None and str(limits.default.max_order_qty) == "0.5"
    assert load_risk_limits(None) is None
    path.write_text('environment = "paper"\n')
    assert load_risk_limits(path) is None
    path.write_text('[risk.symbols.BTCUSDT]\nmax_position = -1\n')
    with pytest.raises(RiskConfigError) as info:
        load_risk_limits(path)
    assert info.value.key == "risk.symbols.BTCUSDT.max_position"
    with pytest.raises(RiskConfigError):
        load_risk_limits(tmp_path / "missing.toml")


def test_the_trader_reports_its_marked_equity_and_pauses_without_one(
    exchange: ExchangeInfo, tmp_path: Path
) -> None:
    """With ``max_drawdown`` the trader reports its equity every tick (issue 24): none
    (no price) pauses new entries; a good one is the balances at the feeder's price."""

    async def main() -> tuple[Any, Decimal, dict[str, Any], bool]:
        async with httpx.AsyncClient(base_url=exchange.url, timeout=5) as http:
            session = RiskCheckedSession(
                args_for(tmp_path, 0.001), http, parse_limits({"max_drawdown": 1_000_000})
            )
            await session.tick()  # no prices.json: no equity
            paused = session.risk.activity(0.0).pnl_unavailable
            balances = await session.exchange.fetch_balance()
            expected = Decimal(repr(balances["USDT"]["total"])) + Decimal(
                repr((balances.get("BTC") or {}).get("total", 0.0))
            ) * Decimal("60000.0")
            now = time.time()
            (tmp_path / "prices.json").write_text(
                json.dumps({"ts": now, "prices": {"BTCUSDT": {"price": 60000.0, "ts": now}}})
            )
            orders = session.orders_placed
            await session.tick()
            doc = json.loads((tmp_path / "risk_pnl.json").read_text())
            return paused, expected, doc, session.orders_placed > orders

    paused, expected, doc, placed = anyio.run(main)
    assert paused is not None and paused[0] == "risk_pnl_unavailable"
    assert Decimal(doc["peak_equity"]) == expected and doc["breach_reads"] == 0
    assert placed  # the good read lifted the pause: the buy went out

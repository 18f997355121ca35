"""The trading gate honours the repeated-execution latches (``risk_scope_latches.json``)
at once, by the scope's strategy, symbol and side; a garbage file refuses every order;
an operator's enable lifts only its scope. Real files, the gate's own change detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.guard import TradingGate
from autoheal.guard.scope_latches import LATCHES_FILENAME, add_latch, remove_latch
from autoheal.guard.throttles import latch_entry
from tests.guard.conftest import FakeClock, daemon_runtime

pytestmark = [pytest.mark.timeout(30)]

SCOPE = "strategy=grid,symbol=BTCUSDT,side=buy"


def test_a_latched_scope_is_refused_and_the_others_pass(tmp_path: Path) -> None:
    rt = daemon_runtime(tmp_path / "rt")
    clock = FakeClock()
    gate = TradingGate(rt, tmp_path / "STOP.TXT", time_fn=clock)
    assert gate.allowed("buy", symbol="BTCUSDT", strategy="grid") == (True, "ok")
    add_latch(rt, SCOPE, latch_entry(1.0, 3, 60.0))
    gate.invalidate()
    refused = (False, f"risk_repeated_execution:{SCOPE}")
    assert gate.allowed("buy", symbol="btc/usdt", strategy="grid") == refused
    assert gate.allowed("buy", symbol="BTC/USDT:USDT", strategy="grid") == refused
    assert gate.allowed("buy", symbol="BTCUSDT") == refused  # no strategy given: fail closed
    assert gate.allowed("buy", symbol="BTCUSDT", strategy="trend") == (True, "ok")
    assert gate.allowed("sell", symbol="BTCUSDT", strategy="grid") == (True, "ok")
    assert gate.allowed("buy", symbol="ETHUSDT", strategy="grid") == (True, "ok")
    assert remove_latch(rt, SCOPE)[0]
    gate.invalidate()
    assert gate.allowed("buy", symbol="BTCUSDT", strategy="grid") == (True, "ok")


def test_a_garbage_latch_file_refuses_every_order(tmp_path: Path) -> None:
    rt = daemon_runtime(tmp_path / "rt")
    gate = TradingGate(rt, tmp_path / "STOP.TXT", time_fn=FakeClock())
    (rt / LATCHES_FILENAME).write_text('{"latches": {"not a scope": {}}}')
    gate.invalidate()
    for side in ("buy", "sell"):
        allowed, reason = gate.allowed(side, symbol="ETHUSDT", strategy="x")
        assert (allowed, reason) == (False, "risk_repeated_execution:all")

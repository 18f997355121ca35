"""The daily-loss latch against a real daemon: REDUCE_ONLY set by risk is kept, never loosened."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from autoheal.drills.stacks.simple import Runtime, wait_for
from autoheal.guard import RiskGuard, TradingGate, parse_limits
from autoheal.guard.risk import RiskBook, RiskOrder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_running_daemon_keeps_the_risk_latch(tmp_path: Path) -> None:
    with Runtime(tmp_path) as rt:
        rt.start_daemon()
        wait_for(lambda: (rt.health() or {}).get("mode") == "NORMAL", 5, "NORMAL")
        risk = RiskGuard(parse_limits({"max_daily_loss": 100}), rt.runtime_dir)
        risk.record_fill("BTCUSDT", "buy", Decimal(1), Decimal(1000))
        risk.record_fill("BTCUSDT", "sell", Decimal(1), Decimal(850))  # realized -150
        assert risk.loss_latched
        wait_for(lambda: rt.health()["mode"] == "REDUCE_ONLY", 5, "REDUCE_ONLY adopted")
        # Many health rounds later it still holds: nothing automatic loosens it.
        rt.wait_beats(5)
        flags = rt.flags()
        assert (flags["mode"], flags["set_by"], flags["failsafe_active"]) == (
            "REDUCE_ONLY", "risk", False)
        assert flags["reason"].startswith("risk_daily_loss realized_pnl_today=-150")
        assert rt.health()["mode"] == "REDUCE_ONLY" and rt.health()["failsafe"] is False
        gate = TradingGate(rt.runtime_dir, rt.stop_file)
        assert gate.allowed("buy") == (False, "reduce_only")
        assert gate.allowed("sell", reduces_position=True)[0]
        book = RiskBook(positions={"BTCUSDT": Decimal(1)}, marks={"BTCUSDT": Decimal(850)})
        assert risk.check(RiskOrder("BTCUSDT", "buy", Decimal(1)), book) == (
            False, ("risk_daily_loss",))
        assert risk.check(RiskOrder("BTCUSDT", "sell", Decimal(1)), book)[0]


def test_latch_during_a_failsafe_keeps_the_failsafe(tmp_path: Path) -> None:
    with Runtime(tmp_path) as rt:
        rt.start_daemon()
        assert rt.cli("failsafe", "enter", "--reason", "exchange trouble").returncode == 0
        before = rt.flags()
        risk = RiskGuard(parse_limits({"max_daily_loss": 1}), rt.runtime_dir)
        risk.record_realized(Decimal(-5))
        rt.wait_beats(2)
        assert rt.flags() == before  # the stricter halt is left exactly as it was
        assert rt.flags()["failsafe_active"] is True and rt.stop_file.exists()
        assert rt.health()["failsafe"] is True


def test_an_operators_clear_lifts_the_failsafe_then_the_latch(tmp_path: Path) -> None:
    """Issue 18 A1 against the real daemon: the latch never clears, and only tightens.

    A failsafe holds when the latch is written: the failsafe stays exactly as it was.
    ``failsafe clear`` lifts the failsafe, not the latch: REDUCE_ONLY (set by risk,
    journaled as the risk guard's, not an operator's); a second clear lifts it and
    removes the latch file.
    """
    with Runtime(tmp_path) as rt:
        rt.start_daemon()
        assert rt.cli("failsafe", "enter", "--reason", "exchange trouble").returncode == 0
        risk = RiskGuard(parse_limits({"max_daily_loss": 1}), rt.runtime_dir)
        risk.record_realized(Decimal(-5))
        latch_file = rt.runtime_dir / "risk_latch.json"
        assert latch_file.exists()
        rt.wait_beats(2)
        assert rt.flags()["failsafe_active"] is True and rt.stop_file.exists()
        assert rt.cli("failsafe", "clear", "--reason", "exchange fine").returncode == 0
        wait_for(lambda: rt.flags()["mode"] == "REDUCE_ONLY", 5, "the latch's REDUCE_ONLY")
        flags = rt.flags()
        assert (flags["failsafe_active"], flags["set_by"]) == (False, "risk")
        assert not rt.stop_file.exists()
        gate = TradingGate(rt.runtime_dir, rt.stop_file)
        assert gate.allowed("buy") == (False, "reduce_only")
        assert gate.allowed("sell", reduces_position=True) == (True, "ok")
        tightened = [(e.reason, e.actor) for e in rt.events(kind="kill_switch_tightened")]
        assert tightened == [("risk_latch", "risk")]
        assert [e.reason for e in rt.events(kind="operator_kill_switch")] == []
        assert rt.cli("failsafe", "clear", "--reason", "loss reviewed").returncode == 0
        wait_for(lambda: rt.flags()["mode"] == "NORMAL", 5, "NORMAL after the second clear")
        assert not latch_file.exists()
        assert gate.allowed("buy") == (True, "ok")

"""The daily-loss latch: a request for REDUCE_ONLY that can only tighten (issue 18 A1).

The latch used to read ``global_flags.json`` and write the whole document back, so a
failsafe that began in between was written over with ``failsafe_active: false``. Now
the guard creates ``risk_latch.json`` and never touches the flags; the gate honours
the latch file at once; only the daemon (on an operator's clear) or an operator
removes it. ``tests/daemon/test_kill_switch_writers.py`` races it against the
daemon; the daemon itself: ``test_guard_risk_daemon.py``.
"""

from __future__ import annotations

import logging
import os
from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest

from autoheal.guard import TradingGate, hash_confirm_token, is_live_execution_allowed
from autoheal.guard.risk import RiskBook, RiskGuard, RiskOrder, latch_reduce_only, parse_limits
from autoheal.store.flags import FLAGS_FILENAME, Flags, write_flags
from tests.guard.conftest import FakeClock, daemon_runtime

#: Spelled out (not imported) so that the regression tests also run against the code
#: before the latch had a file of its own, and fail there on their assertions.
RISK_LATCH_FILENAME = "risk_latch.json"
DAY = 86400.0
MARKS = {"BTCUSDT": D("50000")}
TOKEN = "I-UNDERSTAND-REAL-MONEY"
ARMED = {
    "mode": "live",
    "enable_live_trading": True,
    "live_mode_armed": True,
    "live_dry_run_mode": False,
    "confirm_token": TOKEN,
    "confirm_token_sha256": hash_confirm_token(TOKEN),
}


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    return daemon_runtime(tmp_path / "shared_data")


def _gate(runtime: Path) -> TradingGate:
    return TradingGate(runtime, runtime.parent / "STOP.TXT", recheck_interval_s=0.0)


def _buy() -> RiskOrder:
    return RiskOrder("BTCUSDT", "buy", D(1), D(50000))


def test_regression_issue18_a1_the_latch_never_writes_the_flags(runtime: Path, caplog) -> None:
    flags = runtime / FLAGS_FILENAME
    for doc in (Flags(), Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY", set_by="alice")):
        write_flags(runtime, doc)
        (runtime / RISK_LATCH_FILENAME).unlink(missing_ok=True)
        before = flags.read_bytes()
        wall = FakeClock(start=3 * DAY + 10)
        guard = RiskGuard(parse_limits({"max_daily_loss": 50}), runtime, wall_fn=wall)
        guard.record_fill("BTCUSDT", "buy", D(1), D(100))
        with caplog.at_level(logging.WARNING, logger="autoheal.guard.risk"):
            guard.record_fill("BTCUSDT", "sell", D(1), D(40))
        assert flags.read_bytes() == before  # not read-modify-written: not touched at all
        latch = orjson.loads((runtime / RISK_LATCH_FILENAME).read_bytes())
        assert latch["mode"] == "REDUCE_ONLY" and latch["set_by"] == "risk"
        assert latch["reason"].startswith("risk_daily_loss realized_pnl_today=-60")
        assert latch["since"] == 3 * DAY + 10
    assert "[risk] REDUCE_ONLY latch written" in caplog.text


def test_the_gate_honours_the_latch_with_no_daemon(runtime: Path) -> None:
    gate = _gate(runtime)
    assert gate.allowed("buy") == (True, "ok")
    RiskGuard(parse_limits({"max_daily_loss": 1}), runtime).record_realized(D(-5))
    assert gate.allowed("buy") == (False, "reduce_only")
    assert gate.allowed("sell") == (False, "reduce_only")
    assert gate.allowed("sell", reduces_position=True) == (True, "ok")
    env = {**ARMED, "runtime_dir": runtime}
    assert is_live_execution_allowed(env) == (False, "reduce_only")
    # It never loosens a failsafe: no unwinding sells through a halt.
    write_flags(runtime, Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY"))
    assert gate.allowed("sell", reduces_position=True) == (False, "failsafe_active")
    assert is_live_execution_allowed(env) == (False, "failsafe_active")
    # An operator removes it by hand (no daemon to do it): trading resumes.
    write_flags(runtime, Flags())
    (runtime / RISK_LATCH_FILENAME).unlink()
    assert gate.allowed("buy") == (True, "ok")


def test_a_latch_that_is_not_a_regular_file_still_latches(runtime: Path) -> None:
    from autoheal.store.flags import read_risk_latch

    os.mkfifo(runtime / RISK_LATCH_FILENAME)
    assert _gate(runtime).allowed("buy") == (False, "reduce_only")  # never opened
    latch = read_risk_latch(runtime)
    assert latch is not None and "not a regular file" in latch.reason


def test_an_existing_latch_is_never_replaced(runtime: Path) -> None:
    assert latch_reduce_only(runtime, "risk_daily_loss first", since=1.0) == "written"
    first = (runtime / RISK_LATCH_FILENAME).read_bytes()
    assert latch_reduce_only(runtime, "risk_daily_loss second", since=2.0) == "already"
    assert (runtime / RISK_LATCH_FILENAME).read_bytes() == first
    assert not [p.name for p in runtime.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_latch_write_is_retried_and_refuses_meanwhile(tmp_path: Path) -> None:
    from autoheal.store.flags import read_risk_latch

    runtime = tmp_path / "not_yet"  # the write fails: ENOENT
    guard = RiskGuard(parse_limits({"max_daily_loss": 1}), runtime)
    guard.record_realized(D(-5))
    book = RiskBook(marks=MARKS)
    allowed, reasons = guard.check(_buy(), book)
    assert not allowed and "risk_daily_loss" in reasons
    daemon_runtime(runtime)
    guard.check(_buy(), book)  # the next check writes it
    assert read_risk_latch(runtime) is not None


def test_regression_a_new_days_loss_latches_again_after_a_clear(runtime: Path) -> None:
    """After an operator cleared the latch, the next UTC day's loss latches again."""
    wall = FakeClock(start=3 * DAY + 10)
    guard = RiskGuard(parse_limits({"max_daily_loss": 50}), runtime, wall_fn=wall)
    gate = _gate(runtime)
    guard.record_realized(D(-60))
    assert gate.allowed("buy") == (False, "reduce_only")
    # An operator clears: with the daemon, ``failsafe clear``; by hand, both files.
    write_flags(runtime, Flags(reason="cleared by alice", set_by="alice"))
    (runtime / RISK_LATCH_FILENAME).unlink(missing_ok=True)
    assert gate.allowed("buy") == (True, "ok")
    guard.record_realized(D(-10))  # the same day: the guard still refuses new risk itself
    assert guard.check(_buy(), RiskBook(marks=MARKS)) == (False, ("risk_daily_loss",))
    assert gate.allowed("buy") == (True, "ok")  # but the operator's clear stands
    wall.advance(DAY)
    assert guard.check(_buy(), RiskBook(marks=MARKS))[0]
    guard.record_realized(D(-70))
    assert gate.allowed("buy") == (False, "reduce_only")

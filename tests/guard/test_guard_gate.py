"""TradingGate: the mode table, fail-closed flags, caching, and a real STOP.TXT seen in time."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from autoheal.guard import BreakerPolicy, CircuitBreaker, TradingGate
from autoheal.guard.gate import GateStatus, decide
from autoheal.store.flags import Flags, remove_stop_file, write_flags, write_stop_file

from .conftest import daemon_runtime, wait_for


@pytest.fixture
def runtime(tmp_path):
    return daemon_runtime(tmp_path / "shared_data")


def _gate(runtime, clock, **kw):
    return TradingGate(runtime, runtime.parent / "STOP.TXT", time_fn=clock, **kw)


def _flags(mode, failsafe=False):
    return Flags(failsafe_active=failsafe, mode=mode)


@pytest.mark.parametrize(
    ("flags", "action", "reduces", "expected"),
    [
        (_flags("NORMAL"), "buy", False, (True, "ok")),
        (_flags("NORMAL"), "SELL", False, (True, "ok")),
        (_flags("DEGRADED"), "buy", False, (False, "degraded")),
        (_flags("DEGRADED"), "sell", False, (True, "ok")),
        (_flags("REDUCE_ONLY"), "buy", False, (False, "reduce_only")),
        (_flags("REDUCE_ONLY"), "sell", False, (False, "reduce_only")),
        (_flags("REDUCE_ONLY"), "sell", True, (True, "ok")),
        (_flags("SIGNAL_READ_ONLY"), "sell", True, (False, "failsafe_active")),
        (_flags("NORMAL", failsafe=True), "buy", False, (False, "failsafe_active")),
        # unwinding inside a failsafe: the operator's REDUCE_ONLY lets reducing sells out
        (_flags("REDUCE_ONLY", failsafe=True), "sell", True, (True, "ok")),
        (_flags("REDUCE_ONLY", failsafe=True), "buy", False, (False, "reduce_only")),
        (_flags("REDUCE_ONLY", failsafe=True), "sell", False, (False, "reduce_only")),
        (None, "sell", True, (False, "flags_invalid")),
        (_flags("NORMAL"), "hold", False, (False, "invalid_action")),
    ],
)
def test_gate_decide_table(flags, action, reduces, expected):
    status = GateStatus(stop_present=False, flags=flags)
    assert decide(status, action, reduces_position=reduces) == expected


def test_gate_decide_stop_beats_everything():
    for flags in (None, _flags("NORMAL"), _flags("REDUCE_ONLY")):
        status = GateStatus(stop_present=True, flags=flags)
        assert decide(status, "sell", reduces_position=True) == (False, "stop_file_present")


def test_gate_decide_open_breaker_pauses_buys_for_that_symbol_only():
    status = GateStatus(open_until={"BTCUSDT": 100.0})
    assert decide(status, "buy", symbol="BTC/USDT", now=50) == (
        False,
        "outage_circuit_breaker_active",
    )
    assert decide(status, "sell", symbol="BTCUSDT", now=50) == (True, "ok")
    assert decide(status, "buy", symbol="ETHUSDT", now=50) == (True, "ok")
    assert decide(status, "buy", symbol="BTCUSDT", now=100) == (True, "ok")  # half-open: probe
    assert decide(GateStatus(open_until={"*": 100.0}), "buy", symbol="ETHUSDT", now=1) == (
        False,
        "outage_circuit_breaker_active",
    )


def test_gate_reads_files_and_notices_changes_after_the_recheck_interval(runtime, clock, caplog):
    caplog.set_level(logging.INFO)
    gate = _gate(runtime, clock, recheck_interval_s=0.025)
    assert gate.allowed("buy") == (True, "ok")  # the daemon's flags: NORMAL
    write_flags(runtime, _flags("DEGRADED"))
    assert gate.allowed("buy") == (True, "ok")  # cached: no re-check inside the interval
    clock.advance(0.025)
    assert gate.allowed("buy") == (False, "degraded")
    assert gate.allowed("sell") == (True, "ok")
    write_stop_file(runtime.parent / "STOP.TXT", "test")
    clock.advance(0.03)
    assert gate.allowed("sell") == (False, "stop_file_present")
    assert "STOP.TXT present" in caplog.text
    remove_stop_file(runtime.parent / "STOP.TXT")
    (runtime / "global_flags.json").write_text('{"failsafe_active": false}')
    clock.advance(0.03)
    assert gate.allowed("buy") == (True, "ok")


@pytest.mark.parametrize("content", [b"{ invalid", b"", b"[]", b'{"mode": "YOLO"}', b"\x00\xff"])
def test_gate_corrupt_flags_fail_closed(runtime, clock, content):
    (runtime / "global_flags.json").write_bytes(content)
    gate = _gate(runtime, clock)
    assert gate.allowed("buy") == (False, "flags_invalid")
    assert gate.allowed("sell", reduces_position=True) == (False, "flags_invalid")


def test_gate_pauses_buys_while_the_persisted_breaker_is_open(runtime, clock):
    breaker = CircuitBreaker(
        runtime, BreakerPolicy(failure_threshold=3, cooldown_s=5), time_fn=clock
    )
    gate = _gate(runtime, clock)
    for _ in range(3):
        breaker.record_failure("SOL/USDT", reason="exchange_502")
    clock.advance(0.03)
    assert gate.allowed("buy", symbol="SOLUSDT") == (False, "outage_circuit_breaker_active")
    assert gate.allowed("sell", symbol="SOLUSDT") == (True, "ok")
    assert gate.allowed("buy", symbol="BTCUSDT") == (True, "ok")
    clock.advance(5)
    assert gate.allowed("buy", symbol="SOLUSDT") == (True, "ok")


def test_gate_aallowed(runtime, clock):
    write_flags(runtime, _flags("DEGRADED"))
    gate = _gate(runtime, clock)
    assert asyncio.run(gate.aallowed("buy")) == (False, "degraded")


def test_gate_does_not_touch_files_within_the_recheck_interval(runtime, clock):
    write_flags(runtime, _flags("NORMAL"))
    gate = _gate(runtime, clock, recheck_interval_s=0.025)
    assert gate.allowed("buy") == (True, "ok")
    (runtime / "global_flags.json").write_bytes(b"{ torn")
    for _ in range(100):  # the clock does not move: the cached decision is used
        assert gate.allowed("buy") == (True, "ok")
    clock.advance(0.025)
    assert gate.allowed("buy") == (False, "flags_invalid")


def test_gate_unchanged_files_are_not_re_read(runtime, clock):
    write_flags(runtime, _flags("DEGRADED"))
    gate = _gate(runtime, clock)
    first = gate.status()
    clock.advance(1)
    assert gate.status() is first  # same stat signature: the parsed state object is kept


def test_gate_sees_a_real_stop_file_with_the_real_clock(runtime):
    """Real clock, real file: STOP.TXT created by the test is seen within a bounded wait."""
    gate = TradingGate(runtime, runtime.parent / "STOP.TXT")
    assert gate.allowed("buy") == (True, "ok")
    write_stop_file(runtime.parent / "STOP.TXT", "latency test")
    wait_for(
        lambda: gate.allowed("buy") == (False, "stop_file_present"),
        timeout_s=1.0,
        what="gate to see STOP.TXT",
    )


@pytest.mark.slow
def test_gate_watcher_thread_invalidates_on_file_events(runtime):
    """With a long fallback poll, only the watcher can make the gate notice in time."""
    with TradingGate(runtime, runtime.parent / "STOP.TXT", recheck_interval_s=3600) as gate:
        assert gate.allowed("buy") == (True, "ok")
        write_stop_file(runtime.parent / "STOP.TXT", "watcher test")
        elapsed = wait_for(
            lambda: gate.allowed("buy") == (False, "stop_file_present"),
            timeout_s=2.0,
            what="watcher to invalidate",
        )
    assert gate._thread is None
    assert elapsed < 2.0


@pytest.mark.slow
def test_gate_awatch_yields_changes(runtime):
    stop_file = runtime.parent / "STOP.TXT"
    gate = TradingGate(runtime, stop_file)

    async def main():
        stop = asyncio.Event()
        seen = []
        async for status in gate.awatch(stop_event=stop, poll_s=0.2):
            seen.append(status)
            if len(seen) == 1:
                await asyncio.to_thread(write_stop_file, stop_file, "awatch test")
            elif status.stop_present:
                stop.set()
                break
        return seen

    seen = asyncio.run(asyncio.wait_for(main(), 10))
    assert seen[0].stop_present is False
    assert seen[-1].stop_present is True
    assert seen[-1].halted


def test_gate_default_stop_file_is_beside_the_runtime_dir(runtime):
    assert TradingGate(runtime).stop_file == runtime.parent / "STOP.TXT"
    assert orjson.dumps(GateStatus().open_until) == b"{}"

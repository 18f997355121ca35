"""Issue 9, defect 7: breaker deadlines survive a reboot, and the gate agrees with the breaker.

A reboot is simulated with two fake clocks: the monotonic clock restarts at a small
value while the wall clock keeps going.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autoheal.guard import BreakerPolicy, CircuitBreaker, TradingGate
from autoheal.guard import breaker_state as bs

from .conftest import FakeClock, daemon_runtime

DAYS = 86_400.0
POLICY = BreakerPolicy(failure_threshold=3, window_failures=0, cooldown_s=120.0)


def _trip(runtime: Path, **clocks) -> CircuitBreaker:
    breaker = CircuitBreaker(runtime, POLICY, **clocks)
    for _ in range(3):
        breaker.record_failure("BTCUSDT", reason="exchange_502")
    assert breaker.state("BTCUSDT") == "open"
    return breaker


def _gate(runtime: Path, **clocks) -> TradingGate:
    return TradingGate(runtime, runtime.parent / "STOP.TXT", recheck_interval_s=0.0, **clocks)


@pytest.fixture
def runtime(tmp_path):
    return daemon_runtime(tmp_path / "shared_data")


def test_gate_after_reboot_does_not_pause_buys_for_days(runtime):
    # Before the reboot the host had been up for ten days.
    _trip(runtime, time_fn=lambda: 10 * DAYS)
    after = FakeClock(start=30.0)  # the new boot's clock
    gate = _gate(runtime, time_fn=after)
    breaker = CircuitBreaker(runtime, POLICY, time_fn=after)
    # Right after the boot a pause is fine (the outage may still be on) ...
    assert gate.allowed("buy", symbol="BTCUSDT") == (False, "outage_circuit_breaker_active")
    assert breaker.state("BTCUSDT") == "open"
    # ... but for at most one cooldown, never ten days; and the gate says what the breaker says.
    after.advance(POLICY.cooldown_s)
    assert breaker.state("BTCUSDT") == "half_open"
    assert gate.allowed("buy", symbol="BTCUSDT") == (True, "ok")


def test_breaker_deadline_survives_reboot_on_wall_clock(runtime):
    mono, wall = FakeClock(start=10 * DAYS), FakeClock(start=1_800_000_000.0)
    _trip(runtime, time_fn=mono, wall_fn=wall)
    doc = orjson.loads((runtime / "circuit_breaker.json").read_bytes())
    assert doc["clock"] == "wall"
    assert doc["keys"]["BTCUSDT"]["open_until"] == pytest.approx(wall.now + 120.0)

    # A quick reboot (30 s): 90 s of the cooldown are left, not 120 and not ten days.
    mono2, wall2 = FakeClock(start=5.0), FakeClock(start=wall.now + 30.0)
    gate = _gate(runtime, time_fn=mono2, wall_fn=wall2)
    breaker = CircuitBreaker(runtime, POLICY, time_fn=mono2, wall_fn=wall2)
    assert gate.allowed("buy", symbol="BTCUSDT") == (False, "outage_circuit_breaker_active")
    assert breaker.snapshot()["BTCUSDT"]["cooldown_remaining_s"] == pytest.approx(90.0)
    mono2.advance(89.0)
    wall2.advance(89.0)
    assert gate.allowed("buy", symbol="BTCUSDT")[0] is False
    mono2.advance(1.0)
    wall2.advance(1.0)
    assert gate.allowed("buy", symbol="BTCUSDT") == (True, "ok")
    assert breaker.state("BTCUSDT") == "half_open"

    # A long reboot (an hour): the cooldown is over at once.
    mono3, wall3 = FakeClock(start=5.0), FakeClock(start=wall.now + 3600.0)
    assert _gate(runtime, time_fn=mono3, wall_fn=wall3).allowed("buy", symbol="BTCUSDT") == (
        True,
        "ok",
    )


def test_wall_clock_set_back_never_extends_beyond_one_cooldown(runtime):
    mono, wall = FakeClock(start=500.0), FakeClock(start=1_800_000_000.0)
    _trip(runtime, time_fn=mono, wall_fn=wall)
    mono2, wall2 = FakeClock(start=5.0), FakeClock(start=wall.now - 30 * DAYS)
    breaker = CircuitBreaker(runtime, POLICY, time_fn=mono2, wall_fn=wall2)
    assert breaker.snapshot()["BTCUSDT"]["cooldown_remaining_s"] <= POLICY.cooldown_s


# -- properties of the one code path --------------------------------------------------------

_mono = st.floats(min_value=0.0, max_value=400 * DAYS, allow_nan=False)
_wall = st.floats(min_value=1.0e9, max_value=2.0e9, allow_nan=False)
_gap = st.floats(min_value=-30 * DAYS, max_value=30 * DAYS, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    mono=_mono,
    wall=_wall,
    opened_ago=st.floats(0, 1000),
    cooldown=st.floats(0, 3600),
    mono2=_mono,
    wall_gap=_gap,
)
def test_loaded_deadlines_are_bounded_by_one_cooldown(
    mono, wall, opened_ago, cooldown, mono2, wall_gap
):
    ks = bs.KeyState(
        state=bs.OPEN, opened_at=mono - opened_ago, open_until=mono - opened_ago + cooldown, trips=1
    )
    doc = bs.key_to_doc(ks, mono_now=mono, wall_now=wall)
    loaded = bs.key_from_doc(doc, mono2, wall_now=wall + wall_gap)
    assert loaded is not None and loaded.opened_at is not None and loaded.open_until is not None
    assert loaded.opened_at <= mono2
    assert loaded.open_until - mono2 <= cooldown + 1e-3
    remaining_before = cooldown - opened_ago
    if wall_gap >= 0:
        # Time that passed on the wall clock counts; nothing is ever added.
        expected = max(0.0, remaining_before - wall_gap)
        assert max(0.0, loaded.open_until - mono2) == pytest.approx(expected, abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(mono=_mono, mono2=_mono, downtime=st.floats(0, 600), later=st.floats(0, 300))
def test_gate_and_breaker_agree_after_any_reboot(mono, mono2, downtime, later):
    # Within a microsecond of the deadline float rounding (wall seconds ~1.8e9) may go either way.
    assume(abs(downtime + later - POLICY.cooldown_s) > 1e-3)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = daemon_runtime(Path(tmp) / "shared_data")
        wall = FakeClock(start=1_800_000_000.0)
        _trip(runtime, time_fn=lambda: mono, wall_fn=wall)
        m2, w2 = FakeClock(start=mono2), FakeClock(start=wall.now + downtime)
        gate = _gate(runtime, time_fn=m2, wall_fn=w2)
        breaker = CircuitBreaker(runtime, POLICY, time_fn=m2, wall_fn=w2)
        m2.advance(later)
        w2.advance(later)
        paused = gate.allowed("buy", symbol="BTCUSDT")[0] is False
        assert paused == (breaker.allow_call("buy", "BTCUSDT")[0] is False)
        assert paused == (downtime + later < POLICY.cooldown_s)

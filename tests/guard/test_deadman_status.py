"""The dead man's switch as a heartbeat shows it: the countdown's end in unix seconds, per phase."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from autoheal.core.risk_view import FileRead, risk_view
from autoheal.guard.deadman import DeadmanSwitch
from autoheal.guard.gate import TradingGate
from tests.guard.conftest import FakeClock, daemon_runtime
from tests.guard.test_guard_deadman_shell import POLICY, RecordingPort

pytestmark = [pytest.mark.timeout(30)]

WALL = 1_800_000_000.0


def test_status_doc_counts_down_from_the_last_arm_then_halts(
    tmp_path: Path, clock: FakeClock
) -> None:
    gate = TradingGate(daemon_runtime(tmp_path / "rt"), tmp_path / "STOP.TXT", time_fn=clock)
    switch = DeadmanSwitch(RecordingPort(), gate, POLICY, time_fn=clock)
    assert switch.status_doc(WALL)["phase"] == "idle"
    assert switch.status_doc(WALL)["expires_at"] is None
    asyncio.run(switch.tick())  # armed now: fires 120 s from now at the latest
    clock.advance(20.0)
    doc = switch.status_doc(WALL)
    assert doc["phase"] == "armed" and doc["expires_at"] == pytest.approx(WALL + 100.0)
    row = risk_view(
        now=WALL, limits=None, heartbeats={"trader": FileRead("ok", {"deadman": {"demo": doc}})}
    )["deadman"]["rows"][0]
    assert row["left_s"] == pytest.approx(100.0) and row["phase"] == "armed"
    (tmp_path / "STOP.TXT").write_text("operator\n")
    asyncio.run(switch.tick())
    assert switch.status_doc(WALL)["phase"] == "halted"

"""The dead man's switch shell: a real TradingGate on real files, a recording port, a fake clock."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from autoheal.guard.deadman import DeadmanPolicy, DeadmanSwitch
from autoheal.guard.gate import TradingGate
from autoheal.store.flags import Flags, write_flags
from tests.guard.conftest import FakeClock, daemon_runtime

POLICY = DeadmanPolicy(countdown_s=120.0, refresh_s=30.0)


class RecordingPort:
    """Records calls in order; ``fail_arm`` / ``fail_cancel`` make the next calls raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.fail_arm = 0
        self.fail_cancel = 0
        self.clock: FakeClock | None = None

    async def arm(self, countdown_s: float) -> None:
        self.calls.append(("arm", countdown_s))
        if self.fail_arm:
            self.fail_arm -= 1
            raise httpx.ConnectError("refused")

    async def cancel_all(self) -> int | None:
        self.calls.append(("cancel_all", 0.0))
        if self.fail_cancel:
            self.fail_cancel -= 1
            raise httpx.ReadTimeout("timed out")
        return 3


@pytest.fixture
def rig(tmp_path: Path, clock: FakeClock) -> tuple[DeadmanSwitch, RecordingPort, Path]:
    runtime = daemon_runtime(tmp_path / "shared_data")
    gate = TradingGate(runtime, tmp_path / "STOP.TXT", time_fn=clock)
    port = RecordingPort()
    return DeadmanSwitch(port, gate, POLICY, time_fn=clock), port, tmp_path


def test_refreshes_while_allowed_and_cancels_at_once_on_stop_file(
        rig: tuple[DeadmanSwitch, RecordingPort, Path], clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    switch, port, root = rig
    caplog.set_level(logging.INFO, "autoheal.guard.deadman")
    for _ in range(13):  # 60 s in 5 s ticks: armed at 0, 30, 60
        asyncio.run(switch.tick())
        clock.advance(5.0)
    assert port.calls == [("arm", 120.0)] * 3
    (root / "STOP.TXT").write_text("operator\n")
    asyncio.run(switch.tick())
    assert port.calls[-1] == ("cancel_all", 0.0)
    for _ in range(20):  # 100 s more: no refresh, no second cancel-all
        clock.advance(5.0)
        asyncio.run(switch.tick())
    assert port.calls.count(("cancel_all", 0.0)) == 1 and len(port.calls) == 4
    assert "[deadman] countdown armed countdown=120s refresh=30s" in caplog.text
    assert ("[deadman] trading halted reason=stop_file_present: refreshing stopped, "
            "cancel-all sent") in caplog.text
    assert "[deadman] cancel-all done cancelled=3 reason=stop_file_present" in caplog.text
    (root / "STOP.TXT").unlink()  # the operator lifts it: armed again at once
    asyncio.run(switch.tick())
    assert port.calls[-1] == ("arm", 120.0)


def test_failsafe_flags_cancel_and_failures_are_retried(
        rig: tuple[DeadmanSwitch, RecordingPort, Path], clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    switch, port, root = rig
    port.fail_arm = 1
    asyncio.run(switch.tick())
    assert "[deadman] arm failed reason=" in caplog.text
    clock.advance(5.9)
    asyncio.run(switch.tick())
    assert port.calls == [("arm", 120.0)]  # retry_s = 6 s
    clock.advance(0.1)
    asyncio.run(switch.tick())
    assert port.calls == [("arm", 120.0)] * 2 and switch.state.phase == "armed"
    write_flags(root / "shared_data", Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY"))
    port.fail_cancel = 2
    for _ in range(3):
        asyncio.run(switch.tick())
        clock.advance(6.0)
    assert [c for c, _ in port.calls].count("cancel_all") == 3
    assert "[deadman] cancel-all failed reason=" in caplog.text
    assert not switch.state.cancel_pending
    # REDUCE_ONLY is not a halt: resting reduce-only orders stay protected and refreshed.
    write_flags(root / "shared_data", Flags(mode="REDUCE_ONLY"))
    asyncio.run(switch.tick())
    assert port.calls[-1] == ("arm", 120.0)


def test_unknown_kill_switch_halts_and_run_sleeps_with_the_injected_sleep(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOHEAL_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("AUTOHEAL_STOP_FILE", raising=False)
    port = RecordingPort()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 5:
            raise asyncio.CancelledError

    switch = DeadmanSwitch(port, TradingGate(time_fn=clock), POLICY, time_fn=clock,
                           sleep_fn=sleep)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(switch.run())
    assert port.calls == [("cancel_all", 0.0)]  # never armed without a kill switch
    assert slept == [0.1] * 5

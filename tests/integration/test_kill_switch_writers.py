"""The kill switch's writers against real files: only the daemon and an operator clear.

A daemon-sized slice (the real ``step``, ``KillSwitch``, ``Effects`` and journal on a
real runtime directory) with the other writers acting on the same files for real:
the fleet (its reads fed to the core as the fleet agent does), and an operator
writing documents by hand.

Issue 18 A5: an operator's hand-written halt during a fleet HALT was ignored, and
the fleet's RUN then lifted it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from autoheal.core.actions import (
    ClearAlert,
    LogTransition,
    RaiseAlert,
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
)
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.machine import step
from autoheal.core.observations import (
    FleetSwitchRead,
    Observation,
    ProbeSucceeded,
    SpawnFinished,
)
from autoheal.core.state import RuntimeState, initial_state
from autoheal.daemon.effects import Effects
from autoheal.daemon.killswitch import FileLayer, KillSwitch
from autoheal.guard import TradingGate
from autoheal.store.flags import FLAGS_FILENAME
from autoheal.store.journal import Journal
from tests.core.conftest import make_policy

POLICY = make_policy()
WALL0 = 1_700_000_000.0


class Slice:
    """The daemon's consumer loop, synchronous: step, then carry out the actions."""

    def __init__(self, runtime_dir: Path, stop_file: Path) -> None:
        self.runtime_dir = runtime_dir
        self.stop_file = stop_file
        self.now = 10.0
        self.journal = Journal.open(runtime_dir)
        self.effects = Effects(runtime_dir, wall=self.wall, journal=lambda: self.journal)
        self.state: RuntimeState = initial_state(POLICY)
        self.killswitch = KillSwitch(
            FileLayer(runtime_dir, stop_file),
            state=lambda: self.state,
            apply=self.apply,
            execute=self.effects.execute,
            journal_event=self.effects.journal_event,
            clock=lambda: self.now,
            wall=self.wall,
        )
        self.killswitch.reconcile(startup=True)
        for name in POLICY.components:
            self.apply(SpawnFinished(name, True))
            for probe in ("process", "heartbeat"):
                self.apply(ProbeSucceeded(name, probe))
        self.apply(ProbeSucceeded("exchange", "http"))

    def wall(self) -> float:
        return WALL0 + self.now

    def apply(self, obs: Observation) -> bool:
        try:
            decision = step(self.state, obs, self.now, POLICY)
        except (IllegalCommandError, CommandRefusedError):
            return False
        self.state = decision.state
        for action in decision.actions:
            if isinstance(action, SendNotice | LogTransition | RaiseAlert | ClearAlert):
                self.effects.execute(action)
            elif not isinstance(action, StartProcess | RestartProcess | StopProcess):
                self.killswitch.write(action)  # the kill-switch files' writes

        return True

    def reconcile(self) -> None:
        self.now += 1.0
        self.killswitch.reconcile()

    def flags(self) -> dict[str, object]:
        doc = orjson.loads((self.runtime_dir / FLAGS_FILENAME).read_bytes())
        assert isinstance(doc, dict)
        return doc

    def events(self, kind: str | None = None) -> list[tuple[str, str | None, str | None]]:
        return [(e.kind, e.reason, e.actor) for e in self.journal.events(kind=kind)]

    def close(self) -> None:
        self.journal.close()


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Slice]:
    runtime_dir = tmp_path / "shared_data"
    runtime_dir.mkdir()
    s = Slice(runtime_dir, tmp_path / "STOP.TXT")
    yield s
    s.close()


# ------------------------------------------------------------------ A5


def test_regression_issue18_a5_hand_written_halt_during_a_fleet_halt_holds(rt: Slice) -> None:
    rt.apply(FleetSwitchRead("HALT", 1, "ops", "venue incident"))
    assert rt.state.failsafe is not None and rt.state.failsafe.set_by == "fleet"
    assert rt.stop_file.exists()
    doc = {"failsafe_active": True, "set_by": "alice", "reason": "bad fills, holding"}
    (rt.runtime_dir / FLAGS_FILENAME).write_bytes(orjson.dumps(doc))
    rt.reconcile()
    assert rt.state.failsafe.set_by == "alice"
    assert ("operator_kill_switch", "flags_entered", "alice") in rt.events()
    rt.apply(FleetSwitchRead("RUN", 2, "ops", "all clear"))
    rt.reconcile()
    assert rt.state.failsafe is not None and rt.state.failsafe.set_by == "alice"
    assert rt.stop_file.exists()
    assert rt.flags()["failsafe_active"] is True
    gate = TradingGate(rt.runtime_dir, rt.stop_file, watch_breaker=False)
    assert gate.allowed("buy") == (False, "stop_file_present")


# ------------------------------------------------------------------ the flags always exist


def test_the_daemon_writes_the_flags_into_a_fresh_runtime_dir_and_keeps_them(
    tmp_path: Path,
) -> None:
    """A missing flags file means "unknown" to the guard only because the daemon always
    writes one: at start into an empty runtime directory, and again when it goes."""
    runtime_dir = tmp_path / "fresh"
    runtime_dir.mkdir()
    s = Slice(runtime_dir, tmp_path / "STOP.TXT")
    try:
        gate = TradingGate(runtime_dir, s.stop_file, watch_breaker=False, recheck_interval_s=0)
        assert s.flags()["mode"] == "NORMAL"
        assert gate.allowed("buy") == (True, "ok")
        (runtime_dir / FLAGS_FILENAME).unlink()
        assert gate.allowed("buy") == (False, "kill_switch_unknown")
        s.reconcile()
        assert s.flags()["mode"] == "NORMAL"
        assert gate.allowed("buy") == (True, "ok")
    finally:
        s.close()

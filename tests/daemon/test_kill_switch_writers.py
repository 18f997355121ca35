"""The kill switch's writers against real files: only the daemon and an operator clear.

A daemon-sized slice (the real ``step``, ``KillSwitch``, ``Effects`` and journal on a
real runtime directory) with the other writers acting on the same files for real:
the guard's daily-loss latch (a real ``RiskGuard``), the fleet (its reads fed to the
core as the fleet agent does), and an operator writing documents by hand.

Issue 18 A1: the latch read ``global_flags.json``, then wrote the whole document back;
a failsafe entered in between was written over with ``failsafe_active: false`` and
the daemon journaled an operator's clear. The race is forced deterministically with
a FIFO at the flags path: the latch's read blocks in ``open`` until the test, having
entered the failsafe, hands it the document as it was before.
Issue 18 A5: an operator's hand-written halt during a fleet HALT was ignored, and
the fleet's RUN then lifted it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from autoheal.core.actions import (
    ClearAlert,
    LogSwitchEvent,
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
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    ProbeFailed,
    ProbeSucceeded,
    SpawnFinished,
    SwitchFilesRead,
)
from autoheal.core.state import RuntimeState, initial_state
from autoheal.core.switch import SwitchWrite, due_writes
from autoheal.daemon.effects import Effects
from autoheal.daemon.killswitch import FileLayer, KillSwitch
from autoheal.guard import RiskGuard, TradingGate, parse_limits
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
        self.effects = Effects(runtime_dir, wall=self.wall, journal=self.journal)
        self.state: RuntimeState = initial_state(POLICY)
        self.killswitch = KillSwitch(FileLayer(runtime_dir, stop_file), wall=self.wall)
        self.reading = False
        self.read_switch(startup=True)
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
            if isinstance(
                action, SendNotice | LogTransition | LogSwitchEvent | RaiseAlert | ClearAlert
            ):
                self.effects.execute(action)
            elif not isinstance(action, StartProcess | RestartProcess | StopProcess):
                self.write(action)  # the kill-switch files' writes

        return True

    def read_switch(self, *, startup: bool = False, read: SwitchFilesRead | None = None) -> None:
        """As the interpreter does: read (the core steps what an operator did), then
        write what is due."""
        reading, self.reading = self.reading, True
        try:
            self.apply(read or self.killswitch.read(startup=startup))
            for action in due_writes(self.state.switch, self.state, self.now):
                self.write(action)
        finally:
            self.reading = reading

    def write(self, action: SwitchWrite) -> None:
        outcome = self.killswitch.write(action, just_read=self.reading)
        if isinstance(outcome, SwitchFilesRead):
            self.read_switch(read=outcome)
        elif outcome is not None:
            self.apply(outcome)

    def reconcile(self) -> None:
        self.now += 1.0
        self.read_switch()

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


def _open_writer(path: Path, *, give_up: Callable[[], bool], timeout_s: float = 10.0) -> int | None:
    """Open the FIFO at ``path`` for writing once a reader has it open; None if nobody does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        if give_up():
            return None
        time.sleep(0.001)
    raise AssertionError(f"nobody opened {path} for reading within {timeout_s} s")


def _operator_clears(rt: Slice) -> list[tuple[str, str | None, str | None]]:
    return [
        e for e in rt.events() if e[0] == "operator_kill_switch" and "clear" in (e[1] or "")
    ] + [e for e in rt.events(kind="notice") if e[1] == "operator" and e[2] == "operator"]


# ------------------------------------------------------------------ A1


def test_regression_issue18_a1_latch_racing_a_failsafe_never_clears_it(rt: Slice) -> None:
    flags_path = rt.runtime_dir / FLAGS_FILENAME
    before = flags_path.read_bytes()  # NORMAL, as the latch would have read it
    assert rt.flags()["mode"] == "NORMAL"
    fifo = rt.runtime_dir / ".fifo"
    os.mkfifo(fifo)
    os.replace(fifo, flags_path)
    risk = RiskGuard(parse_limits({"max_daily_loss": 100}), rt.runtime_dir)
    latch = threading.Thread(target=risk.record_realized, args=(Decimal(-150),), daemon=True)
    latch.start()
    fd = _open_writer(flags_path, give_up=lambda: not latch.is_alive())
    # The latch is between its read and its write (if it reads the flags at all).
    assert rt.apply(OperatorEnteredFailsafe("exchange trouble", "alice"))
    if fd is not None:
        with contextlib.closing(os.fdopen(fd, "wb")) as fh:
            fh.write(before)
    latch.join(10.0)
    assert not latch.is_alive()
    assert risk.loss_latched
    if fd is None:
        # The latch never opened the flags: take the test's FIFO away (a missing flags
        # file says nothing; the daemon writes its own), else it holds the flags invalid.
        flags_path.unlink()
    for _ in range(3):
        rt.reconcile()
    assert rt.state.failsafe is not None and rt.state.failsafe.set_by == "alice"
    assert rt.state.reduce_only is None
    assert rt.stop_file.exists()
    assert rt.flags()["failsafe_active"] is True
    assert [e for e in rt.events() if e[1] == "flags_cleared"] == []  # by nobody
    assert [e for e in rt.events(kind="notice") if "cleared" in (e[1] or "")] == []
    gate = TradingGate(rt.runtime_dir, rt.stop_file, watch_breaker=False)
    assert gate.allowed("sell", reduces_position=True) == (False, "stop_file_present")


def test_regression_issue18_a1_the_daemons_own_write_never_erases_the_latch(rt: Slice) -> None:
    """The reverse race: the latch lands, then the daemon writes the flags from its state."""
    risk = RiskGuard(parse_limits({"max_daily_loss": 100}), rt.runtime_dir)
    risk.record_realized(Decimal(-150))
    # Before the daemon has read anything, the exchange fails twice: DEGRADED is written.
    for _ in range(POLICY.failures_before_degraded):
        rt.apply(ProbeFailed("exchange", "http", "CONN_TIMEOUT"))
    gate = TradingGate(rt.runtime_dir, rt.stop_file, watch_breaker=False, recheck_interval_s=0)
    assert gate.allowed("buy") == (False, "reduce_only")
    for _ in range(3):
        rt.reconcile()
    assert gate.allowed("buy") == (False, "reduce_only")
    assert gate.allowed("sell", reduces_position=True) == (True, "ok")
    assert rt.state.reduce_only is not None and rt.state.reduce_only.set_by == "risk"
    assert rt.flags()["mode"] == "REDUCE_ONLY"
    # The exchange recovers: DEGRADED ends, the latch's REDUCE_ONLY stays.
    rt.apply(ProbeSucceeded("exchange", "http"))
    rt.reconcile()
    assert gate.allowed("buy") == (False, "reduce_only")
    assert rt.flags()["mode"] == "REDUCE_ONLY"


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


def test_the_latch_is_applied_once_and_cleared_only_with_an_operators_clear(rt: Slice) -> None:
    risk = RiskGuard(parse_limits({"max_daily_loss": 100}), rt.runtime_dir)
    risk.record_realized(Decimal(-150))
    latch = rt.runtime_dir / "risk_latch.json"
    for _ in range(3):
        rt.reconcile()
    assert rt.state.reduce_only is not None and rt.state.reduce_only.set_by == "risk"
    assert rt.events(kind="kill_switch_tightened") == [
        ("kill_switch_tightened", "risk_latch", "risk")
    ]
    # The fleet's HALT and RUN: the latch's REDUCE_ONLY comes back, the fleet never clears it.
    rt.apply(FleetSwitchRead("HALT", 1, "ops", "incident"))
    rt.apply(FleetSwitchRead("RUN", 2, "ops", "over"))
    rt.reconcile()
    assert rt.state.failsafe is None
    assert rt.state.reduce_only is not None and rt.state.reduce_only.set_by == "risk"
    assert latch.exists()
    # An operator's clear lifts it and removes the latch file.
    assert rt.apply(OperatorClearedFailsafe("loss reviewed", "alice"))
    assert not latch.exists()
    rt.reconcile()
    assert rt.state.reduce_only is None and rt.flags()["mode"] == "NORMAL"


# ------------------------------------------------------------------ a hand edit before our write


def test_a_hand_written_halt_not_yet_read_is_never_written_over(rt: Slice) -> None:
    """The daemon writes the flags from its state; an operator's edit that landed since
    its last read (the watch's event still queued) must be read first, not erased."""
    rt.reconcile()
    assert rt.flags()["failsafe_active"] is False
    doc = {"failsafe_active": True, "set_by": "alice", "reason": "holding"}
    (rt.runtime_dir / FLAGS_FILENAME).write_bytes(orjson.dumps(doc))
    # No reconcile: the exchange fails and the core asks for DEGRADED to be written.
    for _ in range(POLICY.failures_before_degraded):
        rt.apply(ProbeFailed("exchange", "http", "CONN_TIMEOUT"))
    assert rt.state.failsafe is not None and rt.state.failsafe.set_by == "alice"
    assert ("operator_kill_switch", "flags_entered", "alice") in rt.events()
    assert rt.flags()["failsafe_active"] is True
    assert rt.stop_file.exists()


def test_a_stop_file_rewritten_by_hand_during_a_fleet_halt_outlives_the_fleets_run(
    rt: Slice,
) -> None:
    rt.apply(FleetSwitchRead("HALT", 1, "ops", "venue incident"))
    rt.reconcile()
    assert rt.stop_file.read_text().startswith(tuple("0123456789"))  # the daemon's own
    rt.stop_file.write_text("alice: holding until the fills are reconciled\n")
    rt.reconcile()
    assert rt.state.failsafe is not None and rt.state.failsafe.set_by == "operator"
    assert ("operator_kill_switch", "stop_file_rewritten", "operator") in rt.events()
    rt.apply(FleetSwitchRead("RUN", 2, "ops", "all clear"))
    rt.reconcile()
    assert rt.stop_file.exists()
    assert rt.state.failsafe is not None
    gate = TradingGate(rt.runtime_dir, rt.stop_file, watch_breaker=False)
    assert gate.allowed("sell", reduces_position=True) == (False, "stop_file_present")

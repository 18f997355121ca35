"""The whole kill switch under Hypothesis: the real core, the real shell, real files.

A daemon-sized slice without processes or an event loop: ``step`` from the core,
``KillSwitch`` and ``Effects`` from the daemon, the store's atomic writers on a real
directory, and a ``TradingGate`` reading whatever is on disk. The file layer injects
faults (ENOSPC, EROFS, ENOTDIR) into the writes of ``STOP.TXT`` and
``global_flags.json`` and the removal of ``risk_latch.json``. Rules: automatic
failures, operator edits (create / remove ``STOP.TXT``, partial flags, REDUCE_ONLY,
garbage, documents signed by the writers that may only tighten), operator commands,
the guard's daily-loss latch (the real ``latch_reduce_only``) and its removal by
hand, the fleet switch (HALT, REDUCE_ONLY, RUN, as the fleet agent feeds its reads),
faults switched on and off, time passing, daemon restarts (state reloaded from
disk), and operator commands through the real durable queue with fresh and reused
keys.

Invariants, checked after every rule:

* the runtime only loosens (halted > REDUCE_ONLY > NORMAL) by an operator's act, or
  by the fleet's RUN lifting what the fleet itself set: never because of the risk
  latch, a document signed ``risk`` or ``fleet``, time, a fault or a restart (issue
  18 A1); an operator's halt, also one written by hand during a fleet halt, outlives
  the fleet's RUN (A5);
* while a failsafe is active, a ``TradingGate`` reading the disk refuses every buy,
  unless every file that carries the halt is failing to be written (and then:);
* while ``risk_latch.json`` exists, the gate refuses every buy;
* every failing write is visible: an alert file, the health document, a notice;
* nothing is started or restarted while a failsafe is active;
* an idempotency key stands for one command: reused for another, nothing runs.

CI runs a fixed, derandomized budget (the ``ci`` Hypothesis profile). A long run::

    AUTOHEAL_KILLSWITCH_EXAMPLES=5000 .venv/bin/python -m pytest \\
        tests/daemon/test_kill_switch_stateful.py -p no:cacheprovider --timeout 3600
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from autoheal.core import switch as core_switch
from autoheal.core.actions import (
    RestartProcess,
    StartProcess,
    StopProcess,
)
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.fleet import FLEET
from autoheal.core.machine import step
from autoheal.core.observations import (
    DeadlineReached,
    FleetSwitchRead,
    Observation,
    ProbeSucceeded,
    ProcessExited,
    SpawnFinished,
    SwitchFilesRead,
)
from autoheal.core.policy import ComponentSpec, HealPolicy, Policy
from autoheal.core.state import RuntimeState, initial_state
from autoheal.core.switch import RISK, SwitchWrite, due_writes
from autoheal.daemon import files as daemon_files
from autoheal.daemon.commands import observation_for
from autoheal.daemon.effects import Effects
from autoheal.daemon.health import kill_switch_doc
from autoheal.daemon.killswitch import FileLayer, KillSwitch
from autoheal.daemon.notify import NotificationLog, Notifier
from autoheal.guard.gate import TradingGate
from autoheal.guard.risk import latch_reduce_only
from autoheal.store import commands as queue
from autoheal.store.alerts import alert_path
from autoheal.store.flags import FLAGS_FILENAME, RISK_LATCH_FILENAME, Flags
from autoheal.store.journal import Journal

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("AUTOHEAL_KILLSWITCH_EXAMPLES", "150"))

HEAL = HealPolicy(
    failures_before_restart=1,
    restart_backoff=(1.0, 2.0),
    verify_window=5.0,
    max_restarts=2,
    stable_reset=60.0,
)
POLICY = Policy(
    components={"feeder": ComponentSpec("feeder", ("process",), (), True, HEAL)},
    dependencies={},
    failures_before_degraded=2,
)
ERRNOS = (errno.ENOSPC, errno.EROFS, errno.ENOTDIR)
OPERATOR_DOCS = (
    {"failsafe_active": False},
    {"failsafe_active": True},
    {"mode": "REDUCE_ONLY"},
    {"mode": "NORMAL"},
    {"mode": "SIGNAL_READ_ONLY"},
    {"failsafe_active": False, "mode": "REDUCE_ONLY"},
    {},
    b"\x00{not json",
    # What the old read-modify-write latch wrote back over a failsafe (A1), and the
    # fleet's documents: signed by writers that may only tighten.
    {"failsafe_active": False, "mode": "REDUCE_ONLY", "set_by": RISK, "reason": "loss"},
    {"failsafe_active": False, "mode": "NORMAL", "set_by": FLEET},
    {"failsafe_active": True, "set_by": "alice", "reason": "holding"},
)
SWITCH_FILES = (core_switch.STOP, core_switch.FLAGS, core_switch.LATCH)


class FaultyFiles(FileLayer):
    """The real files, with a fault switched on per file by the state machine."""

    def __init__(self, runtime_dir: Path, stop_file: Path) -> None:
        super().__init__(runtime_dir, stop_file)
        self.faults: dict[str, int] = {}

    def _check(self, key: str) -> None:
        code = self.faults.get(key)
        if code is not None:
            raise OSError(code, os.strerror(code))

    def write_flags(self, flags: Flags) -> None:
        self._check(core_switch.FLAGS)
        super().write_flags(flags)

    def write_stop(self, reason: str, set_by: str, *, now: float | None = None) -> None:
        self._check(core_switch.STOP)
        super().write_stop(reason, set_by, now=now)

    def remove_stop(self) -> None:
        self._check(core_switch.STOP)
        super().remove_stop()

    def remove_latch(self, version: tuple[int, ...]) -> bool:
        self._check(core_switch.LATCH)
        return super().remove_latch(version)


class Runtime:
    """The daemon's consumer loop, synchronous: step, then carry out the actions."""

    def __init__(self, files: FaultyFiles, clock: list[float], *, resume: bool) -> None:
        self.files = files
        self.clock = clock
        self.started: list[tuple[str, bool]] = []  # (component, failsafe active after)
        self.can_start = True
        restored = (
            daemon_files.load_state(files.runtime_dir, POLICY, to_wall=self.to_wall())
            if resume
            else None
        )
        self.state: RuntimeState = restored or initial_state(POLICY)
        notifier = Notifier(NotificationLog(files.runtime_dir / "notifications.log"))
        self.effects = Effects(files.runtime_dir, wall=self.wall, notifier=notifier)
        self.killswitch = KillSwitch(files, wall=self.wall)
        self.reading = False
        self.reconcile(startup=True)

    def reconcile(self, *, startup: bool = False, read: SwitchFilesRead | None = None) -> None:
        """As the interpreter does: read (the core steps what an operator did), then
        write what is due."""
        reading, self.reading = self.reading, True
        try:
            self.apply(read or self.killswitch.read(startup=startup))
            for action in due_writes(self.state.switch, self.state, self.clock[0]):
                self.write(action)
        finally:
            self.reading = reading

    def write(self, action: SwitchWrite) -> None:
        outcome = self.killswitch.write(action, just_read=self.reading)
        if isinstance(outcome, SwitchFilesRead):
            self.reconcile(read=outcome)
        elif outcome is not None:
            self.apply(outcome)

    def wall(self) -> float:
        return 1_700_000_000.0 + self.clock[0]

    def to_wall(self) -> float:
        return 1_700_000_000.0

    def apply(self, obs: Observation) -> bool:
        try:
            decision = step(self.state, obs, self.clock[0], POLICY)
        except (IllegalCommandError, CommandRefusedError):
            return False
        self.state = decision.state
        daemon_files.save_state(
            self.files.runtime_dir, self.state, to_wall=self.to_wall(), now_wall=self.wall()
        )
        for action in decision.actions:
            if isinstance(action, SwitchWrite):
                self.write(action)
            elif isinstance(action, RestartProcess | StartProcess):
                self.started.append((action.component, self.state.failsafe is not None))
                self.apply(SpawnFinished(action.component, self.can_start))
                if self.can_start:
                    self.apply(ProbeSucceeded(action.component, "process"))
            elif isinstance(action, StopProcess):
                pass
            else:
                self.effects.execute(action)
        return True


class KillSwitchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.tmp = Path(tempfile.mkdtemp(prefix="autoheal-ks-", dir=base))
        runtime_dir = self.tmp / "shared_data"
        runtime_dir.mkdir()
        self.files = FaultyFiles(runtime_dir, self.tmp / "STOP.TXT")
        self.clock = [100.0]
        self.rt = Runtime(self.files, self.clock, resume=False)
        self.rt.apply(SpawnFinished("feeder", True))
        self.rt.apply(ProbeSucceeded("feeder", "process"))
        self.may_loosen = False
        self.fleet_version = 0
        self.journal = Journal.open(runtime_dir)
        self.executed: dict[str, set[str]] = {}

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -------------------------------------------------------------- helpers

    @property
    def active(self) -> bool:
        return self.rt.state.failsafe is not None

    @property
    def severity(self) -> int:
        """2 halted, 1 REDUCE_ONLY (also unwinding a failsafe), 0 NORMAL."""
        state = self.rt.state
        if state.failsafe is not None and state.reduce_only is None:
            return 2
        return 1 if state.failsafe is not None or state.reduce_only is not None else 0

    @property
    def latch(self) -> Path:
        return self.files.runtime_dir / RISK_LATCH_FILENAME

    def heartbeat(self) -> None:
        # Twice: the daemon's own flags write wakes its watch, which reconciles again
        # (a latch the clear of a failsafe left in place asks again then).
        self.rt.reconcile()
        self.rt.reconcile()

    # -------------------------------------------------------------- automatic

    @rule(can_start=st.booleans())
    def feeder_crashes(self, can_start: bool) -> None:
        self.may_loosen = False
        self.rt.can_start = can_start
        self.rt.apply(ProcessExited("feeder"))
        self.heartbeat()

    @rule(dt=st.sampled_from([0.2, 1.0, 2.5, 8.0, 40.0]))
    def time_passes(self, dt: float) -> None:
        self.may_loosen = False
        self.clock[0] += dt
        self.rt.apply(DeadlineReached())
        self.heartbeat()

    @rule(key=st.sampled_from(SWITCH_FILES), code=st.sampled_from(ERRNOS))
    def write_fault_begins(self, key: str, code: int) -> None:
        self.may_loosen = False
        self.files.faults[key] = code

    @rule(key=st.sampled_from(SWITCH_FILES))
    def write_fault_ends(self, key: str) -> None:
        self.may_loosen = False
        self.files.faults.pop(key, None)

    @rule()
    def daemon_restarts(self) -> None:
        self.may_loosen = False
        can_start = self.rt.can_start
        self.rt = Runtime(self.files, self.clock, resume=True)
        self.rt.can_start = can_start

    # -------------------------------------------------------------- operator

    @rule()
    def operator_creates_stop_file(self) -> None:
        self.may_loosen = False
        self.files.stop_file.write_text("halt by hand\n")
        self.heartbeat()

    @precondition(lambda self: self.files.stop_file.exists())
    @rule()
    def operator_removes_stop_file(self) -> None:
        self.may_loosen = True
        self.files.stop_file.unlink()
        self.heartbeat()

    @rule(doc=st.sampled_from(OPERATOR_DOCS))
    def operator_writes_flags(self, doc: dict[str, object] | bytes) -> None:
        raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        self.may_loosen = isinstance(doc, dict) and doc.get("set_by") not in (RISK, FLEET)
        (self.files.runtime_dir / FLAGS_FILENAME).write_bytes(raw)
        self.heartbeat()

    # -------------------------------------------------------------- the other writers

    @rule()
    def risk_latch_written(self) -> None:
        """The guard's daily-loss latch, as ``RiskGuard`` writes it: it may only tighten."""
        self.may_loosen = False
        latch_reduce_only(self.files.runtime_dir, "risk_daily_loss realized_pnl_today=-9")
        self.heartbeat()

    @precondition(lambda self: os.path.lexists(self.latch))
    @rule()
    def operator_removes_risk_latch(self) -> None:
        self.may_loosen = True
        self.latch.unlink()
        self.heartbeat()

    @rule(switch=st.sampled_from(["HALT", "REDUCE_ONLY", "RUN"]))
    def fleet_switch_read(self, switch: str) -> None:
        """A fresh read of the fleet switch: the fleet may lift only what it set."""
        state = self.rt.state
        fleet_held = (state.failsafe is not None and state.failsafe.set_by == FLEET) or (
            state.reduce_only is not None and state.reduce_only.set_by == FLEET
        )
        self.may_loosen = switch != "HALT" and fleet_held
        self.fleet_version += 1
        self.rt.apply(FleetSwitchRead(switch, self.fleet_version, "ops", "drill"))
        self.heartbeat()

    @rule(
        command=st.sampled_from(["failsafe_enter", "failsafe_clear", "failsafe_reduce_only"]),
        key=st.sampled_from([None, "K1", "K2"]),
    )
    def operator_command(self, command: str, key: str | None) -> None:
        """Through the real durable queue: fresh keys, and keys reused for other commands."""
        self.may_loosen = False
        try:
            submitted = queue.submit(
                self.journal, command, "", {"reason": "drill"}, "op", idempotency_key=key
            )
        except queue.KeyConflictError as exc:
            assert exc.earlier.type != command  # refused: nothing ran, nothing reported ok
            return
        if submitted.duplicate:
            assert submitted.command.type == command  # the recorded result, not a new run
            return
        claimed = queue.claim_next(self.journal, "pid:test")
        assert claimed is not None and claimed.id == submitted.command.id
        obs = observation_for(claimed)
        assert obs is not None
        ok = self.rt.apply(obs)
        queue.finish(self.journal, claimed.id, ok, {})
        self.executed.setdefault(key or claimed.id, set()).add(command)
        self.may_loosen = command in ("failsafe_clear", "failsafe_reduce_only") and ok
        self.heartbeat()

    # -------------------------------------------------------------- invariants

    @invariant()
    def only_an_operator_loosens(self) -> None:
        was = getattr(self, "_was_severity", 0)
        if self.severity < was:
            assert self.may_loosen, (
                f"loosened from {was} to {self.severity} without an operator's act "
                f"(or the fleet lifting its own): {self.rt.state.failsafe}, "
                f"{self.rt.state.reduce_only}"
            )
        self._was_severity = self.severity

    @invariant()
    def the_gate_refuses_buys_while_the_risk_latch_stands(self) -> None:
        if not os.path.lexists(self.latch):
            return
        gate = TradingGate(self.files.runtime_dir, self.files.stop_file, watch_breaker=False)
        allowed, reason = gate.allowed("buy", symbol="BTCUSDT")
        assert not allowed, f"a buy passed the gate while the risk latch stood ({reason})"

    @invariant()
    def the_gate_refuses_buys_while_the_failsafe_holds(self) -> None:
        if not self.active:
            return
        failing = self.rt.state.switch.failures
        flags_failing = core_switch.FLAGS in failing
        stop_failing = core_switch.STOP in failing or self.rt.state.reduce_only is not None
        if flags_failing and stop_failing:
            return  # nothing can carry the halt: the next invariant demands it is loud
        gate = TradingGate(self.files.runtime_dir, self.files.stop_file, watch_breaker=False)
        allowed, reason = gate.allowed("buy", symbol="BTCUSDT")
        assert not allowed, f"a buy passed the gate during a failsafe ({reason})"
        sell, _ = gate.allowed("sell", symbol="BTCUSDT", reduces_position=False)
        assert not sell

    @invariant()
    def every_failing_write_is_visible(self) -> None:
        switch = self.rt.state.switch
        health = kill_switch_doc(switch, self.files.stop_file, to_wall=0.0)
        for key, failure in switch.failures.items():
            assert alert_path(self.files.runtime_dir, core_switch.WRITE_FAILED_ALERT[key]).exists()
            assert health["write_failures"][key]["errno"] == failure.errno
        log = self.files.runtime_dir / "notifications.log"
        if switch.failures:
            assert log.exists() and b"could not be" in log.read_bytes()

    @invariant()
    def a_key_stands_for_one_command(self) -> None:
        assert all(len(types) == 1 for types in self.executed.values()), self.executed

    @invariant()
    def nothing_starts_during_a_failsafe(self) -> None:
        assert not any(active for _, active in self.rt.started)

    @invariant()
    def the_state_file_keeps_the_failsafe(self) -> None:
        if self.active:
            doc = orjson.loads((self.files.runtime_dir / "autoheal_state.json").read_bytes())
            assert doc["failsafe"] is not None


KillSwitchMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_kill_switch = KillSwitchMachine.TestCase

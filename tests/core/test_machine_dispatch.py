"""``step`` hands each fact to its rule with what the fact says (``core/machine.py``).

A process's exit reason and a failed spawn's reason reach the restart they cause;
the acts found in the kill-switch files are stepped at the same ``now`` and policy;
every decision, a file read and a write's outcome too, carries the next deadline
(issue 28, docs/mutation.md). Pure: ``step`` with a fake ``now``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoheal.core.actions import (
    LogSwitchEvent,
    LogTransition,
    RaiseAlert,
    RestartProcess,
    SendNotice,
)
from autoheal.core.machine import step
from autoheal.core.observations import (
    ProbeSucceeded,
    ProcessExited,
    SpawnFinished,
    SwitchFilesRead,
    SwitchWriteFailed,
)
from autoheal.core.stages import Stage
from autoheal.core.state import FailsafeState, RuntimeState, initial_state
from autoheal.core.switch import DiskView, FlagsDoc, SwitchState
from tests.core.conftest import make_policy

POLICY = make_policy()
NOW = 100.0


def _healthy() -> RuntimeState:
    state = initial_state(POLICY)
    for obs in (
        ProbeSucceeded("exchange", "http"),
        *(ProbeSucceeded(c, p) for c in ("feeder", "trader") for p in ("process", "heartbeat")),
    ):
        state = step(state, obs, NOW, POLICY).state
    return state


HEALTHY = _healthy()


def _feeder(state: RuntimeState, **fields: object) -> RuntimeState:
    feeder = replace(state.components["feeder"], **fields)
    return replace(state, components={**state.components, "feeder": feeder})


@pytest.mark.parametrize(
    ("reason", "restart_reason"),
    [("process_missing", "process_missing"), ("", "process_exited")],
)
def test_a_process_exit_restarts_for_the_reason_it_gave(reason: str, restart_reason: str) -> None:
    d = step(HEALTHY, ProcessExited("feeder", reason), NOW, POLICY)
    assert RestartProcess("feeder", 1, 3, restart_reason) in d.actions


def test_a_failed_spawn_backs_off_for_the_reason_it_gave() -> None:
    restarting = _feeder(HEALTHY, stage=Stage.RESTART, attempts=1)
    d = step(restarting, SpawnFinished("feeder", False, "ENOENT"), NOW, POLICY)
    assert LogTransition("feeder", Stage.RESTART, Stage.BACKOFF, "ENOENT", 1, 3) in d.actions


OURS_HALTED = FlagsDoc(True, "SIGNAL_READ_ONLY", "feeder: max_restarts_exceeded", "autoheal", 1.0)


def test_a_clear_by_hand_restarts_the_latched_component_at_this_now() -> None:
    latched = replace(
        _feeder(HEALTHY, stage=Stage.FAILSAFE, reason="max_restarts_exceeded", attempts=3),
        failsafe=FailsafeState("feeder: max_restarts_exceeded", "autoheal"),
        switch=SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED),
    )
    d = step(latched, SwitchFilesRead(DiskView(False, OURS_HALTED)), NOW, POLICY)
    assert d.actions[0] == LogSwitchEvent("operator_kill_switch", "stop_file_removed", "operator")
    assert RestartProcess("feeder", 1, 3, "operator") in d.actions
    assert d.state.failsafe is None
    assert d.state.components["feeder"].stage is Stage.RESTART


BACKING_OFF = _feeder(HEALTHY, stage=Stage.BACKOFF, attempts=1, restart_at=NOW + 50.0)


def test_a_file_read_carries_the_next_deadline() -> None:
    state = replace(BACKING_OFF, switch=SwitchState(stop_on_disk=False, flags_on_disk=None))
    d = step(state, SwitchFilesRead(DiskView(False)), NOW, POLICY)
    assert d.wake_at == NOW + 50.0


@pytest.mark.parametrize(("op", "verb"), [("write", "written"), ("remove", "removed")])
def test_a_failed_write_says_what_failed_and_carries_the_next_deadline(op: str, verb: str) -> None:
    d = step(BACKING_OFF, SwitchWriteFailed("stop_file", op, "EROFS", "read-only"), NOW, POLICY)
    message = f"STOP.TXT could not be {verb}: EROFS read-only"
    assert d.actions == (
        RaiseAlert("stop_file_write_failed", "STOP.TXT", message),
        SendNotice("write_failed", "runtime", "stop_file_write_failed", message),
    )
    assert d.state.switch.failures["stop_file"].retry_at == NOW + 1.0
    assert d.wake_at == NOW + 50.0  # the restart's (the shell retries writes on its beat)


def test_an_act_by_hand_is_stepped_at_the_reads_now_with_its_deadlines() -> None:
    """A STOP.TXT created by hand while a restart waits: the act's own step weighs that
    deadline at the read's ``now`` (it is not due), and halts."""
    ours = FlagsDoc(False, "NORMAL", "", "autoheal", 1.0)
    state = replace(BACKING_OFF, switch=SwitchState(stop_on_disk=False, flags_on_disk=ours))
    d = step(state, SwitchFilesRead(DiskView(True, ours)), NOW, POLICY)
    assert d.actions[0] == LogSwitchEvent("operator_kill_switch", "stop_file_created", "operator")
    assert d.state.failsafe == FailsafeState("STOP.TXT present (created by hand)", "operator")
    assert not any(isinstance(a, RestartProcess) for a in d.actions)

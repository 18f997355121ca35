"""The kill switch as facts ``step`` handles: the files read, and how each write went.

What the daemon knows of the files is part of the core's state (``RuntimeState.switch``);
the shell reads the disk and writes it, and says how (``SwitchFilesRead``,
``SwitchWriteLanded``, ``SwitchWriteFailed``). Pure: no files, a fake ``now``.
"""

from __future__ import annotations

from autoheal.core import (
    ConfigReloaded,
    LogTransition,
    OperatorClearedFailsafe,
    RemoveRiskLatch,
    SendNotice,
    WriteFlags,
    initial_state,
    step,
)
from autoheal.core.actions import ClearAlert, LogSwitchEvent, RaiseAlert
from autoheal.core.observations import (
    SwitchFilesRead,
    SwitchWriteFailed,
    SwitchWriteLanded,
)
from autoheal.core.state import state_from_dict, state_to_dict
from autoheal.core.switch import FLAGS, STOP, DiskView, FlagsDoc, LatchView, SwitchState

from .conftest import make_policy

POLICY = make_policy()
OURS = FlagsDoc(False, "NORMAL", "", "autoheal", 1.0)


def test_files_read_at_start_a_stop_file_by_hand_is_an_operators_halt() -> None:
    decision = step(
        initial_state(POLICY), SwitchFilesRead(DiskView(True, OURS), startup=True), 5.0, POLICY
    )
    assert decision.state.failsafe is not None and decision.state.failsafe.set_by == "operator"
    assert decision.state.switch.stop_on_disk is True
    assert decision.actions[0] == LogSwitchEvent(
        "operator_kill_switch", "stop_file_created", "operator"
    )
    assert WriteFlags(True, "SIGNAL_READ_ONLY", decision.state.failsafe.reason, "operator") in (
        decision.actions
    )
    assert decision.reply_after is None


def test_files_read_an_act_that_changes_nothing_is_no_act() -> None:
    halted = step(
        initial_state(POLICY), SwitchFilesRead(DiskView(True, OURS), startup=True), 5.0, POLICY
    ).state
    # The same halt written into the flags by hand: already halted, nothing to enter.
    doc = FlagsDoc(True, None, "holding", "alice")
    decision = step(halted, SwitchFilesRead(DiskView(True, doc)), 6.0, POLICY)
    assert decision.state.failsafe == halted.failsafe
    assert decision.state.switch.flags_on_disk == doc


def test_write_failed_is_known_loud_once_and_retried_landed_ends_it() -> None:
    state = initial_state(POLICY)
    failed = step(state, SwitchWriteFailed(FLAGS, "write", "EROFS", "read-only"), 10.0, POLICY)
    failure = failed.state.switch.failures[FLAGS]
    assert (failure.errno, failure.attempts, failure.retry_at) == ("EROFS", 1, 11.0)
    assert [type(a) for a in failed.actions] == [RaiseAlert, SendNotice]
    again = step(
        failed.state, SwitchWriteFailed(FLAGS, "write", "EROFS", "read-only"), 11.0, POLICY
    )
    assert again.actions == () and again.state.switch.failures[FLAGS].attempts == 2
    landed = step(again.state, SwitchWriteLanded(FLAGS, flags=OURS), 12.0, POLICY)
    assert landed.state.switch.failures == {} and landed.state.switch.flags_on_disk == OURS
    assert [type(a) for a in landed.actions] == [ClearAlert, SendNotice]


def test_write_outcomes_move_nothing_else() -> None:
    # An outcome only updates the knowledge: no deadline is handled, no stage moves.
    state = step(initial_state(POLICY), SwitchWriteLanded(STOP, present=False), 0.0, POLICY).state
    assert state.switch.stop_on_disk is False
    decision = step(state, SwitchWriteLanded(STOP, present=True), 1e9, POLICY)
    assert not any(isinstance(a, LogTransition) for a in decision.actions)
    assert decision.state.components == state.components


def test_clear_of_reduce_only_removes_the_latch_the_core_saw() -> None:
    latch = LatchView("risk_daily_loss", (1, 2, 3))
    read = SwitchFilesRead(DiskView(False, OURS, latch=latch), startup=True)
    state = step(initial_state(POLICY), read, 0.0, POLICY).state
    state = step(state, SwitchFilesRead(DiskView(False, OURS, latch=latch)), 1.0, POLICY).state
    assert state.reduce_only is not None and state.reduce_only.set_by == "risk"
    decision = step(state, OperatorClearedFailsafe("reviewed", "alice"), 2.0, POLICY)
    assert RemoveRiskLatch("reviewed", "alice", (1, 2, 3)) in decision.actions


def test_switch_knowledge_is_not_in_the_state_file_and_survives_a_reload() -> None:
    known = SwitchState(stop_on_disk=False, flags_on_disk=OURS)
    state = step(initial_state(POLICY), SwitchWriteLanded(FLAGS, flags=OURS), 0.0, POLICY).state
    state = step(state, SwitchWriteLanded(STOP, present=False), 0.0, POLICY).state
    assert state.switch == known
    restored = state_from_dict(state_to_dict(state), POLICY)
    assert restored.switch == SwitchState()
    assert restored == state.persisted()
    assert step(state, ConfigReloaded(), 1.0, POLICY).state.switch == known

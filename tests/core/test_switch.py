"""The kill switch's meaning (``core/switch.py``): what files and failed writes say.

Each ``test_regression_*`` reproduces a defect of issue 9 at the level where it is
now decided: a failed ``STOP.TXT`` write read as an operator's removal (defect 1),
a partial flags document read as a clear (defect 4).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.actions import (
    ClearAlert,
    RaiseAlert,
    RemoveStop,
    SendNotice,
    WriteFlags,
    WriteStop,
)
from autoheal.core.observations import (
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorSetReduceOnly,
)
from autoheal.core.state import FailsafeState, ReduceOnlyState, RuntimeState, initial_state
from autoheal.core.switch import (
    FLAGS,
    RETRY_CAP_S,
    STOP,
    DiskView,
    FlagsDoc,
    SwitchState,
    due_writes,
    interpret,
    retry_delay,
    write_failed,
    write_succeeded,
)
from tests.core.conftest import make_policy

POLICY = make_policy()
NORMAL = initial_state(POLICY)
HALTED = replace(NORMAL, failsafe=FailsafeState("feeder: max_restarts_exceeded", "autoheal"))
UNWINDING = replace(HALTED, reduce_only=ReduceOnlyState("unwind", "operator"))
OURS_HALTED = FlagsDoc(True, "SIGNAL_READ_ONLY", "feeder: max_restarts_exceeded", "autoheal", 1.0)
OURS_NORMAL = FlagsDoc(False, "NORMAL", "", "", 1.0)


def observations(result) -> list[object]:
    return [e.observation for e in result.events]


# ------------------------------------------------------------------ defect 1: STOP.TXT


def test_regression_a_stop_file_we_failed_to_write_is_not_an_operator_removal() -> None:
    sw = SwitchState(stop_on_disk=False, flags_on_disk=OURS_HALTED)
    sw, _ = write_failed(sw, STOP, op="write", errno="EROFS", detail="read-only", now=10.0)
    result = interpret(sw, HALTED, DiskView(stop_present=False, flags=OURS_HALTED))
    assert result.events == ()
    assert STOP in result.switch.failures  # still failing, still to retry


def test_a_stop_file_we_saw_and_that_disappears_is_an_operator_removal() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    result = interpret(sw, HALTED, DiskView(stop_present=False, flags=OURS_HALTED))
    assert [e.token for e in result.events] == ["stop_file_removed"]
    assert isinstance(result.events[0].observation, OperatorClearedFailsafe)


def test_at_start_a_missing_stop_file_never_clears() -> None:
    result = interpret(SwitchState(), HALTED, DiskView(False, OURS_HALTED), startup=True)
    assert result.events == ()
    assert due_writes(result.switch, HALTED, now=0.0) == (
        WriteStop(HALTED.failsafe.reason, HALTED.failsafe.set_by),
    )


def test_a_stop_file_created_by_hand_enters_the_failsafe() -> None:
    sw = SwitchState(stop_on_disk=False, flags_on_disk=OURS_NORMAL)
    result = interpret(sw, NORMAL, DiskView(True, OURS_NORMAL))
    assert [type(o) for o in observations(result)] == [OperatorEnteredFailsafe]


def test_a_stop_file_created_while_unwinding_halts_everything_again() -> None:
    sw = SwitchState(stop_on_disk=False, flags_on_disk=OURS_HALTED)
    result = interpret(sw, UNWINDING, DiskView(True, OURS_HALTED))
    assert [e.token for e in result.events] == ["stop_file_created"]


def test_write_failure_is_loud_once_and_retried_with_a_capped_backoff() -> None:
    sw = SwitchState(stop_on_disk=False, flags_on_disk=OURS_HALTED)
    sw, follow = write_failed(sw, STOP, op="write", errno="ENOTDIR", detail="x", now=0.0)
    assert [type(a) for a in follow] == [RaiseAlert, SendNotice]
    assert "STOP.TXT could not be written: ENOTDIR" in follow[0].detail
    assert due_writes(sw, HALTED, now=0.5) == ()  # backing off
    assert len(due_writes(sw, HALTED, now=1.0)) == 1
    for attempt in range(2, 12):
        sw, follow = write_failed(sw, STOP, op="write", errno="ENOTDIR", detail="x", now=0.0)
        assert follow == ()  # the same failure again: no second alert
        assert sw.failures[STOP].attempts == attempt
    assert sw.failures[STOP].retry_at == RETRY_CAP_S
    sw, follow = write_succeeded(sw, STOP, present=True)
    assert [type(a) for a in follow] == [ClearAlert, SendNotice]
    assert sw.failures == {} and sw.stop_on_disk is True


@given(st.integers(min_value=-5, max_value=10_000))
def test_retry_delay_is_positive_and_capped(attempts: int) -> None:
    assert 1.0 <= retry_delay(attempts) <= RETRY_CAP_S


def test_a_failed_removal_leaves_the_stop_file_known_and_is_retried() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_NORMAL)
    sw, _ = write_failed(sw, STOP, op="remove", errno="EROFS", detail="x", now=0.0)
    result = interpret(sw, NORMAL, DiskView(True, OURS_NORMAL))
    assert result.events == ()  # our own leftover, not an operator's new halt
    assert due_writes(result.switch, NORMAL, now=5.0) == (
        RemoveStop("retrying the removal of STOP.TXT", "autoheal"),
    )


# ------------------------------------------------------------------ defect 4: partial flags


def test_regression_reduce_only_written_by_hand_keeps_the_failsafe() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    result = interpret(sw, HALTED, DiskView(True, FlagsDoc(mode="REDUCE_ONLY")))
    assert [type(o) for o in observations(result)] == [OperatorSetReduceOnly]


def test_explicit_failsafe_active_false_clears() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    result = interpret(sw, HALTED, DiskView(True, FlagsDoc(failsafe_active=False)))
    assert [type(o) for o in observations(result)] == [OperatorClearedFailsafe]


def test_mode_normal_written_while_unwinding_in_a_failsafe_halts_not_clears() -> None:
    sw = SwitchState(stop_on_disk=False, flags_on_disk=OURS_HALTED)
    result = interpret(sw, UNWINDING, DiskView(False, FlagsDoc(mode="NORMAL")))
    assert [type(o) for o in observations(result)] == [OperatorEnteredFailsafe]


def test_a_document_seen_once_is_not_read_again() -> None:
    """An operator's old edit left on disk must not act again on a later failsafe."""
    doc = FlagsDoc(failsafe_active=False)
    sw = SwitchState(stop_on_disk=False, flags_on_disk=doc)
    result = interpret(sw, HALTED, DiskView(False, doc))
    assert result.events == ()


def test_an_invalid_flags_file_alerts_once_and_changes_nothing() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    first = interpret(sw, HALTED, DiskView(True, FlagsDoc(), "invalid: not JSON"))
    assert first.events == () and [type(a) for a in first.actions] == [RaiseAlert]
    again = interpret(first.switch, HALTED, DiskView(True, FlagsDoc(), "invalid: not JSON"))
    assert again.actions == ()
    assert due_writes(again.switch, HALTED, now=0.0) == ()  # the operator's file is kept
    fixed = interpret(again.switch, HALTED, DiskView(True, OURS_HALTED))
    assert [type(a) for a in fixed.actions] == [ClearAlert]


DOCS = st.builds(
    FlagsDoc,
    failsafe_active=st.none() | st.booleans(),
    mode=st.none() | st.sampled_from(["NORMAL", "DEGRADED", "REDUCE_ONLY", "SIGNAL_READ_ONLY"]),
    reason=st.none() | st.just("r"),
    set_by=st.none() | st.just("someone"),
)
STATES = st.sampled_from([NORMAL, HALTED, UNWINDING])
KNOWN = st.builds(
    SwitchState,
    stop_on_disk=st.none() | st.booleans(),
    flags_on_disk=st.none() | DOCS,
)


@given(KNOWN, STATES, st.booleans(), DOCS, st.booleans())
def test_only_explicit_acts_clear(
    sw: SwitchState, state: RuntimeState, stop: bool, doc: FlagsDoc, startup: bool
) -> None:
    """A clear comes only from failsafe_active=false, a seen STOP.TXT removed, or a mode
    written to leave an operator's REDUCE_ONLY outside a failsafe; never at start."""
    result = interpret(sw, state, DiskView(stop, doc), startup=startup)
    for event in result.events:
        if not isinstance(event.observation, OperatorClearedFailsafe):
            continue
        assert not startup
        if event.token == "stop_file_removed":
            assert sw.stop_on_disk is True and not stop
        elif event.token == "flags_cleared":
            assert doc.failsafe_active is False and doc != sw.flags_on_disk
        else:
            assert event.token == "flags_left_reduce_only"
            assert state.failsafe is None and state.reduce_only is not None


@given(KNOWN, STATES, st.booleans(), DOCS)
def test_due_writes_make_the_files_say_what_the_state_says(
    sw: SwitchState, state: RuntimeState, stop: bool, doc: FlagsDoc
) -> None:
    result = interpret(sw, state, DiskView(stop, doc))
    writes = due_writes(result.switch, state, now=0.0)
    halted = state.failsafe is not None and state.reduce_only is None
    stop_writes = [w for w in writes if isinstance(w, WriteStop | RemoveStop)]
    if halted and not stop:
        assert stop_writes and isinstance(stop_writes[0], WriteStop)
    if halted and stop:
        assert stop_writes == []
    flag_writes = [w for w in writes if isinstance(w, WriteFlags)]
    if flag_writes:
        assert flag_writes[0].failsafe_active == (state.failsafe is not None)


@given(KNOWN, STATES, st.booleans(), DOCS)
def test_interpretation_is_idempotent(
    sw: SwitchState, state: RuntimeState, stop: bool, doc: FlagsDoc
) -> None:
    """Reading the same disk twice acts once: the heartbeat may reconcile at any time."""
    first = interpret(sw, state, DiskView(stop, doc))
    second = interpret(first.switch, state, DiskView(stop, doc))
    assert second.events == ()


def test_flags_failure_is_retried_until_a_write_lands() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    sw, _ = write_failed(sw, FLAGS, op="write", errno="ENOSPC", detail="full", now=0.0)
    (write,) = [w for w in due_writes(sw, HALTED, now=1.0) if isinstance(w, WriteFlags)]
    assert write.failsafe_active is True

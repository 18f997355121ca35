"""Two misreadings of the kill-switch files the simulated disk found (issue 20, seeds
95 and 67 at 20 virtual minutes), each of which cleared a failsafe nobody cleared.

* Our own flags write that failed *after* its rename (EIO at the folder's fsync)
  left our document on disk; read back, it looked like an operator's edit, and the
  clear it carried (signed by the operator who had cleared earlier) ended a newer
  failsafe.
* One read saw ``STOP.TXT`` created and an older flags document with
  ``failsafe_active: false``: the halt, then the "clear". Which came first is not
  known from one read; the flags may not loosen a halt made in the same read (as at
  start).
"""

from __future__ import annotations

from autoheal.core import OperatorEnteredFailsafe, initial_state, step
from autoheal.core.observations import SwitchFilesRead, SwitchWriteFailed
from autoheal.core.state import RuntimeState
from autoheal.core.switch import FLAGS, DiskView, FlagsDoc

from .conftest import make_policy

POLICY = make_policy()
OURS = FlagsDoc(False, "NORMAL", "", "autoheal", 1.0)
#: What the daemon wrote for an operator's clear: signed by the operator.
CLEARED = FlagsDoc(False, "NORMAL", "failsafe cleared", "alice", 7.0)


def halted() -> RuntimeState:
    start = step(
        initial_state(POLICY), SwitchFilesRead(DiskView(False, OURS), startup=True), 0.0, POLICY
    )
    return step(start.state, OperatorEnteredFailsafe("hold", "bob"), 1.0, POLICY).state


def test_our_failed_write_found_on_disk_is_ours_not_an_operators_clear() -> None:
    state = halted()
    failed = step(
        state, SwitchWriteFailed(FLAGS, "write", "EIO", "I/O error", CLEARED), 8.0, POLICY
    )
    assert failed.state.switch.failures[FLAGS].attempted == (CLEARED,)
    read = step(failed.state, SwitchFilesRead(DiskView(True, CLEARED)), 9.0, POLICY)
    assert read.state.failsafe is not None and read.state.failsafe.set_by == "bob"
    assert not [a for a in read.actions if getattr(a, "token", "") == "flags_cleared"]
    assert read.state.switch.flags_on_disk == CLEARED  # known, and rewritten (retry)


def test_the_same_document_an_operator_wrote_still_clears() -> None:
    # The distinction is the failed write: with none, that document is an operator's.
    state = halted()
    read = step(state, SwitchFilesRead(DiskView(True, CLEARED)), 9.0, POLICY)
    assert read.state.failsafe is None


def test_a_halt_and_a_clear_of_the_flags_in_one_read_stay_halted() -> None:
    start = step(
        initial_state(POLICY), SwitchFilesRead(DiskView(False, OURS), startup=True), 0.0, POLICY
    ).state
    clear_by_hand = FlagsDoc(False, "NORMAL", "all clear", "alice")
    read = step(start, SwitchFilesRead(DiskView(True, clear_by_hand)), 5.0, POLICY)
    assert read.state.failsafe is not None
    assert [getattr(a, "token", "") for a in read.actions if hasattr(a, "token")] == [
        "stop_file_created"
    ]
    # Read alone, the same document clears a halt the daemon already knew.
    again = step(read.state, SwitchFilesRead(DiskView(True, clear_by_hand)), 6.0, POLICY)
    assert again.state.failsafe is not None  # known now: no change, no act
    later = FlagsDoc(False, "NORMAL", "all clear, really", "alice")
    assert (
        step(read.state, SwitchFilesRead(DiskView(True, later)), 7.0, POLICY).state.failsafe is None
    )


def test_the_documents_tried_are_kept_while_the_write_fails_and_bounded() -> None:
    from autoheal.core.switch import ATTEMPTED_MAX, STOP

    state = halted()
    docs = [FlagsDoc(True, "SIGNAL_READ_ONLY", "hold", "bob", float(t)) for t in range(10)]
    for t, doc in enumerate(docs):
        state = step(
            state, SwitchWriteFailed(FLAGS, "write", "EIO", "", doc), 10.0 + t, POLICY
        ).state
    assert state.switch.failures[FLAGS].attempted == tuple(docs[-ATTEMPTED_MAX:])
    assert ATTEMPTED_MAX == 8
    # STOP.TXT's failures name no document; another op starts the list again.
    state = step(state, SwitchWriteFailed(STOP, "write", "EIO", ""), 30.0, POLICY).state
    assert state.switch.failures[STOP].attempted == ()
    state = step(state, SwitchWriteFailed(FLAGS, "remove", "EIO", ""), 31.0, POLICY).state
    assert state.switch.failures[FLAGS].attempted == ()
    assert state.switch.failures[FLAGS].attempts == 1  # another failure: counted anew


def test_an_edit_found_late_by_our_own_write_tightens_never_loosens() -> None:
    """Seed 43 (20 virtual minutes): the operator wrote ``failsafe_active: false`` while
    no failsafe held (its change event lost); a failsafe was entered, and writing its
    flags found the edit (``flags_changed_before_write``). Read then, the older edit
    cleared the newer failsafe. A late read may tighten, never loosen."""
    state = halted()
    clear = FlagsDoc(False, "NORMAL", "all clear", "alice")
    late = step(state, SwitchFilesRead(DiskView(True, clear), late=True), 9.0, POLICY)
    assert late.state.failsafe is not None
    assert late.state.switch.flags_on_disk == clear  # known; the sync rewrites the flags
    halt = FlagsDoc(True, "SIGNAL_READ_ONLY", "hold", "carol")
    start = step(
        initial_state(POLICY), SwitchFilesRead(DiskView(False, OURS), startup=True), 0.0, POLICY
    ).state
    tightened = step(start, SwitchFilesRead(DiskView(False, halt), late=True), 1.0, POLICY)
    assert tightened.state.failsafe is not None and tightened.state.failsafe.set_by == "carol"
    # Read in time (not late), the same clear clears.
    assert step(state, SwitchFilesRead(DiskView(True, clear)), 9.0, POLICY).state.failsafe is None

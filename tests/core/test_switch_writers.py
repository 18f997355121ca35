"""Who may loosen the kill switch (``core/switch.py``): the daemon and an operator only.

Issue 18 A1: a flags document written by a writer that may only tighten (the
guard's risk latch, ``set_by = "risk"``; the fleet, ``set_by = "fleet"``) was read
as an operator's clear. Issue 18 A5: an operator's hand-written halt during a
fleet HALT was ignored, so the fleet's RUN lifted it.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.fleet import FLEET
from autoheal.core.machine import step
from autoheal.core.observations import (
    FleetSwitchRead,
    Observation,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
)
from autoheal.core.state import FailsafeState, ReduceOnlyState, RuntimeState, initial_state
from autoheal.core.switch import DiskView, FlagsDoc, SwitchState, interpret, stop_set_by
from tests.core.conftest import make_policy

POLICY = make_policy()
NORMAL = initial_state(POLICY)
HALTED = replace(NORMAL, failsafe=FailsafeState("feeder: max_restarts_exceeded", "autoheal"))
OURS_HALTED = FlagsDoc(True, "SIGNAL_READ_ONLY", "feeder: max_restarts_exceeded", "autoheal", 1.0)
FLEET_WHAT = "fleet HALT v1 by ops: incident"
FLEET_HALTED = replace(NORMAL, failsafe=FailsafeState(FLEET_WHAT, FLEET))
OURS_FLEET = FlagsDoc(True, "SIGNAL_READ_ONLY", FLEET_WHAT, FLEET, 1.0)


def _apply(state: RuntimeState, observations: list[Observation], now: float = 5.0) -> RuntimeState:
    for obs in observations:
        state = step(state, obs, now, POLICY).state
    return state


def _severity(state: RuntimeState) -> int:
    """0 NORMAL, 1 REDUCE_ONLY, 2 halted: what the gate would make of the state."""
    if state.failsafe is not None and state.reduce_only is None:
        return 2
    return 1 if state.reduce_only is not None or state.failsafe is not None else 0


# ------------------------------------------------------------------ A1: tighten-only writers


def test_regression_issue18_a1_a_risk_document_over_a_failsafe_is_not_a_clear() -> None:
    # What the latch wrote back after reading the flags just before the failsafe began.
    latch_doc = FlagsDoc(False, "REDUCE_ONLY", "risk_daily_loss realized_pnl_today=-150", "risk")
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    result = interpret(sw, HALTED, DiskView(stop_present=True, flags=latch_doc))
    cleared = [e for e in result.events if isinstance(e.observation, OperatorClearedFailsafe)]
    assert cleared == []
    after = _apply(HALTED, [e.observation for e in result.events])
    assert after.failsafe == HALTED.failsafe and after.reduce_only is None


def test_regression_issue18_a1_a_fleet_document_never_clears() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    doc = FlagsDoc(False, "NORMAL", "fleet RUN v2", FLEET)
    result = interpret(sw, HALTED, DiskView(stop_present=True, flags=doc))
    assert [e for e in result.events if isinstance(e.observation, OperatorClearedFailsafe)] == []
    # Nor does leaving REDUCE_ONLY in a document the fleet signed.
    ro = replace(NORMAL, reduce_only=ReduceOnlyState("unwind", "alice"))
    ours = FlagsDoc(False, "REDUCE_ONLY", "unwind", "alice", 1.0)
    result = interpret(
        SwitchState(stop_on_disk=False, flags_on_disk=ours), ro, DiskView(False, doc)
    )
    assert [e for e in result.events if isinstance(e.observation, OperatorClearedFailsafe)] == []


def test_an_operators_clear_is_still_a_clear() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    for set_by in (None, "alice", "operator"):
        doc = FlagsDoc(False, None, None, set_by)
        result = interpret(sw, HALTED, DiskView(stop_present=True, flags=doc))
        assert [e.token for e in result.events] == ["flags_cleared"]


_MODES = st.sampled_from([None, "NORMAL", "DEGRADED", "REDUCE_ONLY", "SIGNAL_READ_ONLY"])
_STATES = st.sampled_from(
    [
        NORMAL,
        HALTED,
        FLEET_HALTED,
        replace(NORMAL, reduce_only=ReduceOnlyState("unwind", "alice")),
        replace(HALTED, reduce_only=ReduceOnlyState("unwind", "alice")),
        replace(NORMAL, reduce_only=ReduceOnlyState("fleet REDUCE_ONLY v1", FLEET)),
        replace(NORMAL, reduce_only=ReduceOnlyState("risk_daily_loss", "risk")),
    ]
)


@given(
    state=_STATES,
    failsafe=st.sampled_from([None, True, False]),
    mode=_MODES,
    set_by=st.sampled_from(["risk", FLEET]),
    startup=st.booleans(),
)
def test_a_tighten_only_writers_document_never_loosens(
    state: RuntimeState, failsafe: bool | None, mode: str | None, set_by: str, startup: bool
) -> None:
    doc = FlagsDoc(failsafe, mode, "written by a machine", set_by)
    sw = SwitchState(stop_on_disk=_severity(state) == 2, flags_on_disk=_ours_for(state))
    result = interpret(sw, state, DiskView(_severity(state) == 2, doc), startup=startup)
    assert not any(isinstance(e.observation, OperatorClearedFailsafe) for e in result.events)
    after = _apply(state, [e.observation for e in result.events])
    assert _severity(after) >= _severity(state)
    if state.failsafe is not None:
        assert after.failsafe is not None


def _ours_for(state: RuntimeState) -> FlagsDoc:
    """What the daemon would have written for ``state`` (so the test doc is a change)."""
    if state.reduce_only is not None:
        return FlagsDoc(state.failsafe is not None, "REDUCE_ONLY", "x", "y", 1.0)
    if state.failsafe is not None:
        return FlagsDoc(True, "SIGNAL_READ_ONLY", "x", "y", 1.0)
    return FlagsDoc(False, "NORMAL", "", "autoheal", 1.0)


# ------------------------------------------------------------------ A5: a hand-written halt


def test_regression_issue18_a5_a_hand_written_halt_takes_over_a_fleet_halt() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_FLEET)
    doc = FlagsDoc(True, None, "alice: bad fills, holding", "alice")
    result = interpret(sw, FLEET_HALTED, DiskView(stop_present=True, flags=doc, stop_set_by=FLEET))
    entered = [e for e in result.events if isinstance(e.observation, OperatorEnteredFailsafe)]
    assert [e.token for e in entered] == ["flags_entered"]
    assert entered[0].observation.actor == "alice"
    state = _apply(FLEET_HALTED, [e.observation for e in result.events])
    assert state.failsafe is not None and state.failsafe.set_by == "alice"
    # The fleet's RUN clears only what the fleet set: the operator's halt holds.
    state = _apply(state, [FleetSwitchRead("RUN", 2, "ops", "all clear")])
    assert state.failsafe is not None and state.failsafe.set_by == "alice"


def test_a_hand_written_signal_read_only_takes_over_a_fleet_halt() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_FLEET)
    doc = FlagsDoc(None, "SIGNAL_READ_ONLY", None, None)
    result = interpret(sw, FLEET_HALTED, DiskView(stop_present=True, flags=doc, stop_set_by=FLEET))
    state = _apply(FLEET_HALTED, [e.observation for e in result.events])
    assert state.failsafe is not None and state.failsafe.set_by == "operator"
    state = _apply(state, [FleetSwitchRead("RUN", 2, "ops", "all clear")])
    assert state.failsafe is not None


def test_the_fleets_own_document_does_not_take_over_its_halt() -> None:
    # E.g. a daemon that restarts during a fleet halt reads the fleet's document back.
    doc = replace(OURS_FLEET, since=2.0)
    for startup in (False, True):
        result = interpret(
            SwitchState(stop_on_disk=True, flags_on_disk=OURS_FLEET),
            FLEET_HALTED,
            DiskView(stop_present=True, flags=doc, stop_set_by=FLEET),
            startup=startup,
        )
        assert result.events == ()


# ------------------------------------------------------------------ found by the stateful test


def test_regression_at_start_an_old_reduce_only_document_never_unwinds_a_failsafe() -> None:
    """The flags writes failed (ENOSPC) after an operator wrote ``{"mode": "REDUCE_ONLY"}``;
    then a failsafe began and the daemon restarted. The document on disk is older than
    the failsafe: read at start, it must not unwind the halt (STOP.TXT removed)."""
    doc = FlagsDoc(None, "REDUCE_ONLY", None, None)
    result = interpret(SwitchState(), HALTED, DiskView(stop_present=True, flags=doc), startup=True)
    assert result.events == ()
    state = _apply(HALTED, [e.observation for e in result.events])
    assert _severity(state) == 2
    # While running, the operator's same document is an act: it unwinds.
    ours = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    result = interpret(ours, HALTED, DiskView(stop_present=True, flags=doc))
    assert [e.token for e in result.events] == ["flags_reduce_only"]


# ------------------------------------------------------------------ STOP.TXT rewritten by hand


@given(st.sampled_from([None, "alice", "operator", "risk", "autoheal"]), st.booleans())
def test_a_stop_file_rewritten_during_a_fleet_halt_takes_it_over(
    set_by: str | None, startup: bool
) -> None:
    """The fleet's STOP.TXT overwritten (or one left while the daemon was down) by anyone
    but the fleet is an operator's halt: the fleet's RUN must not lift it."""
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_FLEET)
    disk = DiskView(stop_present=True, flags=OURS_FLEET, stop_set_by=set_by)
    result = interpret(sw, FLEET_HALTED, disk, startup=startup)
    (event,) = result.events
    assert event.token == "stop_file_rewritten"
    assert isinstance(event.observation, OperatorEnteredFailsafe)
    assert event.actor == (set_by if set_by in ("alice", "operator", "autoheal") else "operator")
    after = _apply(FLEET_HALTED, [event.observation])
    assert after.failsafe is not None and after.failsafe.set_by != FLEET
    after_run = _apply(after, [FleetSwitchRead("RUN", 2, "ops", "all clear")])
    assert after_run.failsafe is not None  # the fleet lifts only its own halt


def test_the_fleets_own_stop_file_is_not_a_takeover() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_FLEET)
    disk = DiskView(stop_present=True, flags=OURS_FLEET, stop_set_by=FLEET)
    assert interpret(sw, FLEET_HALTED, disk).events == ()


@given(st.from_regex(r"[A-Za-z0-9_.:@-]{1,20}", fullmatch=True), st.text(max_size=40))
def test_stop_set_by_reads_the_daemons_own_first_line(name: str, reason: str) -> None:
    line = f"2026-12-07T08:00:00Z STOP set_by={name} reason={reason}"
    assert stop_set_by(line) == name


@given(st.text(max_size=80).filter(lambda t: " STOP set_by=" not in f" {t}"))
def test_stop_set_by_of_a_line_written_by_hand_is_unknown(line: str) -> None:
    assert stop_set_by(line) is None

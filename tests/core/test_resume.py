"""A failsafe the saved state lost is resumed from the journal's last word on it."""

from __future__ import annotations

from dataclasses import replace

from autoheal.core import OperatorEnteredFailsafe, RemoveStop, WriteStop, initial_state, step
from autoheal.core.observations import FleetSwitchRead
from autoheal.core.resume import CLEARED, ENTERED, JournaledNotice, failsafe_to_resume
from autoheal.core.state import FailsafeState, RuntimeState

from .conftest import make_policy

POLICY = make_policy()


def test_the_journals_last_entered_failsafe_is_resumed_loudly() -> None:
    state = initial_state(POLICY)
    last = JournaledNotice(ENTERED, "runtime", "failsafe entered by alice: hold")
    obs = failsafe_to_resume(state, last)
    assert obs == OperatorEnteredFailsafe(
        "resumed from the journal: failsafe entered by alice: hold", "autoheal"
    )
    decision = step(state, obs, 0.0, POLICY)
    assert decision.state.failsafe is not None
    assert any(isinstance(a, WriteStop) for a in decision.actions)


def test_even_the_fleets_halt_is_resumed_as_the_daemons() -> None:
    # The simulator's seed 72: an operator's failsafe (its save refused), then the
    # fleet's lost-link halt; resumed as the fleet's, the fleet's RUN lifted both.
    last = JournaledNotice(ENTERED, "fleet", "fleet switch unreadable; runtime HALTED")
    obs = failsafe_to_resume(initial_state(POLICY), last)
    assert obs is not None and obs.actor == "autoheal"


def test_nothing_to_resume_when_cleared_unknown_or_already_held() -> None:
    state = initial_state(POLICY)
    assert failsafe_to_resume(state, None) is None
    assert failsafe_to_resume(state, JournaledNotice(CLEARED, "runtime", "by bob")) is None
    assert failsafe_to_resume(state, JournaledNotice("degraded", "fleet", "lost")) is None
    held = replace(state, failsafe=FailsafeState("budget", "autoheal", "feeder"))
    last = JournaledNotice(ENTERED, "runtime", "failsafe entered by alice: hold")
    assert failsafe_to_resume(held, last) is None  # the state's own failsafe stands


def _fleet_halted(version: int = 7) -> RuntimeState:
    state = initial_state(POLICY)
    return replace(
        state,
        failsafe=FailsafeState(f"fleet HALT v{version} by alice: halt", "fleet"),
        fleet=replace(state.fleet, version=version),
    )


def test_a_stale_fleet_failsafe_under_a_later_entry_is_taken_over() -> None:
    # The simulator's seed 4353: the saved state still held the fleet's HALT v7 (the
    # RUN v8 that ended it and the operator's STOP.TXT after it were never saved:
    # ENOSPC); the journal's last word was the operator's entry. Resumed as the fleet's,
    # the next daemon's first read of RUN v8 removed the operator's STOP.TXT.
    state = _fleet_halted()
    last = JournaledNotice(ENTERED, "runtime", "failsafe entered by operator: STOP.TXT")
    obs = failsafe_to_resume(state, last)
    assert obs is not None and obs.actor == "autoheal"
    taken = step(state, obs, 0.0, POLICY).state
    assert taken.failsafe is not None and taken.failsafe.set_by == "autoheal"
    run = step(taken, FleetSwitchRead("RUN", 8, "alice", "run"), 1.0, POLICY)
    assert run.state.failsafe is not None and run.state.failsafe.set_by == "autoheal"
    assert not any(isinstance(a, RemoveStop) for a in run.actions)


def test_the_fleets_own_last_word_leaves_its_halt_to_its_run() -> None:
    state = _fleet_halted()
    last = JournaledNotice(ENTERED, "fleet", "fleet HALT v7 by alice: halt")
    assert failsafe_to_resume(state, last) is None
    run = step(state, FleetSwitchRead("RUN", 8, "alice", "run"), 1.0, POLICY)
    assert run.state.failsafe is None  # the fleet lifts what the fleet set

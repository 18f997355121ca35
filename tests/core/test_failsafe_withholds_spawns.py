"""Nothing is spawned in the step that enters a failsafe (bugs the simulator found, issue 20).

* Seed 19: a daemon that was down while its feeder's backoff ran out and the operator
  wrote ``failsafe_active: true`` read both at once; ``step`` handled the overdue
  restart before the halt and sent ``RestartProcess`` out with it.
* Two deadlines due in one step: one component's restart and another's last failed
  verification (its budget gone, so a failsafe). Whether the restart went out
  depended on the order of the components in the config.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoheal.core import (
    CommandRefusedError,
    DeadlineReached,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    ProcessExited,
    RestartProcess,
    Stage,
    StartProcess,
    initial_state,
    step,
)
from autoheal.core.observations import SwitchFilesRead
from autoheal.core.policy import Policy
from autoheal.core.state import ComponentState, ProbeState, RuntimeState
from autoheal.core.switch import DiskView, FlagsDoc

from .conftest import make_policy

FAILING = {
    "process": ProbeState(False, "process_exited", 1),
    "heartbeat": ProbeState(False, "heartbeat_stale", 1),
}


def spawns(actions: tuple[object, ...]) -> list[object]:
    return [a for a in actions if isinstance(a, RestartProcess | StartProcess)]


def with_components(policy: Policy, **given: ComponentState) -> RuntimeState:
    state = initial_state(policy)
    comps = {n: given.get(n, cs) for n, cs in state.components.items()}
    return replace(state, components={n: comps[n] for n in given} | comps)


def backoff_due(at: float) -> ComponentState:
    """Second attempt of an episode, due at ``at``."""
    return ComponentState(
        stage=Stage.BACKOFF, reason="process_exited", probes=FAILING, attempts=1, restart_at=at
    )


def last_verification(until: float) -> ComponentState:
    """Its third restart, unverified, its window ending at ``until``: the budget's end."""
    return ComponentState(
        stage=Stage.BACKOFF,
        reason="verifying",
        probes=FAILING,
        attempts=3,
        verify_until=until,
        started_at=0.0,
    )


def test_a_halt_read_after_a_backoff_ran_out_parks_the_restart() -> None:
    policy = make_policy()
    state = with_components(policy, feeder=backoff_due(15.0))
    decision = step(state, OperatorEnteredFailsafe("flags", "alice"), 577.0, policy)
    assert decision.state.failsafe is not None
    assert spawns(decision.actions) == []
    feeder = decision.state.components["feeder"]
    assert (feeder.stage, feeder.reason, feeder.restart_at) == (
        Stage.BACKOFF,
        "failsafe_active",
        None,
    )
    # Parked, not lost: the operator's clear restarts it.
    cleared = step(decision.state, OperatorClearedFailsafe("done", "alice"), 600.0, policy)
    assert [a.component for a in spawns(cleared.actions)] == ["feeder"]


def test_without_a_halt_the_overdue_restart_still_runs() -> None:
    policy = make_policy()
    state = with_components(policy, feeder=backoff_due(15.0))
    decision = step(state, DeadlineReached(), 577.0, policy)
    assert [(a.component, a.attempt) for a in spawns(decision.actions)] == [("feeder", 2)]


@pytest.mark.parametrize("first", ["trader", "feeder"])
def test_a_restart_due_with_another_components_failsafe_is_parked(first: str) -> None:
    policy = make_policy()
    given = {"trader": backoff_due(10.0), "feeder": last_verification(10.0)}
    state = with_components(policy, **{n: given[n] for n in (first, *given.keys() - {first})})
    decision = step(state, DeadlineReached(), 20.0, policy)
    assert decision.state.failsafe is not None
    assert decision.state.failsafe.component == "feeder"
    assert spawns(decision.actions) == []
    trader = decision.state.components["trader"]
    assert (trader.stage, trader.reason) == (Stage.BACKOFF, "failsafe_active")


def test_a_restart_command_at_the_instant_a_budget_runs_out_is_refused() -> None:
    # The deadline is handled before the command, so the failsafe is in force when the
    # command is judged: no spawn of a command is ever taken back.
    policy = make_policy()
    state = with_components(policy, feeder=last_verification(10.0))
    with pytest.raises(CommandRefusedError) as refused:
        step(state, OperatorRestarted("trader", "look", "alice"), 20.0, policy)
    assert refused.value.reason == "failsafe_active"
    # The deadline is still due: the next step enters the failsafe, and the trader,
    # which nothing restarted, is left as it was.
    decision = step(state, DeadlineReached(), 20.0, policy)
    assert decision.state.failsafe is not None
    assert decision.state.components["trader"].stage is Stage.OBSERVE
    assert spawns(decision.actions) == []


def test_a_clear_and_a_new_halt_in_one_read_restart_nothing() -> None:
    """The simulated disk's seed 8: ``STOP.TXT`` removed by hand while change events
    were lost, then the flags set to a halt; one read sees both. The removal clears and
    restarts the parked feeder, the flags halt again (REDUCE_ONLY): the restart used to
    go out into the new failsafe."""
    policy = make_policy()
    ours = FlagsDoc(False, "NORMAL", "", "autoheal", 1.0)
    halted = step(
        initial_state(policy), SwitchFilesRead(DiskView(True, ours), startup=True), 5.0, policy
    ).state
    parked = step(halted, ProcessExited("feeder", "process_exited", 1), 6.0, policy).state
    assert parked.components["feeder"].reason == "failsafe_active"
    halt = FlagsDoc(True, "REDUCE_ONLY", "hold", "alice")
    decision = step(parked, SwitchFilesRead(DiskView(False, halt)), 7.0, policy)
    assert decision.state.failsafe is not None and decision.state.failsafe.set_by == "alice"
    assert spawns(decision.actions) == []
    feeder = decision.state.components["feeder"]
    assert (feeder.stage, feeder.reason) == (Stage.BACKOFF, "failsafe_active")
    # The clear did happen (journaled), and the new halt's clear restarts the feeder.
    assert any(getattr(a, "token", None) == "stop_file_removed" for a in decision.actions)
    cleared = step(decision.state, OperatorClearedFailsafe("done", "alice"), 8.0, policy)
    assert [a.component for a in spawns(cleared.actions)] == ["feeder"]


def test_a_process_that_recovers_while_its_restart_waits_is_verified_and_not_restarted() -> None:
    """In BACKOFF with a restart due later, its old process passes every probe again
    past ``verify_min_uptime``: verified, and the waiting restart is cancelled (the
    mutation score of ``healing.became_healthy``, issue 28)."""
    policy = make_policy()
    ok = {"process": ProbeState(True, "", 0), "heartbeat": ProbeState(True, "", 0)}
    waiting = ComponentState(
        stage=Stage.BACKOFF,
        reason="heartbeat_stale",
        probes=ok,
        attempts=1,
        restart_at=100.0,
        started_at=0.0,
    )
    state = with_components(policy, feeder=waiting)
    verified = step(state, DeadlineReached(), 50.0, policy)
    feeder = verified.state.components["feeder"]
    assert (feeder.stage, feeder.restart_at) == (Stage.OBSERVE, None)
    later = step(verified.state, DeadlineReached(), 150.0, policy)
    assert spawns(later.actions) == []

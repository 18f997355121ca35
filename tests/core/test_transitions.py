"""The table of moves (``stages.TRANSITIONS``): every edge is one the machine makes.

The stateful model (``test_machine_properties``) checks that no step makes a move the
table lacks; these are the edges it does not reach by itself: a policy with
``max_restarts = 0``, and a component restored in NOTIFY (a daemon stopped between
the two moves of a FAILSAFE entry).
"""

from __future__ import annotations

from dataclasses import replace

from autoheal.core import (
    LogTransition,
    OperatorClearedFailsafe,
    OperatorStopped,
    ProbeSucceeded,
    ProcessExited,
    Stage,
    initial_state,
    step,
)
from autoheal.core.policy import HealPolicy, Policy
from autoheal.core.stages import LATCHED, TRANSITIONS
from autoheal.core.state import RuntimeState, state_from_dict, state_to_dict

from .conftest import HEAL, make_policy


def moves(actions: tuple[object, ...]) -> list[tuple[Stage, Stage]]:
    return [(a.from_stage, a.to_stage) for a in actions if isinstance(a, LogTransition)]


def healthy(policy_heal: HealPolicy = HEAL) -> tuple[RuntimeState, Policy]:
    policy = make_policy(policy_heal)
    state = initial_state(policy)
    for obs in (
        ProbeSucceeded("exchange", "http"),
        *(ProbeSucceeded(n, p) for n in ("feeder", "trader") for p in ("process", "heartbeat")),
    ):
        state = step(state, obs, 0.0, policy).state
    return state, policy


def restored_in_notify() -> tuple[RuntimeState, Policy]:
    state, policy = healthy()
    doc = state_to_dict(state)
    doc["components"]["feeder"]["stage"] = "NOTIFY"
    return state_from_dict(doc, policy), policy


def test_transitions_table_names_every_stage_and_latched_is_failsafe_and_notify() -> None:
    assert set(TRANSITIONS) == set(Stage)
    assert all(to in Stage and to is not src for src, tos in TRANSITIONS.items() for to in tos)
    assert {Stage.FAILSAFE, Stage.NOTIFY} == LATCHED


def test_transition_observe_to_failsafe_when_no_restart_is_allowed() -> None:
    state, policy = healthy(replace(HEAL, max_restarts=0))
    decision = step(state, ProcessExited("feeder"), 1.0, policy)
    assert moves(decision.actions)[0] == (Stage.OBSERVE, Stage.FAILSAFE)
    assert all(to in TRANSITIONS[src] for src, to in moves(decision.actions))


def test_transition_notify_restored_then_cleared_restarts() -> None:
    state, policy = restored_in_notify()
    assert state.failsafe is not None  # a NOTIFY on disk is a latched failsafe
    decision = step(state, OperatorClearedFailsafe("fixed", "alice"), 1.0, policy)
    assert (Stage.NOTIFY, Stage.RESTART) in moves(decision.actions)
    assert all(to in TRANSITIONS[src] for src, to in moves(decision.actions))


def test_transition_notify_restored_then_stopped_is_held_in_observe() -> None:
    state, policy = restored_in_notify()
    decision = step(state, OperatorStopped("feeder", "maintenance", "alice"), 1.0, policy)
    assert moves(decision.actions) == [(Stage.NOTIFY, Stage.OBSERVE)]
    assert decision.state.components["feeder"].held

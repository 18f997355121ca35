"""Which action answers an operator's command (``Decision.reply_after``), decided by the core.

A ``restart``, ``stop`` or ``start`` is answered by its own process action; every other
command by itself, at once. The restarts a ``failsafe clear`` begins never answer it
(issue 19: the clear was reported failed when one of them could not spawn, although
STOP.TXT and the flags were already cleared). Facts are never answered.
"""

from __future__ import annotations

from autoheal.core import (
    DeadlineReached,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorSetReduceOnly,
    OperatorStarted,
    OperatorStopped,
    ProbeSucceeded,
    ProcessExited,
    RestartProcess,
    SpawnFinished,
    StartProcess,
    StopProcess,
    initial_state,
    step,
)
from autoheal.core.policy import Policy
from autoheal.core.state import RuntimeState

from .conftest import make_policy


def healthy(policy: Policy, now: float) -> RuntimeState:
    state = initial_state(policy)
    for obs in (
        ProbeSucceeded("exchange", "http"),
        *(ProbeSucceeded(n, p) for n in ("feeder", "trader") for p in ("process", "heartbeat")),
    ):
        state = step(state, obs, now, policy).state
    return state


def in_failsafe(policy: Policy, now: float) -> tuple[RuntimeState, float]:
    """The feeder crashed on every restart until max_restarts: FAILSAFE, parked."""
    state = step(healthy(policy, now), ProcessExited("feeder"), now, policy).state
    for _ in range(10):
        decision = step(
            state, SpawnFinished("feeder", ok=False, reason="spawn_failed"), now, policy
        )
        state = decision.state
        if state.failsafe is not None:
            return state, now
        if decision.wake_at is not None:
            now = decision.wake_at
            state = step(state, DeadlineReached(), now, policy).state
    raise AssertionError("no failsafe")


def test_reply_restart_is_answered_by_its_own_restart() -> None:
    policy = make_policy()
    decision = step(healthy(policy, 0.0), OperatorRestarted("feeder", "test", "alice"), 1.0, policy)
    assert decision.reply_after == RestartProcess("feeder", 1, 3, "operator")
    assert decision.reply_after in decision.actions


def test_reply_stop_and_start_are_answered_by_their_process_actions() -> None:
    policy = make_policy()
    stopped = step(healthy(policy, 0.0), OperatorStopped("trader", "test", "alice"), 1.0, policy)
    assert stopped.reply_after == StopProcess("trader", "operator")
    assert stopped.reply_after in stopped.actions
    started = step(stopped.state, OperatorStarted("trader", "test", "alice"), 2.0, policy)
    assert started.reply_after == StartProcess("trader", "operator")
    assert started.reply_after in started.actions


def test_reply_failsafe_clear_is_answered_now_not_by_the_restarts_it_begins_issue_19() -> None:
    policy = make_policy()
    state, now = in_failsafe(policy, 0.0)
    decision = step(state, OperatorClearedFailsafe("fixed", "alice"), now + 1, policy)
    assert RestartProcess("feeder", 1, 3, "operator") in decision.actions
    assert decision.reply_after is None
    assert decision.state.failsafe is None


def test_reply_restart_is_not_answered_by_another_components_due_restart() -> None:
    # The trader's backoff runs out at the very moment the feeder is restarted by hand:
    # the operator's restart is answered by the feeder's restart only.
    policy = make_policy()
    state = step(healthy(policy, 0.0), ProcessExited("trader"), 0.0, policy).state
    state = step(state, SpawnFinished("trader", ok=False), 0.0, policy).state
    due = state.components["trader"].restart_at
    assert due is not None
    decision = step(state, OperatorRestarted("feeder", "test", "alice"), due, policy)
    restarts = [a for a in decision.actions if isinstance(a, RestartProcess)]
    assert {a.component for a in restarts} == {"feeder", "trader"}
    assert decision.reply_after == RestartProcess("feeder", 1, 3, "operator")


def test_reply_other_commands_and_facts_are_answered_now() -> None:
    policy = make_policy()
    state = healthy(policy, 0.0)
    for obs in (
        OperatorEnteredFailsafe("test", "alice"),
        OperatorSetReduceOnly("test", "alice"),
        ProcessExited("feeder"),
        DeadlineReached(),
    ):
        decision = step(state, obs, 1.0, policy)
        assert decision.reply_after is None, obs

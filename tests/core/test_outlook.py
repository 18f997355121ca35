"""The outlook predicts what the stage machine then does (hypothesis, a fake clock).

Random observations and clock jumps drive the real :func:`~autoheal.core.step`; after
each, every component's :func:`~autoheal.core.outlook.outlook` is checked against the
machine itself, stepped forward on copies of the state: a scheduled restart happens
at the moment it names (not before) as the attempt it names, a failure leads to the
restart delay or the FAILSAFE it names, the budget resets when it says, and what it
says will not restart does not.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from autoheal.core import (
    DeadlineReached,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorStarted,
    OperatorStopped,
    ProbeFailed,
    ProbeSucceeded,
    ProcessExited,
    RestartProcess,
    SpawnFinished,
    Stage,
    initial_state,
    step,
)
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.observations import Observation
from autoheal.core.outlook import Next, OnFailure, outlook, outlooks
from autoheal.core.policy import Policy
from autoheal.core.queries import failing_dependencies, spawn_allowed
from autoheal.core.state import RuntimeState

from .conftest import HEAL, make_policy

pytestmark = [pytest.mark.timeout(120)]

COMPONENTS = ("feeder", "trader")
FAR = 10 * 24 * 3600.0


def restarts_of(actions: tuple[object, ...], name: str) -> list[RestartProcess]:
    return [a for a in actions if isinstance(a, RestartProcess) and a.component == name]


def expect_on_failure(state: RuntimeState, policy: Policy, name: str, now: float) -> None:
    """A hard failure of ``name`` now does what its outlook's ``on_failure`` says."""
    o = outlook(state, policy, name, now)
    after = step(state, ProcessExited(name), now, policy)
    cs = after.state.components[name]
    if o.on_failure is OnFailure.FAILSAFE:
        assert cs.stage is Stage.FAILSAFE, (o, cs)
    elif o.on_failure is OnFailure.RESTART:
        assert o.on_failure_delay is not None
        if o.on_failure_delay == 0:
            assert [a.attempt for a in restarts_of(after.actions, name)] == [o.attempts + 1]
        else:
            assert cs.stage is Stage.BACKOFF and cs.restart_at is not None, (o, cs)
            assert math.isclose(cs.restart_at - now, o.on_failure_delay)


def check_predictions(state: RuntimeState, policy: Policy, now: float) -> None:
    for name, o in outlooks(state, policy, now).items():
        cs = state.components[name]
        assert o.attempts == cs.attempts and o.max_restarts == HEAL.max_restarts
        assert o.attempts_left == max(0, HEAL.max_restarts - cs.attempts)
        assert o.stable_reset == HEAL.stable_reset
        for span in (o.restart_in, o.reset_in):
            assert span is None or span >= 0
        assert (o.restart_at is None) == (o.next is not Next.SCHEDULED)
        if o.next is Next.SCHEDULED:
            assert o.restart_at is not None and o.restart_in is not None
            assert o.attempt == cs.attempts + 1 <= HEAL.max_restarts
            if o.restart_at > now:  # nothing for it before its moment
                early = step(state, DeadlineReached(), (now + o.restart_at) / 2, policy)
                assert not restarts_of(early.actions, name)
            due = step(state, DeadlineReached(), max(now, o.restart_at), policy)
            if due.state.failsafe is None:  # (another's budget may run out first)
                made = restarts_of(due.actions, name)
                assert [(a.attempt, a.reason) for a in made] == [(o.attempt, o.reason)]
                up = step(due.state, SpawnFinished(name, True), max(now, o.restart_at), policy)
                expect_on_failure(up.state, policy, name, max(now, o.restart_at))
        elif o.next in (Next.HELD, Next.FAILSAFE, Next.DEPENDENCY):
            assert o.on_failure is None
            later = step(state, DeadlineReached(), now + FAR, policy)
            assert not restarts_of(later.actions, name)
        elif o.next in (Next.HEALTHY, Next.WATCHING, Next.VERIFYING):
            expect_on_failure(state, policy, name, now)
        if not spawn_allowed(state):  # the kill switch holds: no restart is coming
            assert o.next in (Next.HEALTHY, Next.HELD, Next.FAILSAFE), o
        elif failing_dependencies(state, policy, name) and o.next not in (
            Next.HEALTHY,
            Next.HELD,
            Next.FAILSAFE,
            Next.RESTARTING,
        ):
            assert o.next is Next.DEPENDENCY, o
        if o.next is Next.VERIFYING:
            assert o.verify_until is not None and o.attempt == cs.attempts
        if o.reset_at is not None:
            assert o.next is Next.HEALTHY and cs.attempts > 0
            reset = step(state, DeadlineReached(), max(now, o.reset_at), policy)
            assert reset.state.components[name].attempts == 0
        elif o.next is Next.HEALTHY and cs.attempts > 0:
            pytest.fail(f"{name}: healthy with attempts and no reset moment: {o}")


class OutlookModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.policy = make_policy()
        self.state = initial_state(self.policy)
        self.now = 0.0

    def feed(self, obs: Observation) -> None:
        try:
            self.state = step(self.state, obs, self.now, self.policy).state
        except (IllegalCommandError, CommandRefusedError):
            pass

    @rule(name=st.sampled_from(COMPONENTS), probe=st.sampled_from(("process", "heartbeat")))
    def probe_ok(self, name: str, probe: str) -> None:
        self.feed(ProbeSucceeded(name, probe))

    @rule(name=st.sampled_from(COMPONENTS))
    def heartbeat_stale(self, name: str) -> None:
        self.feed(ProbeFailed(name, "heartbeat", "heartbeat_stale"))

    @rule(name=st.sampled_from(COMPONENTS))
    def process_exited(self, name: str) -> None:
        self.feed(ProcessExited(name))

    @rule(name=st.sampled_from(COMPONENTS), ok=st.booleans())
    def spawn_finished(self, name: str, ok: bool) -> None:
        self.feed(SpawnFinished(name, ok, "" if ok else "spawn_failed"))

    @rule(ok=st.booleans())
    def dependency(self, ok: bool) -> None:
        self.feed(
            ProbeSucceeded("exchange", "http")
            if ok
            else ProbeFailed("exchange", "http", "CONN_TIMEOUT")
        )

    @rule(dt=st.floats(min_value=0.0, max_value=700.0, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.feed(DeadlineReached())

    @rule(
        command=st.sampled_from(("stop", "start", "enter", "clear")),
        name=st.sampled_from(COMPONENTS),
    )
    def operator(self, command: str, name: str) -> None:
        self.feed(
            {
                "stop": OperatorStopped(name, "test", "alice"),
                "start": OperatorStarted(name, "test", "alice"),
                "enter": OperatorEnteredFailsafe("test", "alice"),
                "clear": OperatorClearedFailsafe("test", "alice"),
            }[command]
        )

    @invariant()
    def outlook_predicts_the_machine(self) -> None:
        check_predictions(self.state, self.policy, self.now)


OutlookModel.TestCase.settings = settings(stateful_step_count=30, deadline=None)
test_outlook_predicts_the_machine = OutlookModel.TestCase


@given(
    attempts=st.integers(min_value=1, max_value=HEAL.max_restarts - 1),
    delay_passed=st.floats(min_value=0.0, max_value=1000.0, allow_nan=False),
)
def test_a_scheduled_restart_counts_down_on_the_fake_clock(
    attempts: int, delay_passed: float
) -> None:
    """The restart in the example of issue 23: BACKOFF, attempt k+1 of 3, its reason."""
    policy = make_policy()
    state = initial_state(policy)
    now = 100.0
    for _ in range(attempts):  # the first restart is at once, the next ones wait
        state = step(state, ProcessExited("feeder"), now, policy).state
        waiting = state.components["feeder"].restart_at
        if waiting is not None:
            now = waiting
            state = step(state, DeadlineReached(), now, policy).state
        state = step(state, SpawnFinished("feeder", True), now, policy).state
    assert state.components["feeder"].attempts == attempts
    state = step(state, ProcessExited("feeder"), now, policy).state
    o = outlook(state, policy, "feeder", now + delay_passed)
    delay = HEAL.restart_backoff[attempts - 1]
    assert o.next is Next.SCHEDULED and o.reason == "process_exited"
    assert (o.attempt, o.attempts, o.attempts_left) == (attempts + 1, attempts, 3 - attempts)
    assert o.restart_at == pytest.approx(now + delay)
    assert o.restart_in == pytest.approx(max(0.0, delay - delay_passed))
    last = attempts + 1 == HEAL.max_restarts
    assert o.on_failure is (OnFailure.FAILSAFE if last else OnFailure.RESTART)


def test_the_budget_resets_stable_reset_after_the_verification() -> None:
    policy = make_policy()
    state = initial_state(policy)
    state = step(state, ProcessExited("feeder"), 0.0, policy).state
    state = step(state, SpawnFinished("feeder", True), 1.0, policy).state
    o = outlook(state, policy, "feeder", 1.0)
    assert o.next is Next.VERIFYING and o.reset_at is None and o.attempt == 1
    for name, probe in (("feeder", "heartbeat"), ("trader", "process"), ("trader", "heartbeat")):
        state = step(state, ProbeSucceeded(name, probe), 1.5, policy).state
    state = step(state, DeadlineReached(), 1.0 + HEAL.verify_min_uptime, policy).state
    verified_at = 1.0 + HEAL.verify_min_uptime
    o = outlook(state, policy, "feeder", verified_at + 60.0)
    assert o.next is Next.HEALTHY and o.attempts == 1
    assert o.reset_at == pytest.approx(verified_at + HEAL.stable_reset)
    assert o.reset_in == pytest.approx(HEAL.stable_reset - 60.0)
    assert (o.on_failure, o.on_failure_delay) == (OnFailure.RESTART, HEAL.restart_backoff[0])

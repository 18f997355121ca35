"""No local failsafe begins while a failsafe holds (issue 28, docs/mutation.md).

``healing.enter_failsafe`` keeps a branch for a failsafe the fleet holds (the local
failsafe would take it over), as defence in depth: ``begin_restart`` parks whatever
fails while any failsafe holds, so the branch never runs. This property checks that
over random sequences of observations (the fleet's HALT and RUN, failures, spawns,
a failing dependency, the clock, operator commands): ``enter_failsafe`` is only ever
called with no failsafe held. (It does reach ``enter_failsafe``, and it fails when
``begin_restart`` is made to park only under a failsafe that is not the fleet's.)
"""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from autoheal.core import healing
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.machine import step
from autoheal.core.observations import (
    DeadlineReached,
    FleetSwitchRead,
    Observation,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorStarted,
    OperatorStopped,
    ProbeFailed,
    ProbeSucceeded,
    ProcessExited,
    SpawnFinished,
)
from autoheal.core.state import initial_state
from autoheal.core.work import Work

from .conftest import HEAL, make_policy

POLICY = make_policy()
COMPONENTS = ("feeder", "trader")

HALT, RUN = FleetSwitchRead("HALT", 0, "ops", "incident"), FleetSwitchRead("RUN", 0, "ops", "ok")
#: The observations, weighted by repetition towards what reaches max_restarts (CRASH:
#: a spawn, its exit, time for the backoff; a few in a row) and towards the fleet's
#: halt; a fleet read's version is set in order below, a float is seconds to wait.
CRASH = (SpawnFinished("feeder", True), ProcessExited("feeder"), HEAL.restart_backoff[-1])
ALPHABET: tuple[Observation | float | tuple[Observation | float, ...], ...] = (
    *[CRASH] * 16,
    *[HALT] * 2,
    ProcessExited("feeder"),
    HEAL.restart_backoff[-1],
    RUN,
    ProcessExited("trader"),
    SpawnFinished("feeder", False, "ENOENT"),
    SpawnFinished("trader", True),
    ProbeSucceeded("feeder", "heartbeat"),
    ProbeSucceeded("feeder", "process"),
    ProbeFailed("feeder", "heartbeat", "heartbeat_stale"),
    ProbeSucceeded("exchange", "http"),
    ProbeFailed("exchange", "http", "CONN_TIMEOUT"),
    OperatorEnteredFailsafe("test", "alice"),
    OperatorClearedFailsafe("test", "alice"),
    OperatorRestarted("feeder", "test", "alice"),
    OperatorStopped("feeder", "test", "alice"),
    OperatorStarted("feeder", "test", "alice"),
    0.0,
    2.5,
    HEAL.verify_window,
)


@settings(deadline=None)
@given(st.lists(st.sampled_from(ALPHABET), max_size=40))
def test_enter_failsafe_is_only_called_with_no_failsafe_held(
    letters: list[Observation | float | tuple[Observation | float, ...]],
) -> None:
    held: list[object] = []
    real = healing.enter_failsafe

    def spy(w: Work, *args: object) -> None:
        held.append(w.failsafe)
        real(w, *args)  # type: ignore[arg-type]

    state, now, version = initial_state(POLICY), 100.0, 0
    with mock.patch.object(healing, "enter_failsafe", spy):
        events = [e for x in letters for e in (x if isinstance(x, tuple) else (x,))]
        for event in events:
            if isinstance(event, float):
                now += event
                obs: Observation = DeadlineReached()
            elif isinstance(event, FleetSwitchRead):
                version += 1
                obs = FleetSwitchRead(event.state, version, event.set_by, event.reason)
            else:
                obs = event
            try:
                state = step(state, obs, now, POLICY).state
            except (IllegalCommandError, CommandRefusedError):
                continue
    assert held == [None] * len(held)

"""A config reload is an observation (``ConfigReloaded``): the core decides what it means.

Before, ``daemon/reload.py`` invented the actions and rebuilt the state itself, and
restarted a changed component even while the failsafe held or an operator had
stopped it.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from autoheal.core import (
    ConfigReloaded,
    OperatorEnteredFailsafe,
    OperatorStopped,
    RestartProcess,
    SpawnFinished,
    Stage,
    StartProcess,
    StopProcess,
    initial_state,
    step,
)
from autoheal.core.policy import ComponentSpec, Policy
from tests.core.conftest import HEAL, make_policy

OLD = make_policy()
NOW = 1000.0


def with_components(*names: str) -> Policy:
    return Policy(
        components={
            n: ComponentSpec(n, ("process", "heartbeat"), ("exchange",), True, HEAL) for n in names
        },
        dependencies=OLD.dependencies,
        failures_before_degraded=OLD.failures_before_degraded,
    )


def running() -> object:
    state = initial_state(OLD)
    for name in ("feeder", "trader"):
        state = step(state, SpawnFinished(name, True), NOW, OLD).state
    return state


def kinds(actions: tuple[object, ...]) -> list[tuple[str, str]]:
    return [
        (type(a).__name__, a.component)
        for a in actions
        if isinstance(a, StartProcess | StopProcess | RestartProcess)
    ]


def test_added_starts_removed_stops_changed_restarts_kept_untouched() -> None:
    new = with_components("feeder", "pricer")
    state = running()
    state = replace(
        state,
        components={**state.components, "feeder": replace(state.components["feeder"], attempts=2)},
    )
    d = step(state, ConfigReloaded(frozenset()), NOW, new)
    assert kinds(d.actions) == [("StopProcess", "trader"), ("StartProcess", "pricer")]
    assert set(d.state.components) == {"feeder", "pricer"}
    assert d.state.components["feeder"].attempts == 2  # kept: its episode goes on

    d = step(state, ConfigReloaded(frozenset({"feeder"})), NOW, OLD)
    assert kinds(d.actions) == [("RestartProcess", "feeder")]
    assert d.state.components["feeder"].stage is Stage.RESTART
    assert d.state.components["feeder"].attempts == 1  # a fresh episode, like an operator's


def test_regression_nothing_restarts_or_starts_on_reload_during_a_failsafe() -> None:
    state = step(running(), OperatorEnteredFailsafe("halt", "cli"), NOW, OLD).state
    new = with_components("feeder", "trader", "pricer")
    d = step(state, ConfigReloaded(frozenset({"feeder"})), NOW, new)
    assert kinds(d.actions) == []
    assert d.state.components["pricer"].stage is Stage.BACKOFF
    assert d.state.failsafe is not None


def test_regression_a_stopped_component_stays_stopped_when_its_config_changes() -> None:
    state = step(running(), OperatorStopped("feeder", "maintenance", "cli"), NOW, OLD).state
    d = step(state, ConfigReloaded(frozenset({"feeder"})), NOW, OLD)
    assert kinds(d.actions) == []
    assert d.state.components["feeder"].held


NAMES = st.sets(st.sampled_from(["feeder", "trader", "pricer", "hedger"]), min_size=1)


@given(NAMES, NAMES, st.booleans())
def test_reload_actions_follow_the_difference(
    before: set[str], after: set[str], halted: bool
) -> None:
    old, new = with_components(*sorted(before)), with_components(*sorted(after))
    state = initial_state(old)
    if halted:
        state = step(state, OperatorEnteredFailsafe("halt", "cli"), NOW, old).state
    d = step(state, ConfigReloaded(frozenset(before & after)), NOW, new)
    assert set(d.state.components) == after
    got = kinds(d.actions)
    assert {c for k, c in got if k == "StopProcess"} == before - after
    started = {c for k, c in got if k in ("StartProcess", "RestartProcess")}
    assert started == (set() if halted else after)

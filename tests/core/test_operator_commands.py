"""What a component command does to the component, and why one is refused (issue 28).

``restart``, ``stop`` and ``start`` each begin a fresh episode and leave the component
in an exact state; a wrong command is an ``IllegalCommandError`` and a refused one a
``CommandRefusedError``, each with the reason token the CLI and the status page show
(``core/operator_rules.py``; docs/mutation.md). Pure: ``step`` with a fake ``now``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.actions import (
    LogTransition,
    RemoveStop,
    RestartProcess,
    StartProcess,
    StopProcess,
)
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.fleet import FLEET
from autoheal.core.machine import step
from autoheal.core.observations import (
    Observation,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorSetReduceOnly,
    OperatorStarted,
    OperatorStopped,
    RiskLatchSeen,
)
from autoheal.core.stages import Stage
from autoheal.core.state import (
    ComponentState,
    FailsafeState,
    FleetState,
    ProbeState,
    ReduceOnlyState,
    RuntimeState,
)
from autoheal.core.state import initial_state as _initial
from tests.core.conftest import HEAL, make_policy

POLICY = make_policy()
NORMAL = _initial(POLICY)
PROBES = {"process": ProbeState(True), "heartbeat": ProbeState(False, "heartbeat_stale", 1)}
NOW = 100.0


def _with(state: RuntimeState, **fields: object) -> RuntimeState:
    feeder = replace(state.components["feeder"], probes=PROBES, **fields)
    return replace(state, components={**state.components, "feeder": feeder})


def _refusal(state: RuntimeState, obs: Observation) -> Exception:
    with pytest.raises((IllegalCommandError, CommandRefusedError)) as caught:
        step(state, obs, NOW, POLICY)
    return caught.value


@pytest.mark.parametrize(
    "stage", [Stage.BACKOFF, Stage.FAILSAFE], ids=["while backing off", "latched"]
)
def test_stop_holds_the_component_with_its_clocks_cleared(stage: Stage) -> None:
    clocks = {"restart_at": 150.0, "verify_until": 190.0, "healthy_since": 10.0}
    state = _with(NORMAL, stage=stage, reason="x", attempts=2, **clocks)
    d = step(state, OperatorStopped("feeder", "maint", "alice"), NOW, POLICY)
    assert d.state.components["feeder"] == ComponentState(
        stage=Stage.OBSERVE if stage is Stage.BACKOFF else Stage.FAILSAFE,
        reason="stopped",
        probes=PROBES,
        held=True,
    )
    moved = [a for a in d.actions if isinstance(a, LogTransition)]
    if stage is Stage.BACKOFF:
        assert moved == [LogTransition("feeder", Stage.BACKOFF, Stage.OBSERVE, "operator", 0, 3)]
    else:
        assert moved == []
    assert d.reply_after == StopProcess("feeder", "operator")


def test_start_releases_the_component_into_a_fresh_verify_window() -> None:
    state = _with(NORMAL, reason="stopped", held=True, attempts=2)
    d = step(state, OperatorStarted("feeder", "back", "alice"), NOW, POLICY)
    assert d.state.components["feeder"] == ComponentState(
        reason="started",
        probes={"process": ProbeState(), "heartbeat": ProbeState()},
        verify_until=NOW + HEAL.verify_window,
    )
    assert d.actions == (StartProcess("feeder", "operator"),)


def test_restart_begins_a_fresh_episode_whatever_the_attempts_before() -> None:
    state = _with(NORMAL, stage=Stage.BACKOFF, attempts=2, restart_at=NOW + 60)
    d = step(state, OperatorRestarted("feeder", "stuck", "alice"), NOW, POLICY)
    assert RestartProcess("feeder", 1, 3, "operator") in d.actions


CLEAR_FIRST = "clear it first with 'autoheal failsafe clear --reason ...'"
HALTED = replace(NORMAL, failsafe=FailsafeState("maintenance", "alice"))
LATCHED_ALONE = _with(NORMAL, stage=Stage.FAILSAFE, reason="max_restarts_exceeded")


@pytest.mark.parametrize(
    ("state", "obs", "error", "message", "reason"),
    [
        (
            NORMAL,
            OperatorRestarted("nope", "", "alice"),
            IllegalCommandError,
            "unknown component 'nope'",
            "unknown_component",
        ),
        (
            HALTED,
            OperatorRestarted("feeder", "", "alice"),
            CommandRefusedError,
            f"can't restart feeder while the failsafe is active (maintenance); {CLEAR_FIRST}",
            "failsafe_active",
        ),
        (
            LATCHED_ALONE,
            OperatorRestarted("feeder", "", "alice"),
            CommandRefusedError,
            "can't restart feeder while the failsafe is active (max_restarts_exceeded); "
            + CLEAR_FIRST,
            "failsafe_active",
        ),
        (
            _with(HALTED, held=True),
            OperatorStarted("feeder", "", "alice"),
            CommandRefusedError,
            f"can't start feeder while the failsafe is active (maintenance); {CLEAR_FIRST}",
            "failsafe_active",
        ),
        (
            NORMAL,
            OperatorClearedFailsafe("", "alice"),
            IllegalCommandError,
            "the failsafe is not active; nothing to clear",
            "not_active",
        ),
        (
            HALTED,
            OperatorEnteredFailsafe("", "bob"),
            IllegalCommandError,
            "the failsafe is already active (maintenance, set by alice)",
            "already_active",
        ),
        (
            replace(NORMAL, reduce_only=ReduceOnlyState("careful", "bob")),
            OperatorSetReduceOnly("", "alice"),
            IllegalCommandError,
            "REDUCE_ONLY is already set (careful, by bob)",
            "already_reduce_only",
        ),
        (
            NORMAL,
            OperatorStarted("feeder", "", "alice"),
            IllegalCommandError,
            "feeder is not stopped (stage OBSERVE); use restart",
            "not_stopped",
        ),
        (
            _with(NORMAL, held=True),
            OperatorStopped("feeder", "", "alice"),
            IllegalCommandError,
            "feeder is already stopped",
            "already_stopped",
        ),
    ],
    ids=[
        "unknown",
        "restart in failsafe",
        "restart latched",
        "start in failsafe",
        "clear nothing",
        "enter twice",
        "reduce-only twice",
        "start running",
        "stop stopped",
    ],
)
def test_a_wrong_or_refused_command_says_why(
    state: RuntimeState, obs: Observation, error: type, message: str, reason: str
) -> None:
    exc = _refusal(state, obs)
    assert type(exc) is error
    assert str(exc) == message
    assert exc.reason == reason  # type: ignore[attr-defined]


# ------------------------------------------------------------------ a clear's restarts

COMPONENTS = st.builds(
    ComponentState,
    stage=st.sampled_from(list(Stage)),
    reason=st.sampled_from(["failsafe_active", "heartbeat_stale", "stopped", ""]),
    held=st.booleans(),
    restart_at=st.none() | st.just(NOW + 500.0),
)


@given(st.fixed_dictionaries({"feeder": COMPONENTS, "trader": COMPONENTS}))
def test_a_clear_restarts_exactly_the_latched_and_the_parked_components(
    components: dict[str, ComponentState],
) -> None:
    """Latched ones (FAILSAFE, NOTIFY), and those the failsafe parked in BACKOFF unless
    an operator holds them; every one begins a fresh episode."""
    state = replace(HALTED, components=components)
    d = step(state, OperatorClearedFailsafe("fixed", "alice"), NOW, POLICY)
    restarted = {a.component for a in d.actions if isinstance(a, RestartProcess)}
    expected = {
        name
        for name, cs in components.items()
        if cs.stage in (Stage.FAILSAFE, Stage.NOTIFY)
        or (cs.stage is Stage.BACKOFF and cs.reason == "failsafe_active" and not cs.held)
    }
    assert restarted == expected
    assert all(cs.attempts <= 1 for cs in d.state.components.values())


@pytest.mark.parametrize(
    "obs",
    [OperatorEnteredFailsafe("mine", "alice"), OperatorClearedFailsafe("over", "alice")],
    ids=["takes it over", "clears it"],
)
def test_an_operators_act_on_a_fleet_halt_forgets_what_the_fleet_set_aside(
    obs: Observation,
) -> None:
    """The REDUCE_ONLY a fleet HALT displaced is the fleet's to give back on RUN; once
    an operator has taken the halt over or cleared it, it is not given back."""
    displaced = ReduceOnlyState("careful", "bob")
    state = replace(
        NORMAL,
        failsafe=FailsafeState("fleet HALT v1 by ops: x", FLEET),
        fleet=FleetState(version=1, displaced=displaced),
    )
    d = step(state, obs, NOW, POLICY)
    assert d.state.fleet == FleetState(version=1)


@pytest.mark.parametrize(
    "state",
    [HALTED, replace(NORMAL, reduce_only=ReduceOnlyState("careful", "bob"))],
    ids=["inside a failsafe", "an operator's REDUCE_ONLY"],
)
def test_the_risk_latch_never_replaces_anything_as_strict(state: RuntimeState) -> None:
    d = step(state, RiskLatchSeen("risk_daily_loss"), NOW, POLICY)
    assert (d.state, d.actions) == (state, ())


def test_a_clear_inside_a_failsafe_removes_the_stop_file_in_the_actors_name() -> None:
    d = step(HALTED, OperatorClearedFailsafe("fixed", "alice"), NOW, POLICY)
    assert RemoveStop("fixed", "alice") in d.actions

"""What healing leaves behind, exactly (``core/healing.py``, issue 28, docs/mutation.md).

A restart's component, a spawn's outcome, the automatic failsafe (its actor is
``autoheal``, its reason names the component and the last failure) and a component
that becomes healthy. Pure: ``step`` with a fake ``now``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoheal.core.actions import (
    LogTransition,
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
    WriteFlags,
    WriteStop,
)
from autoheal.core.fleet import FLEET
from autoheal.core.machine import step
from autoheal.core.observations import (
    ConfigReloaded,
    DeadlineReached,
    Observation,
    OperatorClearedFailsafe,
    OperatorRestarted,
    ProbeSucceeded,
    ProcessExited,
    SpawnFinished,
)
from autoheal.core.policy import ComponentSpec, Policy
from autoheal.core.stages import Stage
from autoheal.core.state import (
    ComponentState,
    DependencyState,
    FailsafeState,
    ProbeState,
    ReduceOnlyState,
    RuntimeState,
    initial_state,
)
from tests.core.conftest import HEAL, make_policy

POLICY = make_policy()
NOW = 100.0
OK = ProbeState(True, "", 0)


def _run(state: RuntimeState, *observations: Observation) -> tuple[RuntimeState, list[object]]:
    actions: list[object] = []
    for obs in observations:
        d = step(state, obs, NOW, POLICY)
        state = d.state
        actions.extend(a for a in d.actions if not isinstance(a, WriteFlags))
    return state, actions


HEALTHY, _ = _run(
    initial_state(POLICY),
    ProbeSucceeded("exchange", "http"),
    *(ProbeSucceeded(c, p) for c in ("feeder", "trader") for p in ("process", "heartbeat")),
)


def _feeder(state: RuntimeState, **fields: object) -> RuntimeState:
    feeder = replace(state.components["feeder"], **fields)
    return replace(state, components={**state.components, "feeder": feeder})


def test_a_restart_leaves_a_fresh_component_waiting_for_its_spawn() -> None:
    state = _feeder(HEALTHY, restarts=4, healthy_since=5.0)
    after, actions = _run(state, ProcessExited("feeder"))
    assert after.components["feeder"] == ComponentState(
        stage=Stage.RESTART,
        reason="process_exited",
        probes={"process": ProbeState(), "heartbeat": ProbeState()},
        attempts=1,
        restarts=5,
    )
    assert actions == [
        LogTransition("feeder", Stage.OBSERVE, Stage.RESTART, "process_exited", 1, 3),
        RestartProcess("feeder", 1, 3, "process_exited"),
    ]


def test_a_spawn_that_worked_begins_verifying_on_this_process_only() -> None:
    restarting, _ = _run(HEALTHY, ProcessExited("feeder"))
    after, actions = _run(restarting, SpawnFinished("feeder", True))
    assert after.components["feeder"] == ComponentState(
        stage=Stage.BACKOFF,
        reason="verifying",
        probes={"process": OK, "heartbeat": ProbeState()},
        attempts=1,
        restarts=1,
        verify_until=NOW + HEAL.verify_window,
        started_at=NOW,
    )
    assert actions == [LogTransition("feeder", Stage.RESTART, Stage.BACKOFF, "verifying", 1, 3)]


def test_a_spawn_that_failed_marks_the_process_down_and_backs_off() -> None:
    restarting, _ = _run(HEALTHY, ProcessExited("feeder"))
    after, _ = _run(restarting, SpawnFinished("feeder", False, "ENOENT"))
    feeder = after.components["feeder"]
    assert feeder.probes["process"] == ProbeState(False, "spawn_failed", 0)
    assert (feeder.stage, feeder.started_at, feeder.attempts) == (Stage.BACKOFF, None, 1)
    assert feeder.restart_at == NOW + HEAL.restart_backoff[0]


@pytest.mark.parametrize(
    ("fields", "grace"),
    [
        (
            {
                "stage": Stage.OBSERVE,
                "probes": {"process": ProbeState(), "heartbeat": ProbeState()},
            },
            True,
        ),
        ({"stage": Stage.OBSERVE, "held": True}, False),
        ({"stage": Stage.BACKOFF, "restart_at": None}, True),
    ],
    ids=["a plain start", "held", "a paused restart"],
)
def test_a_spawn_outside_a_restart_gets_a_verify_window_when_it_needs_one(
    fields: dict[str, object], grace: bool
) -> None:
    state = _feeder(HEALTHY, **fields)
    after, _ = _run(state, SpawnFinished("feeder", True))
    feeder = after.components["feeder"]
    assert feeder.started_at == NOW
    assert (feeder.verify_until == NOW + HEAL.verify_window) == grace


def test_a_component_healthy_again_in_observe_keeps_when_its_health_began() -> None:
    state = _feeder(
        HEALTHY,
        reason="heartbeat_stale",
        verify_until=NOW + 10.0,
        healthy_since=None,
        probes={"process": OK, "heartbeat": ProbeState(False, "heartbeat_stale", 1)},
    )
    after, _ = _run(state, ProbeSucceeded("feeder", "heartbeat"))
    feeder = after.components["feeder"]
    assert (feeder.reason, feeder.verify_until, feeder.healthy_since) == ("", None, NOW)
    again = _feeder(after, healthy_since=50.0)
    after, _ = _run(again, ProbeSucceeded("feeder", "heartbeat"))
    assert after.components["feeder"].healthy_since == 50.0


# ------------------------------------------------------------------ the automatic failsafe

LAST = "feeder: max_restarts_exceeded (last failure process_exited)"
NOTICE = SendNotice(
    "failsafe",
    "feeder",
    "max_restarts_exceeded",
    "feeder failed 3 restart attempts (last failure process_exited); "
    "FAILSAFE entered, STOP.TXT written, trading halted",
)
VERIFYING_LAST = {"stage": Stage.BACKOFF, "attempts": 3, "verify_until": NOW + 10.0}


def _moves() -> list[LogTransition]:
    m = "max_restarts_exceeded"
    return [
        LogTransition("feeder", Stage.BACKOFF, Stage.FAILSAFE, m, 3, 3),
        LogTransition("feeder", Stage.FAILSAFE, Stage.NOTIFY, m, 3, 3),
        LogTransition("feeder", Stage.NOTIFY, Stage.FAILSAFE, m, 3, 3),
    ]


@pytest.mark.parametrize(
    "before",
    [None, ReduceOnlyState("careful", "bob")],
    ids=["alone", "over an operator's REDUCE_ONLY"],
)
def test_the_automatic_failsafe_is_autoheals_and_says_what_failed(
    before: ReduceOnlyState | None,
) -> None:
    state = replace(_feeder(HEALTHY, **VERIFYING_LAST), reduce_only=before)
    after, actions = _run(state, ProcessExited("feeder"))
    assert after.failsafe == FailsafeState(LAST, "autoheal", "feeder")
    assert after.reduce_only is None
    m1, m2, m3 = _moves()
    assert actions == [
        m1,
        StopProcess("feeder", "max_restarts_exceeded"),
        WriteStop(LAST, "autoheal"),
        m2,
        NOTICE,
        m3,
    ]
    feeder = after.components["feeder"]
    assert (feeder.stage, feeder.reason) == (Stage.FAILSAFE, "max_restarts_exceeded")
    assert (feeder.restart_at, feeder.verify_until, feeder.healthy_since) == (None, None, None)


def test_a_failure_under_any_failsafe_parks_the_component_and_counts_nothing() -> None:
    """Nothing restarts while the kill switch holds, so nothing reaches max_restarts
    then either: the fleet's halt or an operator's stays as it is."""
    for held in (FailsafeState("maintenance", "alice"), FailsafeState("fleet HALT v1", FLEET)):
        state = replace(_feeder(HEALTHY, **VERIFYING_LAST), failsafe=held)
        after, actions = _run(state, ProcessExited("feeder"))
        assert after.failsafe == held
        feeder = after.components["feeder"]
        assert (feeder.stage, feeder.reason, feeder.attempts) == (
            Stage.BACKOFF,
            "failsafe_active",
            3,
        )
        assert not any(isinstance(a, WriteStop | SendNotice) for a in actions)


# ------------------------------------------------------------------ deadlines

FAILING_DEP = DependencyState({"http": ProbeState(False, "CONN_TIMEOUT", 2)}, True, "CONN_TIMEOUT")


@pytest.mark.parametrize("deadline", ["restart_at", "verify_until"])
def test_a_deadline_reached_while_a_dependency_fails_is_dropped_not_acted_on(
    deadline: str,
) -> None:
    state = replace(
        _feeder(HEALTHY, stage=Stage.BACKOFF, attempts=1, reason="x", **{deadline: NOW - 1.0}),
        dependencies={"exchange": FAILING_DEP},
    )
    after, actions = _run(state, DeadlineReached())
    assert after.components["feeder"] == replace(state.components["feeder"], **{deadline: None})
    assert not any(isinstance(a, RestartProcess) for a in actions)


def test_a_backoff_that_runs_out_restarts_for_its_reason_or_backoff_elapsed() -> None:
    for reason, expected in (("heartbeat_stale", "heartbeat_stale"), ("", "backoff_elapsed")):
        state = _feeder(HEALTHY, stage=Stage.BACKOFF, attempts=1, reason=reason, restart_at=NOW)
        _, actions = _run(state, DeadlineReached())
        assert RestartProcess("feeder", 2, 3, expected) in actions


def test_a_start_grace_that_ends_healthy_just_ends() -> None:
    state = _feeder(HEALTHY, verify_until=NOW - 1.0, started_at=None)
    after, actions = _run(state, DeadlineReached())
    assert after.components["feeder"].verify_until is None
    assert actions == []


def test_stable_health_ends_the_episode_as_stable() -> None:
    state = _feeder(HEALTHY, attempts=2, healthy_since=NOW - HEAL.stable_reset)
    after, _ = _run(state, DeadlineReached())
    feeder = after.components["feeder"]
    assert (feeder.attempts, feeder.reason) == (0, "stable_reset")


# ------------------------------------------------------------------ a new config


def _policy(*names: str) -> Policy:
    base = make_policy()
    return Policy(
        components={
            n: ComponentSpec(n, ("process", "heartbeat"), ("exchange",), True, HEAL) for n in names
        },
        dependencies=base.dependencies,
        failures_before_degraded=base.failures_before_degraded,
    )


def test_a_new_config_stops_starts_and_restarts_each_for_its_reason() -> None:
    new = _policy("feeder", "trader", "pricer", "quoter")
    state = _feeder(HEALTHY, attempts=2)
    d = step(state, ConfigReloaded(frozenset({"feeder", "pricer"})), NOW, new)
    started = ComponentState(
        reason="started",
        probes={"process": ProbeState(), "heartbeat": ProbeState()},
        verify_until=NOW + HEAL.verify_window,
    )
    assert d.state.components["pricer"] == started
    assert d.state.components["quoter"] == started
    assert [a for a in d.actions if isinstance(a, StartProcess | RestartProcess)] == [
        StartProcess("pricer", "config_added"),
        StartProcess("quoter", "config_added"),
        RestartProcess("feeder", 1, 3, "config_changed"),
    ]
    gone = step(HEALTHY, ConfigReloaded(frozenset()), NOW, _policy("feeder"))
    assert [a for a in gone.actions if isinstance(a, StopProcess)] == [
        StopProcess("trader", "config_removed")
    ]


def test_a_new_config_under_a_failsafe_parks_every_added_component() -> None:
    halted = replace(HEALTHY, failsafe=FailsafeState("maintenance", "alice"))
    new = _policy("feeder", "trader", "pricer", "quoter")
    d = step(halted, ConfigReloaded(frozenset({"feeder"})), NOW, new)
    for name in ("pricer", "quoter"):
        cs = d.state.components[name]
        assert (cs.stage, cs.reason) == (Stage.BACKOFF, "failsafe_active")
    assert not any(isinstance(a, StartProcess | RestartProcess) for a in d.actions)


def test_a_changed_config_leaves_a_held_component_and_restarts_the_next() -> None:
    state = _feeder(HEALTHY, held=True)
    d = step(
        state, ConfigReloaded(frozenset({"feeder", "trader"})), NOW, _policy("feeder", "trader")
    )
    assert [a.component for a in d.actions if isinstance(a, RestartProcess)] == ["trader"]


FRESH = {
    "restart_at": None,
    "verify_until": None,
    "healthy_since": None,
    "held": False,
    "started_at": None,
}


@pytest.mark.parametrize(
    ("fields", "obs"),
    [
        (
            {"stage": Stage.BACKOFF, "attempts": 1, "restart_at": NOW, "started_at": 1.0},
            DeadlineReached(),
        ),
        (
            {
                "stage": Stage.BACKOFF,
                "attempts": 1,
                "verify_until": NOW + 5.0,
                "healthy_since": 1.0,
                # up 1 s, under verify_min_uptime: not verified before the restart
                "started_at": NOW - 1.0,
            },
            OperatorRestarted("feeder", "stuck", "alice"),
        ),
    ],
    ids=["a backoff that ran out", "an operator's restart while verifying"],
)
def test_a_restart_clears_every_clock_it_had(fields: dict[str, object], obs: Observation) -> None:
    after, actions = _run(_feeder(HEALTHY, **fields), obs)
    feeder = after.components["feeder"]
    assert feeder.stage is Stage.RESTART
    assert {k: getattr(feeder, k) for k in FRESH} == FRESH
    assert len([a for a in actions if isinstance(a, RestartProcess)]) == 1


def test_a_clear_restarts_a_latched_component_even_if_it_was_held_and_releases_it() -> None:
    latched = _feeder(HEALTHY, stage=Stage.FAILSAFE, held=True, attempts=3)
    halted = replace(latched, failsafe=FailsafeState("maintenance", "alice"))
    after, _ = _run(halted, OperatorClearedFailsafe("fixed", "alice"))
    feeder = after.components["feeder"]
    assert (feeder.stage, feeder.held, feeder.attempts) == (Stage.RESTART, False, 1)


# ------------------------------------------------------------------ a failed spawn, parked


def test_a_failed_spawn_outside_a_restart_backs_off_for_its_reason_with_no_old_clocks() -> None:
    """A plain start that failed, in an open episode: the delayed restart keeps none of
    the old process's clocks (its start, its health) and says why the spawn failed."""
    state = _feeder(HEALTHY, attempts=1, healthy_since=50.0, started_at=5.0)
    after, actions = _run(state, SpawnFinished("feeder", False, "ENOENT"))
    assert after.components["feeder"] == ComponentState(
        stage=Stage.BACKOFF,
        reason="ENOENT",
        probes={"process": ProbeState(False, "spawn_failed", 0), "heartbeat": OK},
        attempts=1,
        restart_at=NOW + HEAL.restart_backoff[0],
    )
    assert actions == [LogTransition("feeder", Stage.OBSERVE, Stage.BACKOFF, "ENOENT", 1, 3)]


@pytest.mark.parametrize(
    ("stage", "reason"),
    [(Stage.OBSERVE, "ENOENT"), (Stage.RESTART, "dependency_failing")],
    ids=["a plain start keeps watching", "a restart is parked"],
)
def test_a_failed_spawn_while_a_dependency_fails_parks_without_deadlines(
    stage: Stage, reason: str
) -> None:
    state = replace(
        _feeder(HEALTHY, stage=stage, attempts=1), dependencies={"exchange": FAILING_DEP}
    )
    after, actions = _run(state, SpawnFinished("feeder", False, "ENOENT"))
    feeder = after.components["feeder"]
    assert (feeder.stage, feeder.reason) == (
        Stage.OBSERVE if stage is Stage.OBSERVE else Stage.BACKOFF,
        reason,
    )
    assert (feeder.restart_at, feeder.verify_until, feeder.attempts) == (None, None, 1)
    assert not any(isinstance(a, RestartProcess) for a in actions)


def test_a_failure_under_a_failsafe_logs_its_parking_as_failsafe_active() -> None:
    state = replace(HEALTHY, failsafe=FailsafeState("maintenance", "alice"))
    after, actions = _run(state, ProcessExited("feeder"))
    assert actions == [
        LogTransition("feeder", Stage.OBSERVE, Stage.BACKOFF, "failsafe_active", 0, 3)
    ]
    assert after.components["feeder"].reason == "failsafe_active"


@pytest.mark.parametrize(
    "fields",
    [{"stage": Stage.FAILSAFE, "attempts": 3}, {"stage": Stage.BACKOFF, "held": True}],
    ids=["latched", "held"],
)
def test_a_failed_spawn_of_a_latched_or_held_component_restarts_nothing(
    fields: dict[str, object],
) -> None:
    latched = _feeder(HEALTHY, **fields)
    state = replace(latched, failsafe=FailsafeState(LAST, "autoheal", "feeder"))
    after, actions = _run(state, SpawnFinished("feeder", False, "ENOENT"))
    assert actions == []
    feeder = after.components["feeder"]
    assert feeder == replace(
        state.components["feeder"],
        probes={"process": ProbeState(False, "spawn_failed", 0), "heartbeat": OK},
    )


# ------------------------------------------------------------------ deadlines in a chain

#: Zero delays (valid: a backoff may be 0 s, a stable reset too): one deadline's
#: handling makes the next one due at the same ``now``.
ZERO = make_policy(replace(HEAL, restart_backoff=(0.0,), stable_reset=0.0))


def test_a_deadline_that_makes_another_due_now_is_followed_before_the_observation() -> None:
    """``step`` handles every deadline due, chains included, before the observation:
    a verification that runs out schedules a restart due at once, which is made
    (the spawn that finishes next is this restart's); a restart verified ends its
    episode at once when stable_reset is 0 (the next failure is a fresh episode's)."""
    unverified = _feeder(
        HEALTHY,
        stage=Stage.BACKOFF,
        attempts=1,
        verify_until=NOW,
        started_at=NOW - 1.0,
        probes={"process": OK, "heartbeat": ProbeState()},
    )
    d = step(unverified, SpawnFinished("feeder", True), NOW, ZERO)
    feeder = d.state.components["feeder"]
    assert (feeder.stage, feeder.attempts, feeder.reason) == (Stage.BACKOFF, 2, "verifying")
    assert feeder.verify_until == NOW + HEAL.verify_window
    assert RestartProcess("feeder", 2, 3, "verify_timeout") in d.actions

    verified = _feeder(
        HEALTHY, stage=Stage.BACKOFF, attempts=1, verify_until=NOW + 50.0, started_at=NOW - 10.0
    )
    d = step(verified, ProcessExited("feeder"), NOW, ZERO)
    assert [a for a in d.actions if isinstance(a, RestartProcess)] == [
        RestartProcess("feeder", 1, 3, "process_exited")
    ]

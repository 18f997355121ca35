"""What a probe's result does, exactly (``core/checks.py``, issue 28, docs/mutation.md).

A dependency that fails ``failures_before_degraded`` checks in a row degrades the
runtime and says so; its recovery says so once and resumes what it paused; a
component's failed check is recorded with its count, its reason and the end of its
health. Pure: ``step`` with a fake ``now``.
"""

from __future__ import annotations

from dataclasses import replace

from autoheal.core.actions import RestartProcess, SendNotice
from autoheal.core.machine import step
from autoheal.core.observations import Observation, ProbeFailed, ProbeSucceeded, ProcessExited
from autoheal.core.policy import ComponentSpec, Policy
from autoheal.core.stages import Stage
from autoheal.core.state import ComponentState, DependencyState, ProbeState, RuntimeState
from autoheal.core.state import initial_state as _initial
from tests.core.conftest import HEAL, make_policy

POLICY = make_policy()
NOW = 100.0


def _run(state: RuntimeState, *observations: Observation) -> tuple[RuntimeState, list[object]]:
    actions: list[object] = []
    for obs in observations:
        d = step(state, obs, NOW, POLICY)
        state = d.state
        actions.extend(d.actions)
    return state, actions


HEALTHY, _ = _run(
    _initial(POLICY),
    ProbeSucceeded("exchange", "http"),
    *(ProbeSucceeded(c, p) for c in ("feeder", "trader") for p in ("process", "heartbeat")),
)
FAIL = ProbeFailed("exchange", "http", "CONN_TIMEOUT")
DEGRADED_WORDS = "runtime DEGRADED: new entries paused, no restarts of its dependents"


def test_a_dependency_degrades_after_n_failures_and_recovers_once_exactly() -> None:
    suspect, actions = _run(HEALTHY, FAIL)
    assert suspect.dependencies["exchange"] == DependencyState(
        {"http": ProbeState(False, "CONN_TIMEOUT", 1)}, False, ""
    )
    assert actions == []
    failing, actions = _run(suspect, ProbeFailed("exchange", "http", "CONN_REFUSED"))
    actions = [a for a in actions if isinstance(a, SendNotice)]
    assert failing.dependencies["exchange"] == DependencyState(
        {"http": ProbeState(False, "CONN_REFUSED", 2)}, True, "CONN_REFUSED"
    )
    assert actions == [
        SendNotice(
            "degraded",
            "exchange",
            "CONN_REFUSED",
            f"dependency exchange failing (CONN_REFUSED); {DEGRADED_WORDS}",
        )
    ]
    still, actions = _run(failing, FAIL)
    assert still.dependencies["exchange"].reason == "CONN_TIMEOUT"
    assert not any(isinstance(a, SendNotice) for a in actions)
    back, actions = _run(still, ProbeSucceeded("exchange", "http"))
    actions = [a for a in actions if isinstance(a, SendNotice)]
    assert back.dependencies["exchange"] == DependencyState({"http": ProbeState(True, "", 0)})
    assert actions == [
        SendNotice("recovered", "exchange", "recovered", "dependency exchange recovered")
    ]
    assert _run(back, ProbeSucceeded("exchange", "http"))[1] == []  # well: nothing to say


def test_a_check_of_a_probe_not_declared_is_recorded() -> None:
    state, _ = _run(HEALTHY, ProbeFailed("feeder", "ws", "ws_stale"))
    assert state.components["feeder"].probes["ws"] == ProbeState(False, "ws_stale", 1)
    state, _ = _run(HEALTHY, ProbeFailed("exchange", "dns", "NXDOMAIN"))
    assert state.dependencies["exchange"].probes["dns"] == ProbeState(False, "NXDOMAIN", 1)


def test_a_failed_check_ends_the_health_and_names_its_reason() -> None:
    healthy = replace(
        HEALTHY,
        components={
            **HEALTHY.components,
            "feeder": replace(HEALTHY.components["feeder"], healthy_since=5.0),
        },
    )
    state, _ = _run(healthy, ProbeFailed("feeder", "heartbeat", "heartbeat_stale"))
    feeder = state.components["feeder"]
    assert (feeder.stage, feeder.reason, feeder.healthy_since) == (
        Stage.OBSERVE,
        "heartbeat_stale",
        None,
    )
    state, _ = _run(state, ProbeSucceeded("feeder", "heartbeat"))
    assert state.components["feeder"].probes["heartbeat"] == ProbeState(True, "", 0)


def test_a_hard_failure_counts_even_while_a_dependency_is_suspect() -> None:
    feeder = replace(HEALTHY.components["feeder"], held=True)
    held = replace(HEALTHY, components={**HEALTHY.components, "feeder": feeder})
    state, _ = _run(held, FAIL, ProcessExited("feeder"))
    assert state.components["feeder"].probes["process"] == ProbeState(False, "process_exited", 1)


# ------------------------------------------------------------------ resuming dependents

FAILING = DependencyState({"http": ProbeState(False, "CONN_TIMEOUT", 2)}, True, "CONN_TIMEOUT")
DEAD = {"process": ProbeState(False, "process_exited", 1), "heartbeat": ProbeState()}
STALE = {"process": ProbeState(True), "heartbeat": ProbeState(False, "heartbeat_stale", 1)}
PAUSED = ComponentState(stage=Stage.BACKOFF, reason="dependency_failing")


def _recover(feeder: ComponentState, trader: ComponentState) -> tuple[RuntimeState, list]:
    state = replace(
        HEALTHY,
        components={"feeder": feeder, "trader": trader},
        dependencies={"exchange": FAILING},
    )
    return _run(state, ProbeSucceeded("exchange", "http"))


def test_a_recovered_dependency_restarts_the_dead_it_paused_not_the_held() -> None:
    held = replace(PAUSED, probes=DEAD, held=True)
    after, actions = _recover(held, replace(PAUSED, probes=DEAD))
    restarts = [a for a in actions if isinstance(a, RestartProcess)]
    assert [r.component for r in restarts] == ["trader"]
    assert after.components["feeder"] == held


def test_a_recovered_dependency_verifies_afresh_what_it_paused_and_only_that() -> None:
    observing = ComponentState(probes=STALE, reason="heartbeat_stale")
    after, actions = _recover(observing, replace(PAUSED, probes=STALE))
    assert not any(isinstance(a, RestartProcess) for a in actions)  # a soft failure waits
    assert after.components["trader"].verify_until == NOW + HEAL.verify_window
    assert after.components["feeder"].verify_until is None  # it was not paused


def test_a_recovered_dependency_leaves_what_another_failing_one_still_blocks() -> None:
    policy = Policy(
        components={
            "feeder": ComponentSpec("feeder", ("process",), ("exchange", "db"), True, HEAL),
            "trader": ComponentSpec("trader", ("process",), ("exchange",), True, HEAL),
        },
        dependencies={"exchange": ("http",), "db": ("tcp",)},
        failures_before_degraded=2,
    )
    paused = ComponentState(
        stage=Stage.BACKOFF, reason="dependency_failing", probes={"process": ProbeState(True)}
    )
    state = replace(
        _initial(policy),
        components={"feeder": paused, "trader": paused},
        dependencies={
            "exchange": FAILING,
            "db": DependencyState({"tcp": ProbeState(False, "CONN_REFUSED", 2)}, True, "x"),
        },
    )
    d = step(state, ProbeSucceeded("exchange", "http"), NOW, policy)
    assert not any(isinstance(a, RestartProcess) for a in d.actions)
    assert d.state.components["feeder"] == paused  # still paused: no verify window begins
    assert d.state.components["trader"].verify_until == NOW + HEAL.verify_window  # resumed


def test_a_failure_while_its_dependency_fails_is_recorded_not_restarted() -> None:
    failing, _ = _run(HEALTHY, FAIL, FAIL)
    state, actions = _run(failing, ProcessExited("feeder"))
    assert state.components["feeder"].reason == "process_exited"
    assert state.components["feeder"].stage is Stage.OBSERVE
    assert not any(isinstance(a, RestartProcess) for a in actions)

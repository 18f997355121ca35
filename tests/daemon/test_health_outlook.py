"""``health_v2.json``'s ``outlook`` per component (issue 23): built from the core's
outlook with its monotonic deadlines moved to unix seconds, beside the fields older
readers use, and without making the document change as the seconds run down."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core import (
    DeadlineReached,
    ProbeSucceeded,
    ProcessExited,
    SpawnFinished,
    initial_state,
    step,
)
from autoheal.core.policy import ComponentSpec, HealPolicy, Policy
from autoheal.core.state import RuntimeState
from autoheal.daemon.health import build_health, content_key

pytestmark = [pytest.mark.timeout(60)]

HEAL = HealPolicy(restart_backoff=(15.0, 30.0), max_restarts=3, stable_reset=600.0)
POLICY = Policy(
    components={
        "feeder": ComponentSpec("feeder", ("process",), heal=HEAL),
        "trader": ComponentSpec("trader", ("process",), heal=HEAL),
    }
)
TO_WALL = 1_795_000_000.0  # monotonic 0 is this unix moment


def build(state: RuntimeState, now: float, jitter: float = 0.0) -> dict:  # type: ignore[type-arg]
    return build_health(
        state,
        POLICY,
        readings={},
        pids={},
        to_wall=TO_WALL + jitter,
        now_wall=TO_WALL + now,
        daemon={"pid": 1},
    )


def in_backoff() -> RuntimeState:
    """The feeder restarted once (at 10) and failed again at 20: attempt 2 due at 35."""
    state = initial_state(POLICY)
    for name in ("feeder", "trader"):
        state = step(state, ProbeSucceeded(name, "process"), 0.0, POLICY).state
    state = step(state, ProcessExited("feeder"), 10.0, POLICY).state
    state = step(state, SpawnFinished("feeder", True), 10.5, POLICY).state
    return step(state, ProcessExited("feeder"), 20.0, POLICY).state


def test_a_scheduled_restart_in_unix_seconds_with_its_budget() -> None:
    doc = build(in_backoff(), 21.0)
    feeder = doc["components"]["feeder"]
    assert feeder["outlook"] == {
        "next": "scheduled",
        "reason": "process_exited",
        "attempt": 2,
        "attempts": 1,
        "max_restarts": 3,
        "attempts_left": 2,
        "restart_at": TO_WALL + 35.0,
        "verify_until": None,
        "attempts_reset_at": None,
        "stable_reset_s": 600.0,
        "on_failure": "restart",
        "on_failure_delay_s": 30.0,
    }
    # What readers of schema 2 used is still there, and agrees.
    assert feeder["next_restart_at"] == feeder["outlook"]["restart_at"]
    assert (feeder["attempts"], feeder["max_restarts"]) == (1, 3)
    assert doc["components"]["trader"]["outlook"]["next"] == "healthy"


def test_the_reset_moment_once_verified_and_healthy() -> None:
    state = in_backoff()
    state = step(state, DeadlineReached(), 35.0, POLICY).state  # attempt 2
    state = step(state, SpawnFinished("feeder", True), 36.0, POLICY).state
    state = step(state, DeadlineReached(), 36.0 + HEAL.verify_min_uptime, POLICY).state
    view = build(state, 100.0)["components"]["feeder"]["outlook"]
    assert (view["next"], view["attempts"], view["attempts_left"]) == ("healthy", 2, 1)
    assert view["attempts_reset_at"] == TO_WALL + 36.0 + HEAL.verify_min_uptime + 600.0
    assert (view["on_failure"], view["on_failure_delay_s"]) == ("restart", 30.0)


@given(later=st.floats(min_value=0.0, max_value=14.0, allow_nan=False))
def test_the_countdown_alone_does_not_rewrite_the_document(later: float) -> None:
    """Only moments are written, no "in N s": time passing changes nothing a reader
    acts on, so ``health_v2.json`` is not rewritten for it (``content_key``)."""
    state = in_backoff()
    assert content_key(build(state, 21.0)) == content_key(build(state, 21.0 + later))


@given(jitter=st.floats(min_value=-2e-5, max_value=2e-5, allow_nan=False))
def test_the_wall_clock_shift_taken_anew_does_not_rewrite_the_document(jitter: float) -> None:
    """Each document shifts monotonic deadlines by ``wall() - now()`` read anew, which
    differs by microseconds: during a BACKOFF (and the ``stable_reset`` after it) that
    rewrote ``health_v2.json`` at every beat. Deadlines count to 0.1 s, a new one does."""
    state = in_backoff()  # restart at 35.0 (+ TO_WALL): far from a 0.1 s boundary
    assert content_key(build(state, 21.0)) == content_key(build(state, 21.0, jitter))
    moved = replace(state, components={**state.components, "feeder": replace(
        state.components["feeder"], restart_at=35.2)})  # fmt: skip
    assert content_key(build(moved, 21.0)) != content_key(build(state, 21.0))


DEP_POLICY = Policy(
    components={
        "feeder": ComponentSpec("feeder", ("process",), ("exchange",), heal=HEAL),
        "trader": ComponentSpec("trader", ("process",), heal=HEAL),
    },
    dependencies={"exchange": ("http",)},
)


@given(
    reasons=st.lists(st.sampled_from(("", "stable", "heartbeat_stale")), min_size=2, max_size=2),
    held=st.lists(st.booleans(), min_size=2, max_size=2),
    probe_ok=st.lists(st.sampled_from((True, False, None)), min_size=2, max_size=2),
    failsafe=st.booleans(),
    dependency_failing=st.booleans(),
)
def test_quiet_components_outlook_is_the_cores(
    reasons: list[str],
    held: list[bool],
    probe_ok: list[bool | None],
    failsafe: bool,
    dependency_failing: bool,
) -> None:
    """The cache for quiet components (OBSERVE, no attempt, no deadline) gives exactly
    what the core's outlook gives, whatever came before it in the cache."""
    from autoheal.core.outlook import outlook
    from autoheal.core.state import DependencyState, FailsafeState, ProbeState
    from autoheal.daemon.health import outlook_doc

    state = initial_state(DEP_POLICY)
    components = {
        name: replace(
            cs, reason=reasons[i], held=held[i], probes={"process": ProbeState(probe_ok[i])}
        )
        for i, (name, cs) in enumerate(sorted(state.components.items()))
    }
    state = replace(
        state,
        components=components,
        dependencies={"exchange": DependencyState(failing=dependency_failing)},
        failsafe=FailsafeState("test", "alice") if failsafe else None,
    )
    doc = build_health(
        state, DEP_POLICY, readings={}, pids={}, to_wall=TO_WALL, now_wall=TO_WALL + 5.0,
        daemon={"pid": 1},
    )  # fmt: skip
    for name in components:
        expected = outlook_doc(outlook(state, DEP_POLICY, name, 5.0), to_wall=TO_WALL)
        assert doc["components"][name]["outlook"] == expected

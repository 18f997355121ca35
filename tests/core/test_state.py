from __future__ import annotations

import orjson

from autoheal.core import ProcessExited, SpawnFinished, Stage, initial_state, step
from autoheal.core.policy import Policy
from autoheal.core.state import shift_deadlines, state_from_dict, state_to_dict


def test_state_round_trip_and_shift(policy: Policy) -> None:
    state = initial_state(policy)
    state = step(state, ProcessExited("feeder"), 100.0, policy).state
    state = step(state, SpawnFinished("feeder", True), 101.0, policy).state
    doc = orjson.loads(orjson.dumps(state_to_dict(shift_deadlines(state, 5000.0))))
    assert doc["components"]["feeder"]["stage"] == "BACKOFF"
    assert doc["components"]["feeder"]["verify_until"] == 101.0 + 90.0 + 5000.0
    assert doc["components"]["feeder"]["started_at"] == 101.0 + 5000.0
    back = shift_deadlines(state_from_dict(doc, policy), -5000.0)
    assert back == state


def test_state_from_damaged_doc_keeps_failsafe(policy: Policy) -> None:
    doc = {
        "components": {"feeder": {"stage": "FAILSAFE", "attempts": "x", "probes": 7}, "gone": {}},
        "dependencies": [],
    }
    state = state_from_dict(doc, policy)
    assert state.components["feeder"].stage is Stage.FAILSAFE
    assert state.components["feeder"].attempts == 0
    assert state.failsafe is not None
    assert set(state.components) == {"feeder", "trader"}


def test_state_from_garbage_is_fresh(policy: Policy) -> None:
    assert state_from_dict({"components": "nope"}, policy) == initial_state(policy)


def test_starts_at_boot_decisions() -> None:
    from autoheal.core.queries import starts_at_boot
    from autoheal.core.state import ComponentState

    fresh = ComponentState()
    assert starts_at_boot(fresh, autostart=True)
    assert not starts_at_boot(fresh, autostart=False)
    assert not starts_at_boot(ComponentState(held=True), autostart=True)
    assert not starts_at_boot(ComponentState(stage=Stage.FAILSAFE), autostart=True)
    waiting = ComponentState(stage=Stage.BACKOFF, restart_at=5.0, attempts=2)
    assert not starts_at_boot(waiting, autostart=True)
    verifying = ComponentState(stage=Stage.BACKOFF, verify_until=5.0, attempts=1)
    assert starts_at_boot(verifying, autostart=False)  # a restart was in progress
    assert starts_at_boot(ComponentState(stage=Stage.RESTART, attempts=1), autostart=False)


def test_state_from_doc_without_started_at_is_none_issue9(policy: Policy) -> None:
    """A state file written before issue 9 has no ``started_at``: unknown, not zero."""
    state = step(initial_state(policy), ProcessExited("feeder"), 100.0, policy).state
    state = step(state, SpawnFinished("feeder", True), 101.0, policy).state
    doc = orjson.loads(orjson.dumps(state_to_dict(state)))
    del doc["components"]["feeder"]["started_at"]
    assert state_from_dict(doc, policy).components["feeder"].started_at is None

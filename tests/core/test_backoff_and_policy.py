from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.backoff import delay_for
from autoheal.core.policy import ComponentSpec, HealPolicy, Policy

delays = st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), min_size=1, max_size=8)


@given(seq=delays, attempts=st.integers(min_value=0, max_value=100))
def test_delay_for_follows_sequence_and_caps(seq: list[float], attempts: int) -> None:
    policy = HealPolicy(restart_backoff=tuple(sorted(seq)))
    delay = delay_for(attempts, policy)
    if attempts == 0:
        assert delay == 0.0
    else:
        assert delay in policy.restart_backoff
        assert delay <= policy.restart_backoff[-1]
        assert delay_for(attempts + 1, policy) >= delay


def test_delay_for_runbook_sequence() -> None:
    policy = HealPolicy()
    assert [delay_for(n, policy) for n in range(7)] == [0, 15, 30, 60, 120, 300, 300]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failures_before_restart": 0}, "failures_before_restart"),
        ({"restart_backoff": ()}, "restart_backoff"),
        ({"restart_backoff": (30.0, 15.0)}, "decrease"),
        ({"restart_backoff": (-1.0,)}, "negative"),
        ({"verify_window": 0}, "verify_window"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"stable_reset": -5}, "stable_reset"),
        ({"verify_min_uptime": -1}, "verify_min_uptime must not be negative"),
        ({"verify_window": 1.0}, "verify_min_uptime must not exceed verify_window"),
    ],
)
def test_heal_policy_rejects(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealPolicy(**kwargs)


def test_policy_rejects_unknown_dependency() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Policy(components={"a": ComponentSpec("a", ("process",), ("nope",))})

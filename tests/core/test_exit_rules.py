"""Exit-code rules and debug on retry (``core/exit_rules.py``, ``core/healing.py``; issue 23).

A failsafe code enters FAILSAFE at once, 0 restarts, the code in every reason; a
restart code restarts a verified process at once without spending an attempt, and is
an ordinary failure before verification, so a tight loop still ends in FAILSAFE. A
restart after a failure is marked ``debug`` for a component with ``debug_on_retry``;
an operator's restart, a start and a planned exit's restart never are. Pure: ``step``
with a fake clock.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core import reasons as R
from autoheal.core.actions import RestartProcess, SendNotice, StopProcess, WriteStop
from autoheal.core.machine import step
from autoheal.core.observations import (
    ConfigReloaded,
    DeadlineReached,
    Observation,
    OperatorRestarted,
    ProbeSucceeded,
    ProcessExited,
    SpawnFinished,
)
from autoheal.core.policy import ComponentSpec, HealPolicy, Policy
from autoheal.core.stages import Stage
from autoheal.core.state import RuntimeState, initial_state
from tests.core.conftest import HEAL

pytestmark = [pytest.mark.timeout(60)]


def _policy(
    failsafe: frozenset[int] = frozenset(),
    restart: frozenset[int] = frozenset(),
    debug: bool = False,
    heal: HealPolicy = HEAL,
) -> Policy:
    spec = ComponentSpec(
        "feeder",
        ("process",),
        (),
        True,
        heal,
        failsafe_exit_codes=failsafe,
        restart_exit_codes=restart,
        debug_on_retry=debug,
    )
    return Policy(components={"feeder": spec})


class Run:
    """Steps observations at one second apart; keeps every action."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.now = 1000.0
        self.state: RuntimeState = initial_state(policy)
        self.actions: list[object] = []
        self.feed(ProbeSucceeded("feeder", "process"))

    def feed(self, *observations: Observation, dt: float = 1.0) -> list[object]:
        new: list[object] = []
        for obs in observations:
            self.now += dt
            d = step(self.state, obs, self.now, self.policy)
            self.state = d.state
            new.extend(d.actions)
        self.actions.extend(new)
        return new

    def verify(self) -> None:
        """Spawned, passing, up past verify_min_uptime: verified."""
        self.feed(SpawnFinished("feeder", True), ProbeSucceeded("feeder", "process"))
        self.feed(DeadlineReached(), dt=HEAL.verify_min_uptime + 1)
        assert self.state.components["feeder"].stage is Stage.OBSERVE


def test_a_failsafe_code_enters_failsafe_at_once_with_the_code_in_every_reason() -> None:
    run = Run(_policy(failsafe=frozenset({78})))
    actions = run.feed(ProcessExited("feeder", "process_exited", 78))
    cs = run.state.components["feeder"]
    assert cs.stage is Stage.FAILSAFE and cs.reason == "exit_code_78"
    assert cs.restarts == 0 and cs.attempts == 0
    assert not [a for a in actions if isinstance(a, RestartProcess)]
    assert StopProcess("feeder", "exit_code_78") in actions
    assert run.state.failsafe is not None
    assert run.state.failsafe.reason.startswith("feeder: exit_code_78 (exited with code 78")
    stop = next(a for a in actions if isinstance(a, WriteStop))
    assert "exit_code_78" in stop.reason
    notice = next(a for a in actions if isinstance(a, SendNotice))
    assert notice.kind == "failsafe" and notice.reason == "exit_code_78"
    assert "code 78" in notice.message


def test_without_the_rule_the_same_exit_is_restarted() -> None:
    run = Run(_policy())
    actions = run.feed(ProcessExited("feeder", "process_exited", 78))
    assert [a for a in actions if isinstance(a, RestartProcess)]
    assert run.state.failsafe is None


def test_a_failsafe_code_while_the_restart_is_spawning_is_failsafe_too() -> None:
    run = Run(_policy(failsafe=frozenset({78})))
    run.feed(ProcessExited("feeder", "process_exited", 1))
    assert run.state.components["feeder"].stage is Stage.RESTART
    run.feed(ProcessExited("feeder", "process_exited", 78))
    assert run.state.components["feeder"].stage is Stage.FAILSAFE
    # The spawn's late report changes nothing: still latched, nothing restarted.
    actions = run.feed(SpawnFinished("feeder", True))
    assert run.state.components["feeder"].stage is Stage.FAILSAFE
    assert not [a for a in actions if isinstance(a, RestartProcess)]


@given(code=st.integers(-64, 255) | st.none())
def test_other_codes_and_unknown_ones_are_ordinary_exits(code: int | None) -> None:
    run = Run(_policy(failsafe=frozenset({78}), restart=frozenset({75})))
    actions = run.feed(ProcessExited("feeder", "process_exited", code))
    restarts = [a for a in actions if isinstance(a, RestartProcess)]
    if code == 78:
        assert not restarts and run.state.components["feeder"].stage is Stage.FAILSAFE
    elif code == 75:
        assert restarts == [RestartProcess("feeder", 0, HEAL.max_restarts, "exit_code_75")]
    else:
        assert restarts == [RestartProcess("feeder", 1, HEAL.max_restarts, R.PROCESS_EXITED)]


def test_a_restart_code_of_a_verified_process_spends_no_attempt() -> None:
    run = Run(_policy(restart=frozenset({0})))
    for _ in range(10):  # far more than max_restarts
        actions = run.feed(ProcessExited("feeder", "process_exited", 0))
        assert [a for a in actions if isinstance(a, RestartProcess)] == [
            RestartProcess("feeder", 0, HEAL.max_restarts, "exit_code_0")
        ]
        run.verify()
    assert run.state.failsafe is None
    assert run.state.components["feeder"].restarts == 10


def test_a_restart_code_in_a_tight_loop_still_ends_in_failsafe() -> None:
    run = Run(_policy(restart=frozenset({0})))
    run.feed(ProcessExited("feeder", "process_exited", 0))  # verified: planned, free
    for _ in range(20):
        if run.state.components["feeder"].stage is Stage.FAILSAFE:
            break
        run.feed(SpawnFinished("feeder", True))
        run.feed(ProcessExited("feeder", "process_exited", 0))  # before verification
        run.feed(DeadlineReached(), dt=max(HEAL.restart_backoff) + 1)
    cs = run.state.components["feeder"]
    assert cs.stage is Stage.FAILSAFE and cs.reason == R.MAX_RESTARTS_EXCEEDED
    assert cs.restarts == HEAL.max_restarts + 1  # the planned one, then the budget


def test_a_code_in_both_lists_is_refused() -> None:
    with pytest.raises(ValueError, match="both failsafe and restart"):
        _policy(failsafe=frozenset({78}), restart=frozenset({78, 0}))


def _restarts(actions: list[object]) -> list[RestartProcess]:
    return [a for a in actions if isinstance(a, RestartProcess)]


def test_restarts_after_a_failure_are_debug_until_verified() -> None:
    run = Run(_policy(debug=True))
    first = _restarts(run.feed(ProcessExited("feeder", "process_exited", 1)))
    assert [a.debug for a in first] == [True]
    # It exits again while verifying: the delayed restart is debug too.
    run.feed(SpawnFinished("feeder", True), ProcessExited("feeder", "process_exited", 1))
    later = _restarts(run.feed(DeadlineReached(), dt=max(HEAL.restart_backoff) + 1))
    assert [a.debug for a in later] == [True]
    run.verify()
    # Verified: an operator's restart is not debug ...
    op = _restarts(run.feed(OperatorRestarted("feeder", "operator", "me")))
    assert [a.debug for a in op] == [False]
    run.verify()
    # ... nor a restart for a new config; the next failure is debug again.
    cfg = _restarts(run.feed(ConfigReloaded(frozenset({"feeder"}))))
    assert [a.debug for a in cfg] == [False]
    run.verify()
    # (attempts are not reset yet, stable_reset has not passed: after its backoff)
    run.feed(ProcessExited("feeder", "process_exited", 1))
    again = _restarts(run.feed(DeadlineReached(), dt=max(HEAL.restart_backoff) + 1))
    assert [a.debug for a in again] == [True]


def test_no_debug_without_debug_on_retry_nor_for_a_planned_exit() -> None:
    run = Run(_policy())
    assert [a.debug for a in _restarts(run.feed(ProcessExited("feeder", "process_exited", 1)))] == [
        False
    ]
    run = Run(_policy(debug=True, restart=frozenset({0})))
    assert [a.debug for a in _restarts(run.feed(ProcessExited("feeder", "process_exited", 0)))] == [
        False
    ]

"""K of N per probe (``core/judgement.py``, ``core/checks.py``; issue 23).

A probe with a ``FailureWindow(failures=K, within=N)`` restarts its component when K
of its last N *counted* checks failed; without one, the consecutive rule holds. A
1-0-1-0 flapping probe restarts under K=2, N=4 and never under the consecutive rule.
Pure: ``step`` with a fake clock (one check a second), no sleeps.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from autoheal.core.actions import RestartProcess, SendNotice
from autoheal.core.judgement import FailureWindow, judged_failing, pushed
from autoheal.core.machine import step
from autoheal.core.observations import (
    DeadlineReached,
    Observation,
    ProbeFailed,
    ProbeSucceeded,
    SpawnFinished,
)
from autoheal.core.policy import ComponentSpec, Policy
from autoheal.core.queries import deadlines
from autoheal.core.stages import Stage
from autoheal.core.state import RuntimeState, initial_state, state_from_dict, state_to_dict
from tests.core.conftest import HEAL

pytestmark = [pytest.mark.timeout(120)]

FLAP = FailureWindow(failures=2, within=4)


def _policy(rule: FailureWindow | None, dep_rule: FailureWindow | None = None) -> Policy:
    windows = {} if rule is None else {"heartbeat": rule}
    return Policy(
        components={
            "feeder": ComponentSpec(
                "feeder", ("process", "heartbeat"), ("exchange",), True, HEAL, windows
            ),
        },
        dependencies={"exchange": ("http",)},
        failures_before_degraded=2,
        dependency_windows={} if dep_rule is None else {"exchange": {"http": dep_rule}},
    )


class Clock:
    """A fake monotonic clock: each check comes one second after the last."""

    def __init__(self) -> None:
        self.now = 1000.0

    def tick(self) -> float:
        self.now += 1.0
        return self.now


def _healthy(policy: Policy, clock: Clock) -> RuntimeState:
    state = initial_state(policy)
    for obs in (
        ProbeSucceeded("exchange", "http"),
        ProbeSucceeded("feeder", "process"),
        ProbeSucceeded("feeder", "heartbeat"),
    ):
        state = step(state, obs, clock.tick(), policy).state
    return state


def _check(ok: bool) -> Observation:
    return (
        ProbeSucceeded("feeder", "heartbeat")
        if ok
        else ProbeFailed("feeder", "heartbeat", "heartbeat_stale")
    )


def _first_restart(policy: Policy, results: list[bool]) -> int | None:
    """The index of the check after which the feeder was restarted, or None."""
    clock = Clock()
    state = _healthy(policy, clock)
    for i, ok in enumerate(results):
        d = step(state, _check(ok), clock.tick(), policy)
        state = d.state
        if any(isinstance(a, RestartProcess) for a in d.actions):
            return i
    return None


def _model_k_of_n(results: list[bool], k: int, n: int) -> int | None:
    window: list[bool] = []
    for i, ok in enumerate(results):
        window = [*window, not ok][-n:]
        if sum(window) >= k:
            return i
    return None


def _model_consecutive(results: list[bool], k: int) -> int | None:
    run = 0
    for i, ok in enumerate(results):
        run = 0 if ok else run + 1
        if run >= k:
            return i
    return None


def test_a_flapping_probe_restarts_under_k_of_n_and_never_in_a_row() -> None:
    flapping = [False, True] * 20  # 1-0-1-0: failed, passed, failed, ...
    assert _first_restart(_policy(FLAP), flapping) == 2  # the second failure within 4
    assert _first_restart(_policy(None), flapping) is None  # never two in a row


@settings(max_examples=200, deadline=None)
@given(
    results=st.lists(st.booleans(), max_size=40),
    k=st.integers(1, 5),
    extra=st.integers(0, 5),
)
def test_k_of_n_restarts_exactly_when_the_model_says(
    results: list[bool], k: int, extra: int
) -> None:
    rule = FailureWindow(k, k + extra)
    assert _first_restart(_policy(rule), results) == _model_k_of_n(results, k, k + extra)


@settings(max_examples=100, deadline=None)
@given(results=st.lists(st.booleans(), max_size=40))
def test_without_a_window_the_consecutive_rule_holds(results: list[bool]) -> None:
    expected = _model_consecutive(results, HEAL.failures_before_restart)
    assert _first_restart(_policy(None), results) == expected


def test_failures_while_a_dependency_is_suspect_do_not_enter_the_window() -> None:
    policy, clock = _policy(FLAP), Clock()
    state = _healthy(policy, clock)
    state = step(state, ProbeFailed("exchange", "http", "CONN_TIMEOUT"), clock.tick(), policy).state
    for ok in (False, True, False, True):
        d = step(state, _check(ok), clock.tick(), policy)
        state = d.state
        assert not any(isinstance(a, RestartProcess) for a in d.actions)
    # Only the healthy check before the dependency's failure is there.
    assert state.components["feeder"].probes["heartbeat"].window == (False,)
    # The dependency passes again: checks count from here.
    state = step(state, ProbeSucceeded("exchange", "http"), clock.tick(), policy).state
    state = step(state, _check(False), clock.tick(), policy).state
    assert state.components["feeder"].probes["heartbeat"].window == (False, True)


def test_the_window_is_reset_by_a_restart_and_survives_the_state_file() -> None:
    policy, clock = _policy(FLAP), Clock()
    state = _healthy(policy, clock)
    state = step(state, _check(False), clock.tick(), policy).state
    state = step(state, _check(True), clock.tick(), policy).state
    assert state.components["feeder"].probes["heartbeat"].window == (False, True, False)
    doc = state_to_dict(state)
    assert doc["components"]["feeder"]["probes"]["heartbeat"]["window"] == [False, True, False]
    assert state_from_dict(doc, policy) == state
    # An older state file has no window: it loads, empty.
    del doc["components"]["feeder"]["probes"]["heartbeat"]["window"]
    old = state_from_dict(doc, policy)
    assert old.components["feeder"].probes["heartbeat"].window == ()
    # A damaged one loads empty too.
    doc["components"]["feeder"]["probes"]["heartbeat"]["window"] = [1, "x"]
    assert state_from_dict(doc, policy).components["feeder"].probes["heartbeat"].window == ()
    # The next failure restarts (2 of 4); the restart starts the window afresh.
    d = step(state, _check(False), clock.tick(), policy)
    assert [a for a in d.actions if isinstance(a, RestartProcess)]
    assert d.state.components["feeder"].stage is Stage.RESTART
    assert d.state.components["feeder"].probes["heartbeat"].window == ()
    state = step(d.state, SpawnFinished("feeder", True), clock.tick(), policy).state
    assert state.components["feeder"].probes["heartbeat"].window == ()


def test_no_window_is_written_for_a_probe_without_one() -> None:
    policy, clock = _policy(None), Clock()
    state = step(_healthy(policy, clock), _check(False), clock.tick(), policy).state
    assert "window" not in state_to_dict(state)["components"]["feeder"]["probes"]["heartbeat"]


def test_a_flapping_dependency_degrades_under_k_of_n_only() -> None:
    def degraded(policy: Policy) -> bool:
        clock = Clock()
        state = _healthy(policy, clock)
        for ok in [False, True] * 6:
            obs: Observation = (
                ProbeSucceeded("exchange", "http")
                if ok
                else ProbeFailed("exchange", "http", "CONN_TIMEOUT")
            )
            d = step(state, obs, clock.tick(), policy)
            state = d.state
            if any(isinstance(a, SendNotice) and a.kind == "degraded" for a in d.actions):
                return True
        return False

    assert degraded(_policy(None, FLAP))
    assert not degraded(_policy(None))


@given(
    window=st.lists(st.booleans(), max_size=20).map(tuple),
    failed=st.booleans(),
    k=st.integers(1, 5),
    extra=st.integers(0, 5),
)
def test_pushed_keeps_at_most_within_newest_last(
    window: tuple[bool, ...], failed: bool, k: int, extra: int
) -> None:
    rule = FailureWindow(k, k + extra)
    out = pushed(window, failed, rule)
    assert len(out) <= rule.within
    assert out[-1] is failed
    assert judged_failing(out, rule) == (sum(out) >= k)


@pytest.mark.parametrize(
    ("failures", "within", "words"),
    [(0, 1, "failures must be at least 1"), (3, 2, "within must be at least failures")],
)
def test_a_window_refuses_what_can_never_or_always_judge(
    failures: int, within: int, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        FailureWindow(failures, within)


def test_a_window_for_an_unknown_probe_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown probes"):
        ComponentSpec("feeder", ("process",), (), True, HEAL, {"nope": FLAP})
    spec = ComponentSpec("feeder", ("process", "heartbeat"), (), True, HEAL, {"heartbeat": FLAP})
    assert replace(spec, windows={}).windows == {}


# -- stateful: checks, a dependency's checks, spawns and time, interleaved at random ----


class KOfNMachine(RuleBasedStateMachine):
    """The feeder's heartbeat under 2-of-4, among everything else that can happen.

    A model window, kept here by the rule (a check counts in OBSERVE while no
    dependency fails or is suspect; a spawn or a restart empties it), must equal the
    state's after every step; and a counted failed check without a grace period moves
    the feeder out of OBSERVE exactly when the model holds 2 failures of its last 4.
    A step with a deadline due first resynchronises the model (time decided then).
    """

    def __init__(self) -> None:
        super().__init__()
        self.policy = _policy(FLAP)
        self.clock = Clock()
        self.state = _healthy(self.policy, self.clock)
        self.model: tuple[bool, ...] = (False,)  # _healthy's passing check counted

    def _step(self, obs: Observation, dt: float = 1.0) -> list[object]:
        self.clock.now += dt
        d = step(self.state, obs, self.clock.now, self.policy)
        self.state = d.state
        if any(isinstance(a, RestartProcess) for a in d.actions):
            self.model = ()
        return list(d.actions)

    def _resync(self) -> None:
        self.model = self.state.components["feeder"].probes["heartbeat"].window

    @rule(ok=st.booleans())
    def heartbeat(self, ok: bool) -> None:
        before = self.state
        cs = before.components["feeder"]
        due = deadlines(before, self.policy)
        if due is not None and due <= self.clock.now + 1.0:
            self._step(_check(ok))
            self._resync()
            return
        exchange = before.dependencies["exchange"]
        counted = (
            cs.stage is Stage.OBSERVE
            and not exchange.failing
            and all(p.ok is not False for p in exchange.probes.values())
        )
        if counted:
            self.model = (*self.model, not ok)[-4:]
        judged = sum(self.model) >= 2
        actions = self._step(_check(ok))
        after = self.state.components["feeder"]
        if counted and not ok and cs.verify_until is None:
            assert (after.stage is not Stage.OBSERVE) == judged
        if any(isinstance(a, RestartProcess) for a in actions):
            assert after.probes["heartbeat"].window == ()

    @rule(ok=st.booleans())
    def dependency(self, ok: bool) -> None:
        self._step(
            ProbeSucceeded("exchange", "http") if ok else ProbeFailed("exchange", "http", "x")
        )
        self._resync_if_due()

    @rule()
    def spawned(self) -> None:
        self._step(SpawnFinished("feeder", True))
        self.model = ()
        self._resync_if_due()

    @rule()
    def process_passes(self) -> None:
        self._step(ProbeSucceeded("feeder", "process"))
        self._resync_if_due()

    @rule(dt=st.floats(0.0, 700.0))
    def time_passes(self, dt: float) -> None:
        self._step(DeadlineReached(), dt)
        self._resync_if_due()

    def _resync_if_due(self) -> None:
        """Only a heartbeat check, a spawn or a restart changes the window."""
        assert self.state.components["feeder"].probes["heartbeat"].window == self.model

    @invariant()
    def window_is_the_models(self) -> None:
        window = self.state.components["feeder"].probes["heartbeat"].window
        assert window == self.model
        assert len(window) <= FLAP.within


TestKOfNMachine = KOfNMachine.TestCase
TestKOfNMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)

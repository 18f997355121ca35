"""Every transition of DESIGN.md §2, driven with a fake clock (a plain float)."""

from __future__ import annotations

import pytest

from autoheal.core import (
    CommandRefusedError,
    DeadlineReached,
    IllegalCommandError,
    LogTransition,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorSetReduceOnly,
    OperatorStarted,
    OperatorStopped,
    ProbeFailed,
    ProbeSucceeded,
    ProcessExited,
    RemoveStop,
    RestartProcess,
    SendNotice,
    SpawnFinished,
    Stage,
    StartProcess,
    StopProcess,
    WriteFlags,
    WriteStop,
    initial_state,
    step,
)
from autoheal.core.machine import dor, flags_for
from autoheal.core.policy import ComponentSpec, HealPolicy, Policy
from autoheal.core.state import RuntimeState


class Runtime:
    """A tiny driver: the state, a fake clock, and the actions of the last step."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.state = initial_state(policy)
        self.now = 1000.0
        self.actions: tuple = ()
        self.wake_at: float | None = None

    def feed(self, obs) -> tuple:
        d = step(self.state, obs, self.now, self.policy)
        self.state, self.actions, self.wake_at = d.state, d.actions, d.wake_at
        return d.actions

    def at(self, t: float, obs=None) -> tuple:
        self.now = t
        return self.feed(obs or DeadlineReached())

    def healthy(self, name: str) -> None:
        self.feed(ProbeSucceeded(name, "process"))
        self.feed(ProbeSucceeded(name, "heartbeat"))

    def all_healthy(self) -> None:
        self.feed(ProbeSucceeded("exchange", "http"))
        self.healthy("feeder")
        self.healthy("trader")

    def stage(self, name: str) -> Stage:
        return self.state.components[name].stage


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


@pytest.fixture
def rt(policy: Policy) -> Runtime:
    r = Runtime(policy)
    r.all_healthy()
    return r


def test_step_all_healthy_is_dor(rt: Runtime) -> None:
    assert dor(rt.state, rt.policy)
    assert flags_for(rt.state).mode == "NORMAL"


def test_step_unknown_probes_are_not_dor(policy: Policy) -> None:
    assert not dor(initial_state(policy), policy)


def test_step_hard_failure_restarts_at_once(rt: Runtime) -> None:
    actions = rt.feed(ProcessExited("feeder"))
    assert rt.stage("feeder") is Stage.RESTART
    assert actions == (
        LogTransition("feeder", Stage.OBSERVE, Stage.RESTART, "process_exited", 1, 3),
        RestartProcess("feeder", 1, 3, "process_exited"),
    )
    assert not dor(rt.state, rt.policy)


def test_step_soft_failure_restarts_after_n_consecutive(rt: Runtime) -> None:
    assert rt.feed(ProbeFailed("feeder", "heartbeat", "heartbeat_stale")) == ()
    assert rt.stage("feeder") is Stage.OBSERVE
    assert rt.state.components["feeder"].reason == "heartbeat_stale"
    actions = rt.feed(ProbeFailed("feeder", "heartbeat", "heartbeat_stale"))
    assert RestartProcess("feeder", 1, 3, "heartbeat_stale") in actions


def test_step_soft_failure_count_resets_on_success(rt: Runtime) -> None:
    rt.feed(ProbeFailed("feeder", "heartbeat", "heartbeat_stale"))
    rt.feed(ProbeSucceeded("feeder", "heartbeat"))
    assert rt.feed(ProbeFailed("feeder", "heartbeat", "heartbeat_stale")) == ()
    assert rt.stage("feeder") is Stage.OBSERVE


def test_step_spawn_then_verify_then_observe(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    actions = rt.feed(SpawnFinished("feeder", ok=True))
    assert rt.stage("feeder") is Stage.BACKOFF
    assert kinds(actions) == ["LogTransition"]
    assert rt.wake_at == rt.now + 90.0
    spawned = rt.now
    rt.now += 1.0
    assert rt.feed(ProbeSucceeded("feeder", "heartbeat")) == ()
    # every probe passes, but the process has not been up verify_min_uptime yet
    assert rt.stage("feeder") is Stage.BACKOFF
    assert rt.wake_at == spawned + 2.0
    actions = rt.at(rt.wake_at)
    assert rt.stage("feeder") is Stage.OBSERVE
    assert actions == (LogTransition("feeder", Stage.BACKOFF, Stage.OBSERVE, "verified", 1, 3),)
    assert dor(rt.state, rt.policy)
    assert rt.state.components["feeder"].restarts == 1


def _process_only(heal: HealPolicy | None = None) -> Runtime:
    spec = ComponentSpec("worker", ("process",), heal=heal or HealPolicy())
    r = Runtime(Policy(components={"worker": spec}))
    r.feed(SpawnFinished("worker", ok=True))
    r.feed(ProbeSucceeded("worker", "process"))
    return r


def test_step_process_only_restart_is_not_verified_at_spawn_issue9() -> None:
    """Issue 9, defect 11: RESTART -> BACKOFF -> OBSERVE 1 ms after the spawn."""
    r = _process_only()
    r.feed(ProcessExited("worker"))
    assert r.stage("worker") is Stage.RESTART
    spawned = r.now
    r.feed(SpawnFinished("worker", ok=True))
    r.at(spawned + 0.001, ProbeSucceeded("worker", "process"))
    assert r.stage("worker") is Stage.BACKOFF
    # the shell is woken when the minimum uptime is over, not at the end of the window
    assert r.wake_at == spawned + 2.0
    actions = r.at(r.wake_at)
    assert r.stage("worker") is Stage.OBSERVE
    assert actions == (LogTransition("worker", Stage.BACKOFF, Stage.OBSERVE, "verified", 1, 3),)
    assert r.state.components["worker"].healthy_since == spawned + 2.0


def test_step_exit_before_min_uptime_fails_the_attempt_issue9() -> None:
    r = _process_only()
    r.feed(ProcessExited("worker"))
    spawned = r.now
    r.feed(SpawnFinished("worker", ok=True))
    r.at(spawned + 1.5, ProcessExited("worker", code=1))
    assert r.stage("worker") is Stage.BACKOFF
    assert r.state.components["worker"].restart_at == r.now + 15.0
    assert r.state.components["worker"].attempts == 1
    assert RestartProcess("worker", 2, 3, "process_exited") in r.at(r.now + 15.0)


def test_step_probe_passed_before_the_spawn_does_not_verify_issue9(rt: Runtime) -> None:
    """The old process's heartbeat, judged between the stop and the spawn, is not a pass."""
    rt.feed(ProcessExited("feeder"))
    rt.feed(ProbeSucceeded("feeder", "heartbeat"))  # still in RESTART: before the spawn
    spawned = rt.now
    rt.feed(SpawnFinished("feeder", ok=True))
    assert rt.state.components["feeder"].probes["heartbeat"].ok is None
    rt.at(spawned + 5.0)
    assert rt.stage("feeder") is Stage.BACKOFF
    rt.feed(ProbeSucceeded("feeder", "heartbeat"))
    assert rt.stage("feeder") is Stage.OBSERVE


def test_step_unverified_at_window_end_fails_the_attempt_issue9() -> None:
    """A heartbeat that keeps failing while the process stays up: verify_timeout."""
    heal = HealPolicy(verify_window=10.0, verify_min_uptime=2.0)
    spec = ComponentSpec("worker", ("process", "heartbeat"), heal=heal)
    r = Runtime(Policy(components={"worker": spec}))
    r.feed(ProcessExited("worker"))
    r.feed(SpawnFinished("worker", ok=True))
    r.at(r.now + 3.0, ProbeFailed("worker", "heartbeat", "heartbeat_stale"))
    assert r.wake_at == r.now + 7.0
    r.at(r.wake_at)
    assert r.stage("worker") is Stage.BACKOFF
    assert r.state.components["worker"].reason == "verify_timeout"
    assert r.state.components["worker"].restart_at == r.now + 15.0


def test_step_min_uptime_zero_verifies_at_once_issue9() -> None:
    r = _process_only(HealPolicy(verify_min_uptime=0.0))
    r.feed(ProcessExited("worker"))
    r.feed(SpawnFinished("worker", ok=True))
    assert r.stage("worker") is Stage.OBSERVE


def test_step_restart_clears_probe_verdicts(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    probes = rt.state.components["feeder"].probes
    assert all(p.ok is None for p in probes.values())


def _fail_verification(rt: Runtime) -> tuple:
    rt.feed(SpawnFinished("feeder", ok=True))
    return rt.at(rt.now + 90.0)


def test_step_backoff_sequence_then_failsafe(rt: Runtime) -> None:
    start = rt.now
    rt.feed(ProcessExited("feeder"))
    actions = _fail_verification(rt)
    # verify timed out: wait the first backoff delay before restart 2
    assert rt.stage("feeder") is Stage.BACKOFF
    assert kinds(actions) == []
    assert rt.wake_at == start + 90.0 + 15.0
    actions = rt.at(rt.wake_at)
    assert RestartProcess("feeder", 2, 3, "verify_timeout") in actions
    _fail_verification(rt)
    assert rt.wake_at == rt.now + 30.0
    actions = rt.at(rt.wake_at)
    assert RestartProcess("feeder", 3, 3, "verify_timeout") in actions
    actions = _fail_verification(rt)
    assert rt.stage("feeder") is Stage.FAILSAFE
    assert kinds(actions) == [
        "WriteFlags",
        "LogTransition",
        "StopProcess",
        "WriteStop",
        "LogTransition",
        "SendNotice",
        "LogTransition",
    ]
    assert actions[0] == WriteFlags(True, "SIGNAL_READ_ONLY", rt.state.failsafe.reason, "autoheal")
    transitions = [(a.from_stage, a.to_stage) for a in actions if isinstance(a, LogTransition)]
    assert transitions == [
        (Stage.BACKOFF, Stage.FAILSAFE),
        (Stage.FAILSAFE, Stage.NOTIFY),
        (Stage.NOTIFY, Stage.FAILSAFE),
    ]
    assert rt.wake_at is None
    assert not dor(rt.state, rt.policy)


def test_step_exit_during_verify_fails_the_attempt_at_once(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    rt.feed(SpawnFinished("feeder", ok=True))
    rt.now += 0.5
    rt.feed(ProcessExited("feeder", code=1))
    assert rt.stage("feeder") is Stage.BACKOFF
    assert rt.state.components["feeder"].restart_at == rt.now + 15.0


def test_step_crashing_feeder_reaches_failsafe_after_exactly_max_restarts(rt: Runtime) -> None:
    restarts = 0
    for _ in range(20):
        actions = rt.feed(ProcessExited("feeder", code=1))
        restarts += sum(isinstance(a, RestartProcess) for a in actions)
        if rt.stage("feeder") is Stage.FAILSAFE:
            break
        if rt.wake_at is not None:
            restarts += sum(isinstance(a, RestartProcess) for a in rt.at(rt.wake_at))
        rt.feed(SpawnFinished("feeder", ok=True))
    assert rt.stage("feeder") is Stage.FAILSAFE
    assert restarts == 3


def test_step_spawn_failure_counts_as_failed_attempt(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    rt.feed(SpawnFinished("feeder", ok=False, reason="spawn_failed"))
    assert rt.stage("feeder") is Stage.BACKOFF
    assert rt.state.components["feeder"].restart_at == rt.now + 15.0


def test_step_failsafe_is_latched_against_every_fact(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    for _ in range(3):
        _fail_verification(rt)
        if rt.wake_at:
            rt.at(rt.wake_at)
    assert rt.stage("feeder") is Stage.FAILSAFE
    for obs in (
        ProbeSucceeded("feeder", "process"),
        ProbeSucceeded("feeder", "heartbeat"),
        SpawnFinished("feeder", ok=True),
        ProcessExited("feeder"),
        DeadlineReached(),
    ):
        assert not any(isinstance(a, RestartProcess) for a in rt.feed(obs))
        assert rt.stage("feeder") is Stage.FAILSAFE
    rt.at(rt.now + 10_000)
    assert rt.stage("feeder") is Stage.FAILSAFE
    assert rt.state.failsafe is not None


def test_step_restart_refused_in_failsafe_then_clear(rt: Runtime) -> None:
    rt.feed(OperatorEnteredFailsafe("maintenance", "alice"))
    with pytest.raises(CommandRefusedError) as exc:
        rt.feed(OperatorRestarted("feeder", "try", "alice"))
    assert exc.value.reason == "failsafe_active"
    actions = rt.feed(OperatorClearedFailsafe("fixed", "alice"))
    assert actions[0] == WriteFlags(False, "NORMAL", "", "autoheal")
    assert RemoveStop("fixed", "alice") in actions
    assert rt.state.failsafe is None


def test_step_operator_enter_failsafe_writes_flags_and_stop(rt: Runtime) -> None:
    actions = rt.feed(OperatorEnteredFailsafe("maintenance", "alice"))
    assert actions[:2] == (
        WriteFlags(True, "SIGNAL_READ_ONLY", "maintenance", "alice"),
        WriteStop("maintenance", "alice"),
    )
    assert any(isinstance(a, SendNotice) and a.kind == "failsafe" for a in actions)
    with pytest.raises(IllegalCommandError):
        rt.feed(OperatorEnteredFailsafe("again", "bob"))


def test_step_clear_without_failsafe_is_illegal(rt: Runtime) -> None:
    with pytest.raises(IllegalCommandError, match="not active"):
        rt.feed(OperatorClearedFailsafe("x", "alice"))


def test_step_clear_restarts_failsafe_components_as_new_episode(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    for _ in range(3):
        _fail_verification(rt)
        if rt.wake_at:
            rt.at(rt.wake_at)
    actions = rt.feed(OperatorClearedFailsafe("fixed", "alice"))
    assert RestartProcess("feeder", 1, 3, "operator") in actions
    assert rt.stage("feeder") is Stage.RESTART


def test_step_dependency_failure_degrades_and_blocks_restarts(rt: Runtime) -> None:
    assert rt.feed(ProbeFailed("exchange", "http", "CONN_TIMEOUT")) == ()
    actions = rt.feed(ProbeFailed("exchange", "http", "CONN_TIMEOUT"))
    assert actions[0] == WriteFlags(
        False, "DEGRADED", "dependency_failing exchange:CONN_TIMEOUT", "autoheal"
    )
    assert any(isinstance(a, SendNotice) and a.kind == "degraded" for a in actions)
    assert not dor(rt.state, rt.policy)
    for _ in range(5):
        actions = rt.feed(ProbeFailed("feeder", "heartbeat", "ws_stale"))
        assert not any(isinstance(a, RestartProcess) for a in actions)
    actions = rt.feed(ProcessExited("feeder"))
    assert not any(isinstance(a, RestartProcess) for a in actions)
    assert rt.state.components["feeder"].attempts == 0
    # recovery: flags back to NORMAL, the dead feeder is restarted now
    actions = rt.feed(ProbeSucceeded("exchange", "http"))
    assert actions[0] == WriteFlags(False, "NORMAL", "", "autoheal")
    assert RestartProcess("feeder", 1, 3, "process_exited") in actions


def test_step_dependency_failure_pauses_backoff_deadlines(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    rt.feed(SpawnFinished("feeder", ok=True))
    rt.feed(ProbeFailed("exchange", "http", "CONN_REFUSED"))
    rt.feed(ProbeFailed("exchange", "http", "CONN_REFUSED"))
    actions = rt.at(rt.now + 500)
    assert not any(isinstance(a, RestartProcess) for a in actions)
    assert rt.state.components["feeder"].attempts == 1
    actions = rt.feed(ProbeSucceeded("exchange", "http"))
    # the disturbed verification starts afresh instead of counting as a failed attempt
    assert not any(isinstance(a, RestartProcess) for a in actions)
    assert rt.wake_at == rt.now + 90.0
    rt.at(rt.now + 90.0)
    assert rt.stage("feeder") is Stage.BACKOFF
    assert rt.state.components["feeder"].restart_at == rt.now + 15.0


def test_step_stable_reset_ends_the_episode(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    rt.feed(SpawnFinished("feeder", ok=True))
    rt.healthy("feeder")
    rt.at(rt.now + 2.0)  # verified after verify_min_uptime
    assert rt.stage("feeder") is Stage.OBSERVE
    assert rt.state.components["feeder"].attempts == 1
    assert rt.wake_at == rt.now + 600.0
    rt.at(rt.now + 600.0)
    assert rt.state.components["feeder"].attempts == 0
    # the next failure is the first of a new episode: immediate
    assert RestartProcess("feeder", 1, 3, "process_exited") in rt.feed(ProcessExited("feeder"))


def test_step_failure_before_stable_reset_waits_the_backoff(rt: Runtime) -> None:
    rt.feed(ProcessExited("feeder"))
    rt.feed(SpawnFinished("feeder", ok=True))
    rt.healthy("feeder")
    rt.now += 10
    actions = rt.feed(ProcessExited("feeder"))
    assert not any(isinstance(a, RestartProcess) for a in actions)
    assert rt.stage("feeder") is Stage.BACKOFF
    assert rt.wake_at == rt.now + 15.0


def test_step_operator_stop_and_start(rt: Runtime) -> None:
    actions = rt.feed(OperatorStopped("trader", "maint", "alice"))
    assert StopProcess("trader", "operator") in actions
    assert rt.state.components["trader"].held
    assert not any(isinstance(a, RestartProcess) for a in rt.feed(ProcessExited("trader")))
    assert not dor(rt.state, rt.policy)
    with pytest.raises(IllegalCommandError):
        rt.feed(OperatorStopped("trader", "again", "alice"))
    actions = rt.feed(OperatorStarted("trader", "back", "alice"))
    assert actions == (StartProcess("trader", "operator"),)
    rt.feed(SpawnFinished("trader", ok=True))
    rt.healthy("trader")
    assert dor(rt.state, rt.policy)


def test_step_start_grace_ignores_soft_failures_until_verify_window(rt: Runtime) -> None:
    rt.feed(OperatorStopped("trader", "maint", "alice"))
    rt.feed(OperatorStarted("trader", "back", "alice"))
    for _ in range(5):
        assert rt.feed(ProbeFailed("trader", "heartbeat", "heartbeat_missing")) == ()
    actions = rt.at(rt.now + 90)
    assert RestartProcess("trader", 1, 3, "heartbeat_missing") in actions


def test_step_operator_restart_is_a_fresh_episode(rt: Runtime) -> None:
    actions = rt.feed(OperatorRestarted("feeder", "looks stuck", "alice"))
    assert RestartProcess("feeder", 1, 3, "operator") in actions


def test_step_operator_stop_and_start_begin_a_fresh_episode_issue9(rt: Runtime) -> None:
    """The episode rule: an operator's stop or start resets the attempts, like a restart."""
    rt.feed(ProcessExited("feeder"))
    rt.feed(SpawnFinished("feeder", ok=False, reason="spawn_failed"))
    assert RestartProcess("feeder", 2, 3, "spawn_failed") in rt.at(rt.wake_at)
    rt.feed(OperatorStopped("feeder", "maint", "alice"))
    assert rt.state.components["feeder"].attempts == 0
    rt.feed(OperatorStarted("feeder", "back", "alice"))
    assert rt.state.components["feeder"].attempts == 0
    # the start's verify window runs out: attempt 1 of a fresh episode, not attempt 3
    assert RestartProcess("feeder", 1, 3, "verify_timeout") in rt.at(rt.wake_at)


def test_step_unknown_component_command(rt: Runtime) -> None:
    with pytest.raises(IllegalCommandError, match="unknown component"):
        rt.feed(OperatorRestarted("nope", "", "alice"))


def test_step_observation_for_unknown_target_is_ignored(rt: Runtime) -> None:
    before = rt.state
    assert rt.feed(ProbeFailed("ghost", "x", "CONN_TIMEOUT")) == ()
    assert rt.state == before


def test_step_is_deterministic(rt: Runtime) -> None:
    state: RuntimeState = rt.state
    a = step(state, ProcessExited("feeder"), 5.0, rt.policy)
    b = step(state, ProcessExited("feeder"), 5.0, rt.policy)
    assert a == b


def test_step_daemon_start_grace(policy: Policy) -> None:
    r = Runtime(policy)
    r.feed(ProbeSucceeded("exchange", "http"))
    r.feed(SpawnFinished("feeder", ok=True))
    assert r.wake_at == r.now + 90.0
    for _ in range(4):
        assert r.feed(ProbeFailed("feeder", "heartbeat", "heartbeat_missing")) == ()
    r.feed(ProbeSucceeded("feeder", "heartbeat"))
    assert r.state.components["feeder"].verify_until is None
    assert r.stage("feeder") is Stage.OBSERVE
    # grace over: soft failures count again
    r.feed(ProbeFailed("feeder", "heartbeat", "heartbeat_stale"))
    assert RestartProcess("feeder", 1, 3, "heartbeat_stale") in r.feed(
        ProbeFailed("feeder", "heartbeat", "heartbeat_stale")
    )


def test_step_soft_failures_wait_while_a_dependency_is_suspect(rt: Runtime) -> None:
    """The REST probe failed once (not yet DEGRADED): the feeder's ws_stale is not counted."""
    rt.feed(ProbeFailed("exchange", "http", "latency_p95_high"))
    for _ in range(3):
        actions = rt.feed(ProbeFailed("feeder", "heartbeat", "ws_stale"))
        assert not any(isinstance(a, RestartProcess) for a in actions)
    assert rt.state.components["feeder"].probes["heartbeat"].failures == 0
    # a hard failure is still a hard failure
    assert RestartProcess("feeder", 1, 3, "process_exited") in rt.feed(ProcessExited("feeder"))


def test_step_soft_failures_count_again_once_the_dependency_passes(rt: Runtime) -> None:
    rt.feed(ProbeFailed("exchange", "http", "CONN_TIMEOUT"))
    rt.feed(ProbeFailed("feeder", "heartbeat", "ws_stale"))
    rt.feed(ProbeSucceeded("exchange", "http"))
    rt.feed(ProbeFailed("feeder", "heartbeat", "ws_stale"))
    actions = rt.feed(ProbeFailed("feeder", "heartbeat", "ws_stale"))
    assert RestartProcess("feeder", 1, 3, "ws_stale") in actions


def test_step_reduce_only_inside_a_failsafe_unwinds_then_halts_again(rt: Runtime) -> None:
    rt.feed(OperatorEnteredFailsafe("maintenance", "alice"))
    actions = rt.feed(OperatorSetReduceOnly("unwind BTC", "alice"))
    # flags keep the failsafe but allow reducing sells; STOP.TXT (which halts all) goes
    assert actions[0] == WriteFlags(True, "REDUCE_ONLY", "unwind BTC", "alice")
    assert RemoveStop("unwind BTC", "alice") in actions
    with pytest.raises(IllegalCommandError, match="already"):
        rt.feed(OperatorSetReduceOnly("again", "bob"))
    with pytest.raises(CommandRefusedError):
        rt.feed(OperatorRestarted("feeder", "x", "alice"))  # still a failsafe
    actions = rt.feed(OperatorEnteredFailsafe("done unwinding", "alice"))
    assert actions[0] == WriteFlags(True, "SIGNAL_READ_ONLY", "maintenance", "alice")
    assert WriteStop("done unwinding", "alice") in actions
    actions = rt.feed(OperatorClearedFailsafe("ok", "alice"))
    assert actions[0] == WriteFlags(False, "NORMAL", "", "autoheal")


def test_step_reduce_only_without_failsafe_outranks_degraded(rt: Runtime) -> None:
    actions = rt.feed(OperatorSetReduceOnly("calm markets", "alice"))
    assert actions[0] == WriteFlags(False, "REDUCE_ONLY", "calm markets", "alice")
    assert not any(isinstance(a, RemoveStop) for a in actions)
    rt.feed(ProbeFailed("exchange", "http", "CONN_TIMEOUT"))
    actions = rt.feed(ProbeFailed("exchange", "http", "CONN_TIMEOUT"))
    assert not any(isinstance(a, WriteFlags) for a in actions)  # still REDUCE_ONLY
    rt.feed(ProbeSucceeded("exchange", "http"))
    assert flags_for(rt.state).mode == "REDUCE_ONLY"  # recovery never loosens it
    actions = rt.feed(OperatorClearedFailsafe("back to normal", "alice"))
    assert actions[0] == WriteFlags(False, "NORMAL", "", "autoheal")


def test_step_automatic_failsafe_ends_reduce_only(rt: Runtime) -> None:
    rt.feed(OperatorSetReduceOnly("calm markets", "alice"))
    rt.feed(ProcessExited("feeder"))
    for _ in range(3):
        _fail_verification(rt)
        if rt.wake_at:
            rt.at(rt.wake_at)
    assert rt.state.failsafe is not None
    assert rt.state.reduce_only is None
    assert flags_for(rt.state).mode == "SIGNAL_READ_ONLY"

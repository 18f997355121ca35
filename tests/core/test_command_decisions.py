"""The command queue's pure decisions: a reused idempotency key, an orphaned claim."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from autoheal.core.commands import (
    TERMINAL_STATUSES,
    Claimer,
    Intent,
    KeyDecision,
    KeyUse,
    ProcessSeen,
    claimer_gone,
    claimer_of,
    decide_key_use,
)

STATUSES = ("pending", "claimed", "succeeded", "failed", "rejected")

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
payloads = st.dictionaries(st.text(max_size=6), json_scalars, max_size=4)
intents = st.builds(
    Intent,
    type=st.sampled_from(["restart", "stop", "start", "failsafe_enter", "failsafe_clear"]),
    target=st.sampled_from(["", "feeder", "trader"]),
    payload=payloads,
)


@given(new=intents)
def test_an_unused_key_queues_the_new_command(new: Intent) -> None:
    assert decide_key_use(None, None, new) == KeyDecision(KeyUse.NEW)


@given(intent=intents, status=st.sampled_from(STATUSES))
def test_the_same_command_again_replays_or_joins_and_is_never_refused(
    intent: Intent, status: str
) -> None:
    again = Intent(intent.type, intent.target, dict(intent.payload))
    decision = decide_key_use(intent, status, again)
    expected = KeyUse.REPLAY if status in TERMINAL_STATUSES else KeyUse.JOIN
    assert decision == KeyDecision(expected)


@given(earlier=intents, new=intents, status=st.sampled_from(STATUSES))
def test_a_different_command_under_a_used_key_is_refused_naming_what_differs(
    earlier: Intent, new: Intent, status: str
) -> None:
    decision = decide_key_use(earlier, status, new)
    differs = tuple(
        name
        for name in ("type", "target", "payload")
        if getattr(earlier, name) != getattr(new, name)
    )
    if differs:
        assert decision == KeyDecision(KeyUse.CONFLICT, differs)
    else:
        assert decision.use in (KeyUse.REPLAY, KeyUse.JOIN) and decision.differs == ()


def test_the_issue_9_example_is_a_conflict_on_every_field() -> None:
    restart = Intent("restart", "feeder", {"reason": "manual"})
    halt = Intent("failsafe_enter", "", {"reason": "halt now"})
    assert decide_key_use(restart, "succeeded", halt) == KeyDecision(
        KeyUse.CONFLICT, ("type", "target", "payload")
    )


# ----------------------------------------------------------------------- claimer identity

pids = st.integers(min_value=1, max_value=4_194_304)
start_times = st.floats(min_value=1e9, max_value=2e9, allow_nan=False)
claimers = st.builds(Claimer, pid=pids, start_time=st.none() | start_times)
seen_any = st.builds(
    ProcessSeen, exists=st.booleans(), start_time=st.none() | start_times, zombie=st.booleans()
)


@given(claimer=st.none() | claimers, seen=seen_any)
def test_a_claimer_is_gone_only_when_that_is_proven(
    claimer: Claimer | None, seen: ProcessSeen
) -> None:
    why = claimer_gone(claimer, seen)
    if why is None:
        return
    assert claimer is not None
    match why:
        case "no_such_process":
            assert not seen.exists
        case "exited":
            assert seen.exists and seen.zombie
        case "pid_reused":
            assert seen.exists and not seen.zombie
            assert claimer.start_time is not None and seen.start_time is not None
            assert abs(claimer.start_time - seen.start_time) > 0.005
        case _:
            raise AssertionError(why)


@given(claimer=claimers, seen=seen_any)
def test_a_missing_or_exited_claimer_is_always_gone(claimer: Claimer, seen: ProcessSeen) -> None:
    if not seen.exists:
        assert claimer_gone(claimer, seen) == "no_such_process"
    elif seen.zombie:
        assert claimer_gone(claimer, seen) == "exited"


@given(pid=pids, start=start_times, noise=st.floats(min_value=-0.004, max_value=0.004))
def test_the_claimer_itself_still_running_is_not_gone(pid: int, start: float, noise: float) -> None:
    assert claimer_gone(Claimer(pid, start), ProcessSeen(True, start + noise)) is None


@given(pid=pids, start=start_times, shift=st.floats(min_value=0.011, max_value=1e6))
def test_a_live_pid_that_started_at_another_time_is_a_reused_pid(
    pid: int, start: float, shift: float
) -> None:
    for other in (start + shift, start - shift):
        assert claimer_gone(Claimer(pid, start), ProcessSeen(True, other)) == "pid_reused"


def test_a_start_time_off_by_exactly_the_tolerance_is_the_same_process() -> None:
    claimer = Claimer(4242, 1.0)
    assert claimer_gone(claimer, ProcessSeen(True, 1.5), tolerance=0.5) is None
    assert claimer_gone(claimer, ProcessSeen(True, 0.5), tolerance=0.5) is None
    assert claimer_gone(claimer, ProcessSeen(True, 1.75), tolerance=0.5) == "pid_reused"


@given(pid=pids, seen_start=st.none() | start_times)
def test_a_live_pid_is_never_settled_without_both_start_times(
    pid: int, seen_start: float | None
) -> None:
    # A legacy claim (no recorded start time), or a start time we could not read.
    assert claimer_gone(Claimer(pid, None), ProcessSeen(True, seen_start)) is None
    assert claimer_gone(Claimer(pid, 1.5e9), ProcessSeen(True, None)) is None


@given(
    claimed_by=st.none() | st.text(max_size=12),
    pid=st.none() | st.integers(min_value=-5, max_value=10**7),
    start=st.none() | start_times,
)
@example(claimed_by=None, pid=1, start=None)  # PID 1 is a process (a container's daemon)
@example(claimed_by=None, pid=0, start=None)
def test_claimer_of_reads_columns_first_then_a_legacy_pid_tag(
    claimed_by: str | None, pid: int | None, start: float | None
) -> None:
    got = claimer_of(claimed_by, pid, start)
    if pid is not None:
        assert got == (Claimer(pid, start) if pid > 0 else None)
    elif got is not None:
        assert claimed_by == f"pid:{got.pid}" and got.pid > 0 and got.start_time is None


def test_claimer_of_legacy_rows() -> None:
    assert claimer_of("pid:1234", None, None) == Claimer(1234, None)
    assert claimer_of("pid:1", None, None) == Claimer(1, None)
    for tag in ("cli", "cli-direct", "pid:", "pid:-3", "pid:0", "pid:١٢", None):
        assert claimer_of(tag, None, None) is None, tag

"""The dead man's switch decision (pure :func:`step`): fake clock tables and Hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoheal.guard.deadman import (
    BINANCE,
    BITMEX,
    Arm,
    ArmDone,
    CancelAll,
    CancelDone,
    DeadmanPolicy,
    DeadmanState,
    Tick,
    step,
)

POLICY = DeadmanPolicy(countdown_s=2.0, refresh_s=0.5)  # 120 s / 30 s at 1/60


def test_presets_are_the_exchanges_documented_values() -> None:
    assert (BINANCE.countdown_s, BINANCE.refresh_s) == (120.0, 30.0)
    assert (BITMEX.countdown_s, BITMEX.refresh_s) == (60.0, 15.0)
    assert BINANCE.scaled(1 / 60) == DeadmanPolicy(countdown_s=2.0, refresh_s=0.5)
    assert BINANCE.retry_after_s == 6.0


@pytest.mark.parametrize(("countdown", "refresh", "retry"), [
    (10.0, 6.0, None), (10.0, 0.0, None), (0.0, 0.0, None), (math.inf, 1.0, None),
    (10.0, math.nan, None), (10.0, 5.0, 0.0), (10.0, 5.0, 6.0), (-2.0, -1.0, None)])
def test_bad_policies_are_refused(countdown: float, refresh: float, retry: float | None) -> None:
    with pytest.raises(ValueError, match="deadman"):
        DeadmanPolicy(countdown, refresh, retry)


def test_arms_at_once_then_every_refresh() -> None:
    s, acts = step(DeadmanState(), POLICY, Tick(100.0, halted=False))
    assert acts == [Arm(2.0)] and s.sent_at == 100.0
    s, acts = step(s, POLICY, ArmDone(100.01, ok=True))
    assert acts == [] and s.phase == "armed" and s.expires_at == 102.0
    s, acts = step(s, POLICY, Tick(100.49, halted=False))
    assert acts == []
    s, acts = step(s, POLICY, Tick(100.5, halted=False))
    assert acts == [Arm(2.0)]


def test_halt_stops_refreshing_and_cancels_all_once() -> None:
    s, _ = step(DeadmanState(), POLICY, Tick(0.0, halted=False))
    s, _ = step(s, POLICY, ArmDone(0.0, ok=True))
    s, acts = step(s, POLICY, Tick(0.1, halted=True, reason="stop_file_present"))
    assert acts == [CancelAll("stop_file_present")] and s.phase == "halted"
    s, _ = step(s, POLICY, CancelDone(0.1, ok=True))
    for t in (0.6, 1.1, 5.0, 50.0):  # long past every refresh: never re-armed, never re-sent
        s, acts = step(s, POLICY, Tick(t, halted=True, reason="stop_file_present"))
        assert acts == []


def test_failed_cancel_all_is_retried_after_retry_s() -> None:
    s, _ = step(DeadmanState(), POLICY, Tick(0.0, halted=True, reason="failsafe_active"))
    s, _ = step(s, POLICY, CancelDone(0.0, ok=False))
    s, acts = step(s, POLICY, Tick(0.05, halted=True, reason="failsafe_active"))
    assert acts == []
    s, acts = step(s, POLICY, Tick(0.1, halted=True, reason="failsafe_active"))
    assert acts == [CancelAll("failsafe_active")]


def test_failed_arm_is_retried_sooner_and_keeps_the_old_expiry() -> None:
    s, _ = step(DeadmanState(), POLICY, Tick(0.0, halted=False))
    s, _ = step(s, POLICY, ArmDone(0.0, ok=True))
    s, acts = step(s, POLICY, Tick(0.5, halted=False))
    assert acts == [Arm(2.0)]
    s, _ = step(s, POLICY, ArmDone(0.6, ok=False))
    assert s.expires_at == 2.0 and s.next_arm_at == pytest.approx(0.7)
    s, acts = step(s, POLICY, Tick(0.7, halted=False))
    assert acts == [Arm(2.0)]


def test_lifting_the_halt_arms_again_at_once() -> None:
    s, _ = step(DeadmanState(), POLICY, Tick(0.0, halted=True, reason="stop_file_present"))
    s, _ = step(s, POLICY, CancelDone(0.0, ok=True))
    s, acts = step(s, POLICY, Tick(0.01, halted=False))
    assert acts == [Arm(2.0)] and s.phase == "idle"


def test_a_late_arm_answer_after_a_halt_does_not_rearm() -> None:
    s, _ = step(DeadmanState(), POLICY, Tick(0.0, halted=False))  # Arm in flight
    s, acts = step(s, POLICY, Tick(0.01, halted=True, reason="stop_file_present"))
    assert acts == [CancelAll("stop_file_present")]
    s, _ = step(s, POLICY, ArmDone(0.02, ok=True))
    assert s.phase == "halted"


EVENT = st.tuples(
    st.floats(min_value=0.0, max_value=1.4),  # gap to the next tick: < countdown - refresh
    st.booleans(),                             # halted
    st.booleans(),                             # the exchange answers the action
)


@settings(max_examples=300)
@given(st.lists(EVENT, min_size=1, max_size=60))
def test_the_exchange_never_cancels_a_live_trader_and_a_halt_always_cancels(
        events: list[tuple[float, bool, bool]]) -> None:
    """A simulated exchange countdown driven by the step's actions, ticks < 1.5 s apart.

    Invariants: at most one action per tick; no Arm while halted; the first halted tick
    asks for CancelAll; while trading is allowed and the last arm went through, the
    exchange's countdown never runs out; the switch's own idea of the expiry is never
    later than the exchange's; a failed cancel-all is asked for again at its retry time.
    """
    s, now = DeadmanState(), 0.0
    exchange_deadline: float | None = None
    clean = False  # allowed, and the last arm went through
    for gap, halted, answers in events:
        now += gap
        if exchange_deadline is not None and now >= exchange_deadline:
            assert not clean, "the exchange's countdown ran out under a live, allowed trader"
            exchange_deadline = None
        was_halted = s.phase == "halted"
        s, actions = step(s, POLICY, Tick(now, halted, "stop_file_present" if halted else "ok"))
        assert len(actions) <= 1
        if halted:
            clean = False
            assert not any(isinstance(a, Arm) for a in actions)
            if not was_halted:
                assert actions == [CancelAll("stop_file_present")]
        for action in actions:
            if isinstance(action, Arm):
                if answers:
                    exchange_deadline = now + action.countdown_s
                clean = answers
                s, more = step(s, POLICY, ArmDone(now, answers))
            else:
                s, more = step(s, POLICY, CancelDone(now, answers))
            assert more == []
        if s.expires_at is not None:
            assert exchange_deadline is not None and s.expires_at <= exchange_deadline
    if s.phase == "halted" and s.cancel_pending:
        assert s.next_cancel_at is not None
        _, acts = step(s, POLICY, Tick(s.next_cancel_at, halted=True, reason="x"))
        assert acts == [CancelAll("stop_file_present")]

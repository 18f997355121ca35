"""Every operator act names who did it and why, whichever way it came (issue 28).

An act reaches the core as a command (the CLI, or the status page, whose actor is
``web:<peer>``, both through the command queue: ``observation_for``), as a file
edited by hand (``SwitchFilesRead``), or from the fleet switch. Whoever it was, the
state it leaves (``failsafe.set_by``, ``reduce_only.set_by``), the files it asks to
write (``WriteStop``, ``RemoveStop``, ``RemoveRiskLatch``), the notice and the
journal line (``LogSwitchEvent``) carry that actor and that reason, exactly.
Pure: ``step`` with a fake ``now``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.actions import (
    LogSwitchEvent,
    RemoveRiskLatch,
    RemoveStop,
    SendNotice,
    WriteStop,
)
from autoheal.core.commands import observation_for
from autoheal.core.fleet import FLEET
from autoheal.core.machine import step
from autoheal.core.observations import FleetSwitchRead, RiskLatchSeen, SwitchFilesRead
from autoheal.core.state import FailsafeState, ReduceOnlyState, RuntimeState, initial_state
from autoheal.core.switch import RISK, DiskView, FlagsDoc, LatchView, SwitchState
from tests.core.conftest import make_policy

POLICY = make_policy()
NORMAL = initial_state(POLICY)
HALTED = replace(NORMAL, failsafe=FailsafeState("feeder: max_restarts_exceeded", "autoheal"))
UNWINDING = replace(HALTED, reduce_only=ReduceOnlyState("unwind", "bob"))
REDUCED = replace(NORMAL, reduce_only=ReduceOnlyState("careful", "bob"))
FLEET_WHAT = "fleet HALT v1 by ops: incident"
FLEET_HALTED = replace(NORMAL, failsafe=FailsafeState(FLEET_WHAT, FLEET))
LATCH = LatchView("risk_daily_loss", (1, 2, 3))

#: Who acts: a name from the CLI, the status page's ``web:<peer>``, anything.
ACTORS = st.sampled_from(["alice", "web:10.0.0.7:51234", "cli", "operator"]) | st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12
)
REASONS = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30)


def _acts(actions: tuple[object, ...]) -> list[object]:
    """The actions that say who acted: file writes and notices."""
    return [a for a in actions if isinstance(a, WriteStop | RemoveStop | RemoveRiskLatch)]


def _notices(actions: tuple[object, ...]) -> list[SendNotice]:
    return [a for a in actions if isinstance(a, SendNotice)]


@given(ACTORS, REASONS)
def test_failsafe_enter_by_command_names_its_actor(actor: str, reason: str) -> None:
    obs = observation_for("failsafe_enter", "", reason, actor)
    d = step(NORMAL, obs, 1.0, POLICY)
    assert d.state.failsafe == FailsafeState(reason, actor)
    assert _acts(d.actions) == [WriteStop(reason, actor)]
    assert _notices(d.actions) == [
        SendNotice("failsafe", "runtime", "operator", f"failsafe entered by {actor}: {reason}")
    ]


@given(ACTORS, REASONS)
def test_failsafe_enter_during_a_fleet_halt_takes_it_over_in_the_actors_name(
    actor: str, reason: str
) -> None:
    d = step(FLEET_HALTED, observation_for("failsafe_enter", "", reason, actor), 1.0, POLICY)
    assert d.state.failsafe == FailsafeState(reason, actor)
    assert _notices(d.actions) == [
        SendNotice(
            "operator",
            "runtime",
            "operator",
            f"failsafe taken over from the fleet by {actor}: {reason}",
        )
    ]


@given(ACTORS, REASONS)
def test_failsafe_enter_while_unwinding_halts_again_in_the_actors_name(
    actor: str, reason: str
) -> None:
    d = step(UNWINDING, observation_for("failsafe_enter", "", reason, actor), 1.0, POLICY)
    assert d.state.failsafe == HALTED.failsafe and d.state.reduce_only is None
    assert _acts(d.actions) == [WriteStop(reason, actor)]
    assert _notices(d.actions) == [
        SendNotice(
            "failsafe",
            "runtime",
            "operator",
            f"REDUCE_ONLY ended by {actor}, failsafe halts all orders: {reason}",
        )
    ]


@pytest.mark.parametrize("state", [NORMAL, HALTED], ids=["alone", "inside a failsafe"])
@given(actor=ACTORS, reason=REASONS)
def test_reduce_only_by_command_names_its_actor(
    state: RuntimeState, actor: str, reason: str
) -> None:
    d = step(state, observation_for("failsafe_reduce_only", "", reason, actor), 1.0, POLICY)
    assert d.state.reduce_only == ReduceOnlyState(reason, actor)
    assert _acts(d.actions) == ([RemoveStop(reason, actor)] if state.failsafe else [])
    assert _notices(d.actions) == [
        SendNotice(
            "operator",
            "runtime",
            "operator",
            f"REDUCE_ONLY set by {actor}: only position-reducing sells; {reason}",
        )
    ]


@given(ACTORS, REASONS)
def test_failsafe_clear_by_command_names_its_actor(actor: str, reason: str) -> None:
    d = step(HALTED, observation_for("failsafe_clear", "", reason, actor), 1.0, POLICY)
    assert d.state.failsafe is None
    assert _acts(d.actions) == [RemoveStop(reason, actor)]
    assert _notices(d.actions) == [
        SendNotice(
            "failsafe_cleared", "runtime", "operator", f"failsafe cleared by {actor}: {reason}"
        )
    ]


@pytest.mark.parametrize("latch", [None, LATCH], ids=["no latch", "a latch seen"])
@given(actor=ACTORS, reason=REASONS)
def test_a_clear_of_reduce_only_names_its_actor_and_removes_the_latch_seen(
    latch: LatchView | None, actor: str, reason: str
) -> None:
    state = replace(REDUCED, switch=SwitchState(latch_on_disk=latch))
    d = step(state, observation_for("failsafe_clear", "", reason, actor), 1.0, POLICY)
    assert d.state.reduce_only is None
    assert _acts(d.actions) == ([RemoveRiskLatch(reason, actor, latch.version)] if latch else [])
    assert _notices(d.actions) == [
        SendNotice("operator", "runtime", "operator", f"REDUCE_ONLY cleared by {actor}: {reason}")
    ]


@given(REASONS)
def test_the_risk_latch_acts_as_risk(reason: str) -> None:
    d = step(NORMAL, RiskLatchSeen(reason), 1.0, POLICY)
    assert d.state.reduce_only == ReduceOnlyState(reason, RISK)
    assert _notices(d.actions) == [
        SendNotice(
            "operator", RISK, "risk_reduce_only", f"REDUCE_ONLY latched by the risk guard: {reason}"
        )
    ]


@given(st.sampled_from(["ops", ""]), REASONS, st.integers(min_value=1, max_value=99))
def test_the_fleets_halt_and_run_act_as_the_fleet(set_by: str, reason: str, version: int) -> None:
    what = f"fleet HALT v{version} by {set_by or '?'}: {reason}"
    halted = step(NORMAL, FleetSwitchRead("HALT", version, set_by, reason), 1.0, POLICY)
    assert halted.state.failsafe == FailsafeState(what, FLEET)
    assert _acts(halted.actions) == [WriteStop(what, FLEET)]
    assert _notices(halted.actions) == [SendNotice("failsafe", FLEET, "fleet_halt", what)]
    run = FleetSwitchRead("RUN", version + 1, set_by, reason)
    ran = step(halted.state, run, 2.0, POLICY)
    lifted = f"fleet RUN v{version + 1} by {set_by or '?'}: {reason}"
    assert ran.state.failsafe is None
    assert _acts(ran.actions) == [RemoveStop(lifted, FLEET)]
    assert _notices(ran.actions) == [SendNotice("failsafe_cleared", FLEET, "fleet_run", lifted)]


# ------------------------------------------------------------------ by hand, in the files

OURS_NORMAL = FlagsDoc(False, "NORMAL", "", "autoheal", 1.0)
OURS_HALTED = FlagsDoc(True, "SIGNAL_READ_ONLY", "feeder: max_restarts_exceeded", "autoheal", 1.0)


def _by_hand(state: RuntimeState, disk: DiskView, known: SwitchState) -> tuple:
    d = step(replace(state, switch=known), SwitchFilesRead(disk), 1.0, POLICY)
    logged = [a for a in d.actions if isinstance(a, LogSwitchEvent)]
    return d, logged


@given(st.sampled_from(["alice", "web-ops", None]), st.none() | REASONS)
def test_a_halt_written_by_hand_is_journaled_and_held_under_its_signer(
    signer: str | None, reason: str | None
) -> None:
    known = SwitchState(stop_on_disk=False, flags_on_disk=OURS_NORMAL)
    doc = FlagsDoc(True, reason=reason, set_by=signer)
    d, logged = _by_hand(NORMAL, DiskView(False, doc), known)
    actor = signer or "operator"
    why = reason or "failsafe_active=true written to global_flags.json"
    assert logged == [LogSwitchEvent("operator_kill_switch", "flags_entered", actor)]
    assert d.state.failsafe == FailsafeState(why, actor)
    assert WriteStop(why, actor) in d.actions


def test_a_stop_file_removed_by_hand_is_journaled_as_the_operators_clear() -> None:
    known = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    d, logged = _by_hand(HALTED, DiskView(False, OURS_HALTED), known)
    assert logged == [LogSwitchEvent("operator_kill_switch", "stop_file_removed", "operator")]
    assert d.state.failsafe is None
    assert RemoveStop("STOP.TXT removed by hand", "operator") in d.actions
    assert (
        SendNotice(
            "failsafe_cleared",
            "runtime",
            "operator",
            "failsafe cleared by operator: STOP.TXT removed by hand",
        )
        in d.actions
    )


def test_the_risk_latch_on_disk_is_journaled_as_a_tightening_by_risk() -> None:
    known = SwitchState(stop_on_disk=False, flags_on_disk=OURS_NORMAL)
    d, logged = _by_hand(NORMAL, DiskView(False, OURS_NORMAL, latch=LATCH), known)
    assert logged == [LogSwitchEvent("kill_switch_tightened", "risk_latch", RISK)]
    assert d.state.reduce_only == ReduceOnlyState(LATCH.reason, RISK)

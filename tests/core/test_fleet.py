"""The fleet switch's meaning: parsing, the stale clock, and what ``step`` makes of it."""

from __future__ import annotations

import json

import pytest

from autoheal.core import (
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorSetReduceOnly,
    RemoveStop,
    WriteFlags,
    WriteStop,
    initial_state,
    step,
)
from autoheal.core.actions import ClearAlert, RaiseAlert, SendNotice
from autoheal.core.fleet import (
    FleetLink,
    SwitchRecord,
    Unreadable,
    encode_switch,
    judge_read,
    judge_time,
    lost_at,
    next_record,
    parse_host,
    parse_switch,
)
from autoheal.core.machine import dor, flags_for
from autoheal.core.observations import FleetLost, FleetSwitchRead
from autoheal.core.policy import Policy
from autoheal.core.state import RuntimeState, state_from_dict, state_to_dict

from .conftest import make_policy

STALE = 1.0


def rec(state: str, version: int) -> str:
    return encode_switch(SwitchRecord(state, version, "alice", "why", 1.0))


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        json.dumps({"state": "PAUSE", "version": 1}),
        json.dumps({"state": "run", "version": 1}),
        json.dumps({"state": "RUN", "version": -1}),
        json.dumps({"state": "RUN", "version": True}),
        json.dumps({"state": "RUN", "version": "3"}),
        json.dumps({"state": "HALT"}),
        json.dumps({"state": "HALT", "version": 1, "set_by": 5}),
        json.dumps({"state": "HALT", "version": 1, "ts": "now"}),
        b"{" + b" " * 70_000 + b"}",
    ],
)
def test_parse_switch_bad_records_are_unreadable_never_run(raw: bytes | str) -> None:
    out = parse_switch(raw)
    assert isinstance(out, Unreadable)
    assert out.problem == "fleet_switch_invalid"


def test_parse_switch_missing_key_is_run_at_version_zero() -> None:
    out = parse_switch(None)
    assert isinstance(out, SwitchRecord)
    assert (out.state, out.version) == ("RUN", 0)


def test_parse_switch_round_trips_encode() -> None:
    record = SwitchRecord("REDUCE_ONLY", 7, "bob", "unwind", 12.5)
    assert parse_switch(encode_switch(record)) == record
    assert parse_switch(encode_switch(record).encode()) == record


def test_next_record_goes_above_current_and_floor() -> None:
    current = SwitchRecord("RUN", 3, "a", "", 0.0)
    assert next_record(current, "HALT", set_by="b", reason="r", ts=1.0).version == 4
    assert next_record(current, "HALT", set_by="b", reason="r", ts=1.0, floor=9).version == 10
    with pytest.raises(ValueError):
        next_record(current, "PAUSE", set_by="b", reason="r", ts=1.0)


def test_parse_host_claiming_another_name_is_ignored_and_reported() -> None:
    view = parse_host("h1", json.dumps({"host": "h2", "ts": 5.0}), now_wall=6.0)
    assert view.problem and "h2" in view.problem
    ok = parse_host("h1", json.dumps({"host": "h1", "ts": 5.0, "dor": True}), now_wall=6.5)
    assert (ok.problem, ok.lost, ok.age_s) == ("", False, 1.5)
    assert parse_host("h1", None, now_wall=1.0).lost


# ------------------------------------------------------------------ the stale clock


def test_judge_valid_read_resets_clock_and_reports_switch() -> None:
    j = judge_read(
        FleetLink(0.0), parse_switch(rec("HALT", 2)), 0.5,
        applied_version=1, stale_after=STALE, on_lost="degrade",
    )
    assert j.link == FleetLink(0.5)
    assert j.observations == (FleetSwitchRead("HALT", 2, "alice", "why"),)


def test_judge_failures_lose_the_link_only_after_stale_after() -> None:
    link = FleetLink(0.0)
    j = judge_read(
        link, Unreadable("fleet_unreachable", "refused"), 0.9,
        applied_version=0, stale_after=STALE, on_lost="halt",
    )
    assert j.observations == () and not j.link.lost
    assert lost_at(j.link, STALE) == 1.0
    j = judge_time(j.link, 1.0, stale_after=STALE, on_lost="halt")
    assert j.observations == (FleetLost("fleet_unreachable: refused", "halt"),)
    assert j.link.lost and lost_at(j.link, STALE) is None
    # Lost once per outage.
    assert judge_time(j.link, 5.0, stale_after=STALE, on_lost="halt").observations == ()


def test_judge_backwards_version_is_unreadable_with_an_alert() -> None:
    j = judge_read(
        FleetLink(0.0), parse_switch(rec("RUN", 1)), 0.1,
        applied_version=3, stale_after=STALE, on_lost="degrade",
    )
    assert j.observations == ()
    assert isinstance(j.actions[0], RaiseAlert)
    assert j.link.problem == "fleet_version_backwards"
    # A key that vanished (Redis lost its data) after version 3: backwards too.
    j2 = judge_read(
        j.link, parse_switch(None), 1.0,
        applied_version=3, stale_after=STALE, on_lost="degrade",
    )
    assert j2.observations == (FleetLost(j2.observations[0].reason, "degrade"),)  # type: ignore[union-attr]
    assert j2.actions == ()  # the same problem alerts once
    j3 = judge_read(
        j2.link, parse_switch(rec("RUN", 4)), 1.1,
        applied_version=3, stale_after=STALE, on_lost="degrade",
    )
    assert isinstance(j3.actions[0], ClearAlert)
    assert j3.observations == (FleetSwitchRead("RUN", 4, "alice", "why"),)


def test_judge_first_failed_read_after_start_is_lost_at_once() -> None:
    """A daemon that just started knows nothing of the switch: fail closed at once."""
    boot = FleetLink(10.0, booting=True)
    j = judge_read(
        boot, Unreadable("fleet_unreachable"), 10.2,
        applied_version=0, stale_after=STALE, on_lost="degrade",
    )
    assert j.observations == (FleetLost("fleet_unreachable", "degrade"),)
    ok = judge_read(
        boot, parse_switch(None), 10.2, applied_version=0, stale_after=STALE, on_lost="degrade"
    )
    assert ok.link == FleetLink(10.2)  # no longer booting: later failures get stale_after
    later = judge_read(
        ok.link, Unreadable("fleet_unreachable"), 10.5,
        applied_version=0, stale_after=STALE, on_lost="degrade",
    )
    assert later.observations == ()


# ------------------------------------------------------------------ step


def run(state: RuntimeState, policy: Policy, *observations: object) -> tuple[RuntimeState, list]:
    actions: list = []
    for obs in observations:
        d = step(state, obs, 0.0, policy)  # type: ignore[arg-type]
        state = d.state
        actions.extend(d.actions)
    return state, actions


def test_fleet_halt_writes_stop_and_flags_set_by_fleet(policy: Policy) -> None:
    state, actions = run(initial_state(policy), policy, FleetSwitchRead("HALT", 1, "al", "x"))
    assert state.failsafe is not None and state.failsafe.set_by == "fleet"
    assert any(isinstance(a, WriteStop) and a.set_by == "fleet" for a in actions)
    flags = next(a for a in actions if isinstance(a, WriteFlags))
    assert (flags.failsafe_active, flags.mode, flags.set_by) == (True, "SIGNAL_READ_ONLY", "fleet")
    state, actions = run(state, policy, FleetSwitchRead("RUN", 2, "al", "ok"))
    assert state.failsafe is None and state.fleet.version == 2
    assert any(isinstance(a, RemoveStop) for a in actions)
    assert flags_for(state).mode == "NORMAL"


def test_fleet_halt_is_state_reapplied_after_a_local_clear(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        FleetSwitchRead("HALT", 1, "al", "x"),
        OperatorClearedFailsafe("mine", "bob"),
        FleetSwitchRead("HALT", 1, "al", "x"),
    )
    assert state.failsafe is not None and state.failsafe.set_by == "fleet"


def test_fleet_run_never_clears_an_operator_halt(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        OperatorEnteredFailsafe("mine", "bob"),
        FleetSwitchRead("HALT", 1, "al", "x"),
        FleetSwitchRead("RUN", 2, "al", "ok"),
    )
    assert state.failsafe is not None and state.failsafe.set_by == "bob"


def test_operator_halt_during_fleet_halt_takes_it_over(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        FleetSwitchRead("HALT", 1, "al", "x"),
        OperatorEnteredFailsafe("mine too", "bob"),
        FleetSwitchRead("RUN", 2, "al", "ok"),
    )
    assert state.failsafe is not None and state.failsafe.set_by == "bob"


def test_fleet_halt_gives_back_an_operators_reduce_only(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        OperatorSetReduceOnly("unwind", "bob"),
        FleetSwitchRead("HALT", 1, "al", "x"),
    )
    assert flags_for(state).mode == "SIGNAL_READ_ONLY"
    state, _ = run(state, policy, FleetSwitchRead("RUN", 2, "al", "ok"))
    assert state.reduce_only is not None and state.reduce_only.set_by == "bob"


def test_fleet_reduce_only_and_its_run(policy: Policy) -> None:
    state, _ = run(initial_state(policy), policy, FleetSwitchRead("REDUCE_ONLY", 1, "al", "x"))
    view = flags_for(state)
    assert (view.mode, view.set_by, view.failsafe_active) == ("REDUCE_ONLY", "fleet", False)
    state, _ = run(state, policy, FleetSwitchRead("RUN", 2, "al", "ok"))
    assert flags_for(state).mode == "NORMAL"


def test_fleet_run_leaves_an_operators_reduce_only(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        OperatorSetReduceOnly("unwind", "bob"),
        FleetSwitchRead("RUN", 1, "al", "ok"),
    )
    assert state.reduce_only is not None and state.reduce_only.set_by == "bob"


@pytest.mark.parametrize("on_lost,mode", [("degrade", "DEGRADED"), ("halt", "SIGNAL_READ_ONLY")])
def test_fleet_lost_fails_closed_and_a_fresh_read_returns(
    policy: Policy, on_lost: str, mode: str
) -> None:
    state, actions = run(initial_state(policy), policy, FleetLost("fleet_timeout", on_lost))
    assert flags_for(state).mode == mode and not dor(state, policy)
    assert state.fleet.lost == "fleet_timeout"
    assert any(isinstance(a, RaiseAlert) and a.name == "fleet_lost" for a in actions)
    assert any(isinstance(a, SendNotice) for a in actions)
    state, actions = run(state, policy, FleetSwitchRead("RUN", 0, "", ""))
    assert flags_for(state).mode == "NORMAL" and state.fleet.lost == ""
    assert any(isinstance(a, ClearAlert) and a.name == "fleet_lost" for a in actions)


def test_fleet_lost_then_halt_read_stays_halted(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        FleetLost("fleet_timeout", "halt"),
        FleetSwitchRead("HALT", 1, "al", "x"),
    )
    assert state.failsafe is not None and state.fleet.lost == ""


def test_fleet_lost_never_clears_a_failsafe(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        OperatorEnteredFailsafe("mine", "bob"),
        FleetLost("fleet_timeout", "degrade"),
    )
    assert flags_for(state).mode == "SIGNAL_READ_ONLY"


def test_backwards_version_is_never_applied(policy: Policy) -> None:
    state, _ = run(initial_state(policy), policy, FleetSwitchRead("HALT", 5, "al", "x"))
    after, actions = run(state, policy, FleetSwitchRead("RUN", 4, "al", "old"))
    assert after == state and actions == []


def test_fleet_state_round_trips_and_old_state_files_load(policy: Policy) -> None:
    state, _ = run(
        initial_state(policy),
        policy,
        OperatorSetReduceOnly("unwind", "bob"),
        FleetSwitchRead("HALT", 3, "al", "x"),
        FleetLost("fleet_timeout", "degrade"),
    )
    assert state_from_dict(state_to_dict(state), policy) == state
    old = state_to_dict(initial_state(policy))
    del old["fleet"]
    assert state_from_dict(old, policy) == initial_state(policy)
    damaged = state_to_dict(state)
    damaged["fleet"]["lost"] = 7
    assert state_from_dict(damaged, policy).fleet.lost == "restored"


def test_local_failsafe_survives_fleet_halt_and_run() -> None:
    from autoheal.core import ProcessExited, SpawnFinished
    from autoheal.core.policy import HealPolicy

    policy = make_policy(HealPolicy(1, (1.0,), 5.0, 0, 100.0, verify_min_uptime=0.0))
    state, _ = run(
        initial_state(policy),
        policy,
        SpawnFinished("feeder", True),
        ProcessExited("feeder"),
        FleetSwitchRead("HALT", 1, "al", "x"),
    )
    assert state.failsafe is not None and state.failsafe.set_by == "autoheal"
    state, _ = run(state, policy, FleetSwitchRead("RUN", 2, "al", "ok"))
    assert state.failsafe is not None and state.failsafe.set_by == "autoheal"


def test_components_parked_by_a_fleet_halt_restart_on_fleet_run(policy: Policy) -> None:
    from autoheal.core import ProcessExited, RestartProcess, SpawnFinished

    state, _ = run(
        initial_state(policy),
        policy,
        SpawnFinished("feeder", True),
        FleetSwitchRead("HALT", 1, "al", "x"),
        ProcessExited("feeder"),
    )
    assert state.components["feeder"].reason == "failsafe_active"
    state, actions = run(state, policy, FleetSwitchRead("RUN", 2, "al", "ok"))
    assert state.failsafe is None
    assert any(isinstance(a, RestartProcess) and a.component == "feeder" for a in actions)


def test_fleet_detached_ends_a_persisted_loss_but_not_a_fleet_halt(policy: Policy) -> None:
    from autoheal.core import FleetDetached

    state, _ = run(
        initial_state(policy),
        policy,
        FleetSwitchRead("HALT", 1, "al", "x"),
        FleetLost("fleet_timeout", "degrade"),
        FleetDetached(),
    )
    assert state.fleet.lost == "" and state.failsafe is not None
    state, _ = run(state, policy, OperatorClearedFailsafe("fleet gone", "bob"))
    assert flags_for(state).mode == "NORMAL"

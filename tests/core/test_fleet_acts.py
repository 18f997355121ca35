"""What the fleet does to a host, exactly: its halt, REDUCE_ONLY, RUN and a lost link.

Each act of the fleet is the fleet's (``set_by = "fleet"``) and says what the switch
said (``fleet <STATE> v<N> by <who>: <why>``); a lost link fails closed and says why
(``core/fleet_rules.py``, issue 28, docs/mutation.md). Pure: ``step`` with a fake ``now``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoheal.core.actions import (
    ClearAlert,
    RaiseAlert,
    RemoveStop,
    RestartProcess,
    SendNotice,
    WriteFlags,
    WriteStop,
)
from autoheal.core.fleet import FLEET
from autoheal.core.machine import step
from autoheal.core.observations import (
    FleetDetached,
    FleetLost,
    FleetSwitchRead,
    Observation,
    OperatorSetReduceOnly,
)
from autoheal.core.stages import Stage
from autoheal.core.state import FailsafeState, FleetState, ReduceOnlyState, RuntimeState
from autoheal.core.state import initial_state as _initial
from tests.core.conftest import make_policy

POLICY = make_policy()
NORMAL = _initial(POLICY)
MINE = ReduceOnlyState("careful", "bob")
REDUCED = replace(NORMAL, reduce_only=MINE)
LOCAL = FailsafeState("feeder: max_restarts_exceeded", "autoheal")
HALTED = replace(NORMAL, failsafe=LOCAL)
WHY = "fleet_unreachable: connection refused"
DEGRADED_WORDS = "DEGRADED: new entries paused, exits allowed"


def _step(state: RuntimeState, obs: Observation) -> tuple[RuntimeState, tuple[object, ...]]:
    d = step(state, obs, 10.0, POLICY)
    return d.state, tuple(a for a in d.actions if not isinstance(a, WriteFlags))


def _what(state: str, version: int) -> str:
    return f"fleet {state} v{version} by ops: incident"


def _read(state: str, version: int) -> FleetSwitchRead:
    return FleetSwitchRead(state, version, "ops", "incident")


# ------------------------------------------------------------------ a lost link


def test_a_lost_link_degrades_and_says_why() -> None:
    state, actions = _step(NORMAL, FleetLost(WHY, "degrade"))
    assert state == replace(NORMAL, fleet=FleetState(lost=WHY))
    assert actions == (
        RaiseAlert("fleet_lost", "fleet switch", WHY),
        SendNotice(
            "degraded",
            FLEET,
            "fleet_lost",
            f"fleet switch unreadable ({WHY}); runtime " + DEGRADED_WORDS,
        ),
    )
    again, more = _step(state, FleetLost("other", "degrade"))
    assert (again, more) == (state, ())


def test_a_lost_link_without_words_is_fleet_lost() -> None:
    state, _ = _step(NORMAL, FleetLost("", "degrade"))
    assert state.fleet.lost == "fleet_lost"


def test_a_lost_link_halts_with_on_lost_halt_setting_aside_an_operators_reduce_only() -> None:
    state, actions = _step(REDUCED, FleetLost(WHY, "halt"))
    halt = f"fleet_lost: {WHY}"
    assert state == replace(
        NORMAL, failsafe=FailsafeState(halt, FLEET), fleet=FleetState(lost=WHY, displaced=MINE)
    )
    assert actions == (
        WriteStop(halt, FLEET),
        RaiseAlert("fleet_lost", "fleet switch", WHY),
        SendNotice(
            "failsafe", FLEET, "fleet_lost", f"fleet switch unreadable ({WHY}); runtime HALTED"
        ),
    )


def test_a_lost_link_never_displaces_the_fleets_own_reduce_only_nor_a_failsafe() -> None:
    fleets = replace(NORMAL, reduce_only=ReduceOnlyState(_what("REDUCE_ONLY", 1), FLEET))
    state, _ = _step(fleets, FleetLost(WHY, "halt"))
    assert state.fleet.displaced is None and state.reduce_only is None
    state, actions = _step(HALTED, FleetLost(WHY, "halt"))
    assert state.failsafe == LOCAL
    assert not any(isinstance(a, WriteStop) for a in actions)


def test_a_fresh_read_ends_the_loss_and_says_so() -> None:
    lost, _ = _step(NORMAL, FleetLost(WHY, "degrade"))
    state, actions = _step(lost, _read("RUN", 0))
    assert state == NORMAL
    assert actions == (
        ClearAlert("fleet_lost", "fleet switch", "read again"),
        SendNotice("recovered", FLEET, "recovered", "fleet switch read again"),
    )


@pytest.mark.parametrize("lost", [True, False])
def test_fleet_detached_ends_only_a_loss(lost: bool) -> None:
    before = replace(NORMAL, fleet=FleetState(lost=WHY if lost else ""))
    state, actions = _step(before, FleetDetached())
    assert state == NORMAL
    assert actions == (
        (
            ClearAlert("fleet_lost", "fleet switch", "[fleet] removed"),
            SendNotice("recovered", FLEET, "recovered", "[fleet] removed from the config"),
        )
        if lost
        else ()
    )


# ------------------------------------------------------------------ the switch's states


def test_a_lower_version_is_never_applied() -> None:
    applied = replace(NORMAL, fleet=FleetState(version=5))
    assert _step(applied, _read("HALT", 4)) == (applied, ())


def test_a_halt_read_again_with_new_words_keeps_the_halt_with_them() -> None:
    halted, _ = _step(NORMAL, _read("HALT", 1))
    state, actions = _step(halted, FleetSwitchRead("HALT", 2, "ops", "still"))
    assert state.failsafe == FailsafeState("fleet HALT v2 by ops: still", FLEET)
    assert actions == ()
    same, none = _step(state, FleetSwitchRead("HALT", 2, "ops", "still"))
    assert (same, none) == (state, ())


def test_a_fleet_halt_over_a_failsafe_unwinding_under_the_fleets_reduce_only_halts_again() -> None:
    unwinding = replace(HALTED, reduce_only=ReduceOnlyState(_what("REDUCE_ONLY", 1), FLEET))
    state, actions = _step(unwinding, _read("HALT", 2))
    assert state.failsafe == LOCAL and state.reduce_only is None
    assert actions == (WriteStop(LOCAL.reason, LOCAL.set_by),)


def test_the_fleets_reduce_only_and_its_run() -> None:
    what = _what("REDUCE_ONLY", 1)
    state, actions = _step(NORMAL, _read("REDUCE_ONLY", 1))
    assert state.reduce_only == ReduceOnlyState(what, FLEET)
    assert actions == (SendNotice("operator", FLEET, "fleet_reduce_only", what),)
    state, actions = _step(state, _read("RUN", 2))
    assert state.reduce_only is None
    assert actions == (SendNotice("recovered", FLEET, "fleet_run", _what("RUN", 2)),)


@pytest.mark.parametrize("state", [REDUCED, HALTED], ids=["REDUCE_ONLY", "failsafe"])
def test_the_fleets_reduce_only_and_run_leave_what_they_did_not_set(state: RuntimeState) -> None:
    after, actions = _step(state, _read("REDUCE_ONLY", 1))
    assert (after.failsafe, after.reduce_only, actions) == (state.failsafe, state.reduce_only, ())
    after, actions = _step(after, _read("RUN", 2))
    assert (after.failsafe, after.reduce_only, actions) == (state.failsafe, state.reduce_only, ())


def test_the_fleets_run_gives_back_what_its_halt_set_aside_and_resumes_parked_components() -> None:
    halted, _ = _step(REDUCED, _read("HALT", 1))
    assert halted.fleet.displaced == MINE
    feeder = replace(
        halted.components["feeder"], stage=Stage.BACKOFF, reason="failsafe_active", attempts=2
    )
    trader = replace(feeder, held=True)
    parked = replace(halted, components={"feeder": feeder, "trader": trader})
    state, actions = _step(parked, _read("RUN", 2))
    what = _what("RUN", 2)
    assert state.failsafe is None and state.reduce_only == MINE
    assert state.fleet == FleetState(version=2)
    assert actions[:2] == (
        RemoveStop(what, FLEET),
        SendNotice("failsafe_cleared", FLEET, "fleet_run", what),
    )
    assert [a for a in actions if isinstance(a, RestartProcess)] == [
        RestartProcess("feeder", 1, 3, FLEET)
    ]


def test_the_fleets_reduce_only_after_its_halt_gives_back_an_operators_first() -> None:
    halted, _ = _step(REDUCED, _read("HALT", 1))
    state, _ = _step(halted, _read("REDUCE_ONLY", 2))
    assert state.failsafe is None and state.reduce_only == MINE


def test_the_fleets_run_keeps_a_reduce_only_set_during_its_halt() -> None:
    """An operator unwinding under the fleet's halt keeps unwinding after its RUN: the
    REDUCE_ONLY the halt set aside is older and is not given back over it."""
    halted, _ = _step(REDUCED, _read("HALT", 1))
    unwinding = step(halted, OperatorSetReduceOnly("unwind", "carol"), 10.0, POLICY).state
    state, _ = _step(unwinding, _read("RUN", 2))
    assert state.failsafe is None
    assert state.reduce_only == ReduceOnlyState("unwind", "carol")
    assert state.fleet == FleetState(version=2)

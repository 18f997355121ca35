"""Hypothesis stateful test of the fleet rules: reads, losses, operators, a fake clock.

The model drives the real judge (``core.fleet``) and the real ``step`` with random
switch records (good, bad, backwards), read failures, time passing and operator
commands, and checks the invariants a fleet kill switch lives by.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from autoheal.core import (
    IllegalCommandError,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorSetReduceOnly,
    step,
)
from autoheal.core.fleet import (
    FleetLink,
    SwitchRecord,
    Unreadable,
    encode_switch,
    judge_read,
    judge_time,
    parse_switch,
)
from autoheal.core.machine import flags_for
from autoheal.core.observations import (
    FleetDetached,
    FleetLost,
    FleetSwitchRead,
    Observation,
)
from autoheal.core.state import RuntimeState, initial_state, state_from_dict, state_to_dict

from .conftest import make_policy

STALE = 1.0
#: Strictness of a flags mode: nothing the fleet's loss does may lower it.
RANK = {"NORMAL": 0, "DEGRADED": 1, "REDUCE_ONLY": 2, "SIGNAL_READ_ONLY": 3}


class FleetModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.policy = make_policy()
        self.state = initial_state(self.policy)
        self.now = 0.0
        self.link = FleetLink(0.0, booting=True)
        self.on_lost = "degrade"
        self.redis_version = 0
        self.last: tuple[RuntimeState, Observation, RuntimeState] | None = None

    def apply(self, obs: Observation) -> None:
        before = self.state
        try:
            self.state = step(before, obs, self.now, self.policy).state
        except IllegalCommandError:
            return
        self.last = (before, obs, self.state)
        # The machine never leaves a link the judge thinks good while the state is lost,
        # except that only a read (not time) can end a loss.
        if isinstance(obs, FleetLost):
            self.check_lost_clears_nothing(before, self.state)

    def check_lost_clears_nothing(self, before: RuntimeState, after: RuntimeState) -> None:
        if before.failsafe is not None:
            assert after.failsafe == before.failsafe
        if before.reduce_only is not None and after.failsafe is None:
            assert after.reduce_only == before.reduce_only
        assert RANK[flags_for(after).mode] >= RANK[flags_for(before).mode]

    def judge(self, outcome: SwitchRecord | Unreadable) -> None:
        j = judge_read(
            self.link,
            outcome,
            self.now,
            applied_version=self.state.fleet.version,
            stale_after=STALE,
            on_lost=self.on_lost,
        )
        self.link = j.link
        for obs in j.observations:
            if isinstance(obs, FleetSwitchRead):
                assert obs.version >= self.state.fleet.version, "backwards version passed"
            self.apply(obs)

    # ------------------------------------------------------------------ rules

    @rule(state=st.sampled_from(["RUN", "REDUCE_ONLY", "HALT"]), bump=st.integers(0, 2))
    def read_record(self, state: str, bump: int) -> None:
        self.redis_version += bump
        raw = encode_switch(SwitchRecord(state, self.redis_version, "alice", "r", 1.0))
        self.judge(parse_switch(raw))

    @rule(version=st.integers(0, 5), state=st.sampled_from(["RUN", "HALT"]))
    def read_old_record(self, version: int, state: str) -> None:
        self.judge(parse_switch(encode_switch(SwitchRecord(state, version, "eve", "r", 1.0))))

    @rule(raw=st.sampled_from([b"garbage", b'{"state":"PAUSE","version":9}', b"[]"]))
    def read_bad_record(self, raw: bytes) -> None:
        self.judge(parse_switch(raw))

    @rule()
    def redis_flushed(self) -> None:
        self.redis_version = 0
        self.judge(parse_switch(None))

    @rule(problem=st.sampled_from(["fleet_unreachable", "fleet_timeout", "fleet_auth_failed"]))
    def read_failed(self, problem: str) -> None:
        self.judge(Unreadable(problem, "x"))

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 3.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        j = judge_time(self.link, self.now, stale_after=STALE, on_lost=self.on_lost)
        self.link = j.link
        for obs in j.observations:
            self.apply(obs)

    @rule(on_lost=st.sampled_from(["degrade", "halt"]))
    def reconfigure(self, on_lost: str) -> None:
        self.on_lost = on_lost

    @rule(actor=st.sampled_from(["bob", "operator"]))
    def operator_halts(self, actor: str) -> None:
        self.apply(OperatorEnteredFailsafe("mine", actor))

    @rule()
    def operator_reduce_only(self) -> None:
        self.apply(OperatorSetReduceOnly("unwind", "bob"))

    @rule()
    def fleet_table_removed(self) -> None:
        self.apply(FleetDetached())

    @rule()
    def operator_clears(self) -> None:
        self.apply(OperatorClearedFailsafe("done", "bob"))

    # ------------------------------------------------------------------ invariants

    @invariant()
    def fleet_run_never_clears_a_local_failsafe(self) -> None:
        if self.last is None:
            return
        before, obs, after = self.last
        if isinstance(obs, FleetSwitchRead | FleetLost | FleetDetached):
            if before.failsafe is not None and before.failsafe.set_by != "fleet":
                assert after.failsafe == before.failsafe
            if before.reduce_only is not None and before.reduce_only.set_by != "fleet":
                # An operator's REDUCE_ONLY is kept, or set aside under a halt (given back).
                assert after.reduce_only == before.reduce_only or (
                    after.failsafe is not None and after.fleet.displaced == before.reduce_only
                )

    @invariant()
    def a_backwards_version_is_never_applied(self) -> None:
        if self.last is None:
            return
        before, obs, after = self.last
        assert after.fleet.version >= before.fleet.version
        if isinstance(obs, FleetSwitchRead) and obs.version < before.fleet.version:
            assert after == before

    @invariant()
    def lost_means_fail_closed(self) -> None:
        if self.state.fleet.lost:
            assert flags_for(self.state).mode != "NORMAL"

    @invariant()
    def fleet_halt_read_means_halted(self) -> None:
        if self.last is None:
            return
        _, obs, after = self.last
        if isinstance(obs, FleetSwitchRead) and obs.state == "HALT":
            # Halted; or an operator on this host is unwinding (REDUCE_ONLY inside the
            # failsafe), which a fleet halt leaves alone as a local one does.
            assert after.failsafe is not None and not after.fleet.lost
            ro = after.reduce_only
            assert flags_for(after).mode == "SIGNAL_READ_ONLY" or (
                ro is not None and ro.set_by != "fleet"
            )

    @invariant()
    def state_round_trips(self) -> None:
        assert state_from_dict(state_to_dict(self.state), self.policy) == self.state


TestFleetModel = FleetModel.TestCase
TestFleetModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)

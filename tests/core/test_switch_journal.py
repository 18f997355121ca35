"""Who the journal says acted on the kill switch, and why (``core/switch.py``, issue 28).

Every operator act found on disk (a ``STOP.TXT`` created, removed or rewritten by
hand, a flags document, the risk latch) is an event whose token, observation,
reason and actor are journaled as they are: these tests pin each of them exactly,
and the notices and alerts the switch raises with them. They were written against
the survivors of a mutation run (``scripts/mutation src/autoheal/core/switch.py``,
docs/mutation.md): each test names the decision it pins, not the mutant.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.actions import ClearAlert, RaiseAlert, RemoveStop, SendNotice, WriteFlags
from autoheal.core.fleet import FLEET
from autoheal.core.observations import (
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorSetReduceOnly,
    RiskLatchSeen,
)
from autoheal.core.state import FailsafeState, ReduceOnlyState, RuntimeState, initial_state
from autoheal.core.switch import (
    FLAGS,
    LATCH,
    RISK,
    STOP,
    TIGHTEN_ONLY,
    DiskView,
    FlagsDoc,
    Interpretation,
    LatchView,
    SwitchEvent,
    SwitchState,
    WriteFailure,
    due_writes,
    interpret,
    retry_delay,
    stop_set_by,
    write_failed,
    write_succeeded,
)
from tests.core.conftest import make_policy

POLICY = make_policy()
NORMAL = initial_state(POLICY)
WHY = "feeder: max_restarts_exceeded"
HALTED = replace(NORMAL, failsafe=FailsafeState(WHY, "autoheal"))
UNWINDING = replace(HALTED, reduce_only=ReduceOnlyState("unwind", "operator"))
REDUCED = replace(NORMAL, reduce_only=ReduceOnlyState("careful", "operator"))
RISK_REDUCED = replace(NORMAL, reduce_only=ReduceOnlyState("risk_daily_loss", RISK))
FLEET_HALTED = replace(NORMAL, failsafe=FailsafeState("fleet HALT v1 by ops: incident", FLEET))
OURS_HALTED = FlagsDoc(True, "SIGNAL_READ_ONLY", WHY, "autoheal", 1.0)
OURS_NORMAL = FlagsDoc(False, "NORMAL", "", "autoheal", 1.0)
LATCH_SEEN = LatchView("risk_daily_loss realized_pnl_today=-150", (1, 2, 3))

# What the journal says of each act by hand (docs/files.md): the reason an act
# written without one gets, and the actor (the document's set_by, else "operator").
BY_HAND = "operator"


def _failure(op: str, *, errno: str = "EROFS", attempts: int = 1, retry_at: float = 1.0):
    return WriteFailure(op, errno, "read-only", 0.0, attempts, retry_at)


def _refusal(set_by: str) -> SendNotice:
    return SendNotice(
        "operator",
        "runtime",
        "flags_loosen_refused",
        f"global_flags.json signed set_by={set_by} asks to loosen the kill switch: ignored "
        "(only the daemon and an operator clear; `autoheal failsafe clear`, or a document "
        "signed with your own name)",
    )


def _flags(state: RuntimeState, doc: FlagsDoc, *, startup: bool = False) -> Interpretation:
    """The operator wrote ``doc`` over the daemon's own document for ``state``."""
    ours = OURS_NORMAL if state.failsafe is None else OURS_HALTED
    halted = state.failsafe is not None and state.reduce_only is None
    sw = SwitchState(stop_on_disk=halted, flags_on_disk=ours)
    by = state.failsafe.set_by if state.failsafe is not None else None
    return interpret(sw, state, DiskView(halted, doc, stop_set_by=by), startup=startup)


# ------------------------------------------------------------------ each act, exactly


def _entered(token: str, reason: str, actor: str = BY_HAND) -> SwitchEvent:
    return SwitchEvent(token, OperatorEnteredFailsafe(reason, actor), actor)


def _cleared(token: str, reason: str, actor: str = BY_HAND) -> SwitchEvent:
    return SwitchEvent(token, OperatorClearedFailsafe(reason, actor), actor)


FLAG_ACTS = {
    "failsafe_active=false clears, by the operator who signed it": (
        HALTED,
        FlagsDoc(False, set_by="alice"),
        [_cleared("flags_cleared", "failsafe_active=false written to global_flags.json", "alice")],
    ),
    "an unsigned clear is the operator's": (
        HALTED,
        FlagsDoc(False),
        [_cleared("flags_cleared", "failsafe_active=false written to global_flags.json")],
    ),
    "a clear signed with the daemon's name is still an operator's": (
        HALTED,
        FlagsDoc(False, set_by="autoheal"),
        [_cleared("flags_cleared", "failsafe_active=false written to global_flags.json")],
    ),
    "failsafe_active=true enters": (
        NORMAL,
        FlagsDoc(True),
        [_entered("flags_entered", "failsafe_active=true written to global_flags.json")],
    ),
    "failsafe_active=true with a reason and a name": (
        NORMAL,
        FlagsDoc(True, reason="maintenance", set_by="alice"),
        [_entered("flags_entered", "maintenance", "alice")],
    ),
    "REDUCE_ONLY": (
        NORMAL,
        FlagsDoc(mode="REDUCE_ONLY"),
        [
            SwitchEvent(
                "flags_reduce_only",
                OperatorSetReduceOnly("mode REDUCE_ONLY written to global_flags.json", BY_HAND),
            )
        ],
    ),
    "REDUCE_ONLY signed by the risk latch tightens, as risk": (
        NORMAL,
        FlagsDoc(mode="REDUCE_ONLY", reason="risk_daily_loss", set_by=RISK),
        [SwitchEvent("flags_reduce_only", OperatorSetReduceOnly("risk_daily_loss", RISK), RISK)],
    ),
    "REDUCE_ONLY inside a failsafe unwinds it, by the operator who signed it": (
        HALTED,
        FlagsDoc(mode="REDUCE_ONLY", set_by="bob"),
        [
            SwitchEvent(
                "flags_reduce_only",
                OperatorSetReduceOnly("mode REDUCE_ONLY written to global_flags.json", "bob"),
                "bob",
            )
        ],
    ),
    "SIGNAL_READ_ONLY halts": (
        NORMAL,
        FlagsDoc(mode="SIGNAL_READ_ONLY"),
        [_entered("flags_halt", "mode SIGNAL_READ_ONLY written to global_flags.json")],
    ),
    "SIGNAL_READ_ONLY while unwinding halts everything again": (
        UNWINDING,
        FlagsDoc(mode="SIGNAL_READ_ONLY", set_by="bob"),
        [_entered("flags_halt", "mode SIGNAL_READ_ONLY written to global_flags.json", "bob")],
    ),
    "SIGNAL_READ_ONLY during a fleet halt takes it over": (
        FLEET_HALTED,
        FlagsDoc(mode="SIGNAL_READ_ONLY", reason="mine now", set_by="carol"),
        [_entered("flags_halt", "mine now", "carol")],
    ),
    "a clear and a halt in one document: both, in order": (
        HALTED,
        FlagsDoc(False, "SIGNAL_READ_ONLY"),
        [
            _cleared("flags_cleared", "failsafe_active=false written to global_flags.json"),
            _entered("flags_halt", "mode SIGNAL_READ_ONLY written to global_flags.json"),
        ],
    ),
    "NORMAL while unwinding a failsafe halts": (
        UNWINDING,
        FlagsDoc(mode="NORMAL", set_by="bob"),
        [
            _entered(
                "flags_left_reduce_only",
                "mode NORMAL written while the failsafe holds: full halt",
                "bob",
            )
        ],
    ),
    "DEGRADED while unwinding a failsafe halts": (
        UNWINDING,
        FlagsDoc(mode="DEGRADED"),
        [
            _entered(
                "flags_left_reduce_only",
                "mode DEGRADED written while the failsafe holds: full halt",
            )
        ],
    ),
    "NORMAL ends an operator's REDUCE_ONLY, by the operator who signed it": (
        REDUCED,
        FlagsDoc(mode="NORMAL", set_by="bob"),
        [_cleared("flags_left_reduce_only", "mode NORMAL written by hand", "bob")],
    ),
    "DEGRADED ends an operator's REDUCE_ONLY": (
        REDUCED,
        FlagsDoc(mode="DEGRADED"),
        [_cleared("flags_left_reduce_only", "mode DEGRADED written by hand")],
    ),
}


@pytest.mark.parametrize("case", FLAG_ACTS, ids=list(FLAG_ACTS))
def test_a_flags_document_by_hand_is_journaled_exactly(case: str) -> None:
    state, doc, expected = FLAG_ACTS[case]
    result = _flags(state, doc)
    assert list(result.events) == expected
    assert result.actions == ()


def test_a_stop_file_created_by_hand_is_the_operators() -> None:
    sw = SwitchState(stop_on_disk=False, flags_on_disk=OURS_NORMAL)
    result = interpret(sw, NORMAL, DiskView(True, OURS_NORMAL))
    assert result.events == (_entered("stop_file_created", "STOP.TXT present (created by hand)"),)


def test_a_stop_file_removed_by_hand_is_the_operators_clear() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    result = interpret(sw, HALTED, DiskView(False, OURS_HALTED))
    assert result.events == (_cleared("stop_file_removed", "STOP.TXT removed by hand"),)


@pytest.mark.parametrize(
    ("set_by", "actor"), [("alice", "alice"), (None, BY_HAND), (RISK, BY_HAND)]
)
def test_a_stop_file_rewritten_during_a_fleet_halt_names_who_wrote_it(
    set_by: str | None, actor: str
) -> None:
    ours = FlagsDoc(True, "SIGNAL_READ_ONLY", FLEET_HALTED.failsafe.reason, FLEET, 1.0)
    sw = SwitchState(stop_on_disk=True, flags_on_disk=ours)
    result = interpret(sw, FLEET_HALTED, DiskView(True, ours, stop_set_by=set_by))
    reason = "STOP.TXT rewritten by hand during a fleet halt"
    assert result.events == (_entered("stop_file_rewritten", reason, actor),)


def test_the_risk_latch_asks_as_risk_a_tightening() -> None:
    result = interpret(SwitchState(), NORMAL, DiskView(False, latch=LATCH_SEEN))
    (event,) = result.events
    assert event == SwitchEvent("risk_latch", RiskLatchSeen(LATCH_SEEN.reason), RISK)
    assert event.journal_kind == "kill_switch_tightened"
    assert result.switch.latch_on_disk == LATCH_SEEN


def test_the_risk_latch_removed_by_hand_is_the_operators_clear_of_its_reduce_only() -> None:
    sw = SwitchState(stop_on_disk=False, flags_on_disk=OURS_NORMAL, latch_on_disk=LATCH_SEEN)
    result = interpret(sw, RISK_REDUCED, DiskView(False, OURS_NORMAL))
    assert result.events == (_cleared("risk_latch_removed", "risk_latch.json removed by hand"),)
    assert result.events[0].journal_kind == "operator_kill_switch"
    assert result.switch.latch_on_disk is None


@pytest.mark.parametrize(
    ("state", "startup"),
    [
        (RISK_REDUCED, True),  # found gone at start: nothing on disk loosens then
        (REDUCED, False),  # the REDUCE_ONLY is an operator's, not the latch's
        (replace(RISK_REDUCED, failsafe=FailsafeState(WHY, "autoheal")), False),  # a failsafe
    ],
    ids=["at start", "an operator's REDUCE_ONLY", "inside a failsafe"],
)
def test_the_risk_latch_gone_clears_nothing_else(state: RuntimeState, startup: bool) -> None:
    sw = SwitchState(flags_on_disk=OURS_NORMAL, latch_on_disk=LATCH_SEEN)
    result = interpret(
        sw, state, DiskView(state.failsafe is not None, OURS_NORMAL), startup=startup
    )
    assert [e for e in result.events if e.token == "risk_latch_removed"] == []


# ------------------------------------------------------------------ refused loosening


@pytest.mark.parametrize(
    ("state", "doc"),
    [
        (HALTED, FlagsDoc(False, set_by=RISK)),
        (HALTED, FlagsDoc(mode="REDUCE_ONLY", set_by=FLEET)),
        (REDUCED, FlagsDoc(mode="NORMAL", set_by=RISK)),
        (REDUCED, FlagsDoc(mode="DEGRADED", set_by=FLEET)),
    ],
    ids=["clear by risk", "unwind by fleet", "NORMAL by risk", "DEGRADED by fleet"],
)
def test_a_tighten_only_writers_loosening_is_refused_and_said(
    state: RuntimeState, doc: FlagsDoc
) -> None:
    result = _flags(state, doc)
    assert result.events == ()
    assert result.actions == (_refusal(doc.set_by or ""),)


def test_an_operators_old_reduce_only_found_at_start_is_ignored_not_refused() -> None:
    result = _flags(HALTED, FlagsDoc(mode="REDUCE_ONLY", set_by="bob"), startup=True)
    assert result.events == () and result.actions == ()


# ------------------------------------------------------------------ alerts and failures


def test_an_invalid_flags_file_raises_and_clears_its_alert_exactly() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_HALTED)
    bad = interpret(sw, HALTED, DiskView(True, FlagsDoc(), "invalid: not JSON"))
    assert bad.actions == (RaiseAlert("flags_invalid", "global_flags.json", "invalid: not JSON"),)
    fixed = interpret(bad.switch, HALTED, DiskView(True, OURS_HALTED))
    assert fixed.actions == (ClearAlert("flags_invalid", "global_flags.json", "valid again"),)


def test_a_stop_file_removed_by_hand_ends_our_failing_write_of_it() -> None:
    """A removal of ours failed, ``failsafe enter`` halted again, then the operator
    removed the file: the failsafe is cleared and the file says so, no retry left."""
    sw = SwitchState(
        stop_on_disk=True, flags_on_disk=OURS_HALTED, failures={STOP: _failure("remove")}
    )
    result = interpret(sw, HALTED, DiskView(False, OURS_HALTED))
    assert [e.token for e in result.events] == ["stop_file_removed"]
    assert result.switch.failures == {}


@pytest.mark.parametrize(
    ("state", "stop_present", "op", "settled"),
    [
        (NORMAL, False, "remove", True),
        (UNWINDING, False, "remove", True),
        (NORMAL, True, "remove", False),
        (HALTED, True, "write", True),
        (HALTED, False, "write", False),
    ],
)
def test_a_failing_stop_write_ends_when_the_file_already_says_what_it_must(
    state: RuntimeState, stop_present: bool, op: str, settled: bool
) -> None:
    known = op == "remove"
    sw = SwitchState(stop_on_disk=known, flags_on_disk=OURS_HALTED, failures={STOP: _failure(op)})
    result = interpret(sw, state, DiskView(stop_present, OURS_HALTED))
    assert (STOP not in result.switch.failures) == settled


@pytest.mark.parametrize("gone", [True, False])
def test_a_failing_latch_removal_ends_when_the_latch_is_gone(gone: bool) -> None:
    sw = SwitchState(
        flags_on_disk=OURS_HALTED, latch_on_disk=LATCH_SEEN, failures={LATCH: _failure("remove")}
    )
    disk = DiskView(True, OURS_HALTED, latch=None if gone else LATCH_SEEN)
    result = interpret(sw, HALTED, disk)
    if gone:
        assert result.actions == (
            ClearAlert("risk_latch_remove_failed", "risk_latch.json", "gone"),
        )
        assert result.switch.failures == {}
    else:
        assert result.actions == ()
        assert LATCH in result.switch.failures


def test_a_write_failure_without_detail_says_its_errno_last() -> None:
    """The message ends at the errno when the OS gave no detail (no trailing space)."""
    failure = WriteFailure("remove", "EACCES", "", 0.0, 1, 1.0)
    assert failure.message(LATCH) == "risk_latch.json could not be removed: EACCES"
    assert WriteFailure("write", "EIO", "", 0.0, 1, 1.0).message(FLAGS) == (
        "global_flags.json could not be written: EIO"
    )


def test_write_failed_and_succeeded_say_exactly_what_failed() -> None:
    sw, said = write_failed(
        SwitchState(), STOP, op="write", errno="EROFS", detail="read-only fs", now=10.0
    )
    message = "STOP.TXT could not be written: EROFS read-only fs"
    assert sw.failures[STOP] == WriteFailure("write", "EROFS", "read-only fs", 10.0, 1, 11.0)
    assert said == (
        RaiseAlert("stop_file_write_failed", "STOP.TXT", message),
        SendNotice("write_failed", "runtime", "stop_file_write_failed", message),
    )
    sw, said = write_failed(sw, STOP, op="write", errno="EROFS", detail="again", now=20.0)
    assert said == ()
    assert sw.failures[STOP] == WriteFailure("write", "EROFS", "again", 10.0, 2, 22.0)
    sw, said = write_failed(sw, STOP, op="write", errno="ENOSPC", detail="full", now=30.0)
    assert sw.failures[STOP].since == 10.0  # the same episode, said again: a new cause
    assert [type(a) for a in said] == [RaiseAlert, SendNotice]
    sw, said = write_succeeded(sw, STOP, present=True)
    assert said == (
        ClearAlert("stop_file_write_failed", "STOP.TXT", "written after 3 failed tries"),
        SendNotice(
            "write_recovered",
            "runtime",
            "write_recovered",
            "STOP.TXT written again after 3 failed tries (ENOSPC)",
        ),
    )
    assert sw.failures == {} and sw.stop_on_disk is True


@pytest.mark.parametrize("present", [False, True])
def test_the_latch_removed_or_left_standing_ends_the_failing_removal(present: bool) -> None:
    failing = _failure("remove", attempts=2)
    sw = SwitchState(latch_on_disk=LATCH_SEEN, failures={LATCH: failing})
    sw, said = write_succeeded(sw, LATCH, present=present)
    assert sw == SwitchState(latch_on_disk=LATCH_SEEN if present else None)
    assert said[0] == ClearAlert(
        "risk_latch_remove_failed", "risk_latch.json", "written after 2 failed tries"
    )


# ------------------------------------------------------------------ due writes, backoff


def test_a_complete_document_that_says_otherwise_is_written_over_exactly() -> None:
    sw = SwitchState(stop_on_disk=True, flags_on_disk=OURS_NORMAL)
    assert due_writes(sw, HALTED, now=0.0) == (
        WriteFlags(True, "SIGNAL_READ_ONLY", WHY, "autoheal"),
    )


def test_failing_writes_wait_for_their_backoff() -> None:
    sw = SwitchState(
        stop_on_disk=True,
        flags_on_disk=OURS_HALTED,
        failures={STOP: _failure("remove", retry_at=10.0), FLAGS: _failure("write", retry_at=10.0)},
    )
    assert due_writes(sw, NORMAL, now=9.9) == ()
    assert due_writes(sw, NORMAL, now=10.0) == (
        RemoveStop("retrying the removal of STOP.TXT", "autoheal"),
        WriteFlags(False, "NORMAL", "", "autoheal"),
    )


@given(st.integers(min_value=-3, max_value=40))
def test_retry_delay_doubles_from_one_second_up_to_the_cap(attempts: int) -> None:
    assert retry_delay(attempts) == min(30.0, 2.0 ** max(0, attempts - 1))


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("STOP set_by=alice", "alice"),  # the marker at the very start
        ("t STOP set_by=alice reason=a b c", "alice"),
        ("t STOP set_by=a reason=x STOP set_by=b", "a"),  # the first marker
        ("t STOP set_by= alice", None),  # an empty name is none
    ],
)
def test_stop_set_by_reads_the_name_right_after_the_first_marker(
    line: str, name: str | None
) -> None:
    assert stop_set_by(line) == name


# ------------------------------------------------------------------ every act: who and why

SIGNERS = st.sampled_from([None, "alice", "operator", RISK, FLEET])
DOCS = st.builds(
    FlagsDoc,
    failsafe_active=st.none() | st.booleans(),
    mode=st.none() | st.sampled_from(["NORMAL", "DEGRADED", "REDUCE_ONLY", "SIGNAL_READ_ONLY"]),
    reason=st.none() | st.just("why"),
    set_by=SIGNERS,
)
STATES = st.sampled_from([NORMAL, HALTED, UNWINDING, REDUCED, RISK_REDUCED, FLEET_HALTED])
LATCHES = st.none() | st.just(LATCH_SEEN)
KNOWN = st.builds(
    SwitchState,
    stop_on_disk=st.none() | st.booleans(),
    flags_on_disk=st.none() | DOCS,
    latch_on_disk=LATCHES,
)
DEFAULT_REASON = {
    "flags_entered": "failsafe_active=true written to global_flags.json",
    "flags_reduce_only": "mode REDUCE_ONLY written to global_flags.json",
    "flags_halt": "mode SIGNAL_READ_ONLY written to global_flags.json",
}


@given(KNOWN, STATES, st.booleans(), DOCS, LATCHES, SIGNERS, st.booleans())
def test_every_act_names_who_did_it(
    sw: SwitchState,
    state: RuntimeState,
    stop: bool,
    doc: FlagsDoc,
    latch: LatchView | None,
    stop_by: str | None,
    startup: bool,
) -> None:
    """The journal's actor is the observation's; a clear is always an operator's; an act
    written in the flags is its signer's (``operator`` unsigned, or signed with the
    daemon's own name), with its reason or the key it set; only the latch and
    tighten-only signers are journaled as tightening."""
    disk = DiskView(stop, doc, latch=latch, stop_set_by=stop_by)
    result = interpret(sw, state, disk, startup=startup)
    for event in result.events:
        obs = event.observation
        tightened = event.journal_kind == "kill_switch_tightened"
        assert tightened == (event.actor in TIGHTEN_ONLY)
        if isinstance(obs, RiskLatchSeen):
            assert event.actor == RISK and obs.reason == LATCH_SEEN.reason
            continue
        assert isinstance(
            obs, OperatorEnteredFailsafe | OperatorClearedFailsafe | OperatorSetReduceOnly
        )
        assert event.actor == obs.actor and obs.reason
        if isinstance(obs, OperatorClearedFailsafe):
            assert not tightened
            if event.token.startswith("flags_"):
                # A clear written in the flags is its signer's, never the daemon's name.
                signer = doc.set_by if doc.set_by not in (None, "autoheal") else BY_HAND
                assert event.actor == signer
            else:
                assert event.actor == BY_HAND
        elif event.token in DEFAULT_REASON:
            assert event.actor == (doc.set_by or BY_HAND)
            assert obs.reason == (doc.reason or DEFAULT_REASON[event.token])
        elif event.token == "flags_left_reduce_only":
            assert event.actor == (doc.set_by or BY_HAND)
            assert obs.reason == f"mode {doc.mode} written while the failsafe holds: full halt"
        elif event.token == "stop_file_rewritten":
            assert event.actor == (stop_by if stop_by and stop_by not in TIGHTEN_ONLY else BY_HAND)
        else:
            assert event.token == "stop_file_created" and event.actor == BY_HAND
    refusals = [a for a in result.actions if isinstance(a, SendNotice)]
    assert refusals in ([], [_refusal(doc.set_by or "")])
    if refusals:
        assert doc.set_by in TIGHTEN_ONLY

"""Each invariant of the simulator can fail: hand-made bad inputs, one a test.

(That they hold on the real daemon is the batch's business: ``test_batch.py``.)
"""

from __future__ import annotations

import orjson
import pytest

from autoheal.sim import invariants as inv

pytestmark = [pytest.mark.timeout(30)]


def notice(event_id: int, kind: str, message: str = "") -> inv.JournalEvent:
    return inv.JournalEvent(event_id, "notice", data={"kind": kind, "message": message})


def test_a_clear_with_no_operator_act_since_the_failsafe_fails() -> None:
    ledger = inv.ClearLedger()
    ledger.act(3)  # an act before the failsafe: it cannot clear what came later
    found = ledger.see([notice(5, "failsafe"), notice(9, "failsafe_cleared", "by operator")])
    assert len(found) == 1 and "no operator act" in found[0]


def test_a_clear_after_an_operator_act_holds_once() -> None:
    ledger = inv.ClearLedger()
    assert ledger.see([notice(5, "failsafe")]) == []
    ledger.act(6)
    assert ledger.see([notice(7, "failsafe_cleared", "failsafe cleared by operator: x")]) == []
    # The same act does not pay for a second clear.
    found = ledger.see([notice(8, "failsafe"), notice(9, "failsafe_cleared")])
    assert len(found) == 1


def test_an_executed_clear_command_is_an_operator_act() -> None:
    ledger = inv.ClearLedger()
    events = [
        notice(5, "failsafe"),
        inv.JournalEvent(6, "failsafe_clear.started", command_id="c1"),
        notice(7, "failsafe_cleared", "failsafe cleared by operator: mended"),
    ]
    assert ledger.see(events) == []


def test_a_clear_in_the_daemons_own_name_fails() -> None:
    ledger = inv.ClearLedger()
    ledger.see([notice(5, "failsafe")])
    ledger.act(6)
    found = ledger.see([notice(7, "failsafe_cleared", "failsafe cleared by autoheal: tidy")])
    assert found == ["failsafe cleared by the daemon itself: failsafe cleared by autoheal: tidy"]


@pytest.mark.parametrize(
    ("stop", "flags"),
    [
        (True, b'{"failsafe_active": false, "mode": "NORMAL"}'),
        (False, b'{"failsafe_active": true}'),
        (False, b'{"mode": "REDUCE_ONLY"}'),
        (False, b'{"mode": "SIGNAL_READ_ONLY"}'),
        (False, None),
        (False, b'{"failsafe_act'),
        (False, b"[]"),
    ],
)
def test_a_buy_allowed_while_halted_fails(stop: bool, flags: bytes | None) -> None:
    assert inv.halted_refuses_buy(stop, flags, (True, "ok")) != []
    assert inv.halted_refuses_buy(stop, flags, (False, "stop_file_present")) == []


def test_a_buy_allowed_while_not_halted_holds() -> None:
    assert inv.halted_refuses_buy(False, b'{"failsafe_active": false}', (True, "ok")) == []


def test_a_start_during_a_failsafe_fails_and_known_bugs_are_told_apart() -> None:
    starts = [
        inv.StartRecord(1.0, "feeder", None),
        inv.StartRecord(2.0, "feeder", "operator", decided="in_failsafe"),
        inv.StartRecord(3.0, "trader", "operator", boot=True),
        inv.StartRecord(4.0, "trader", "operator", decided="before"),
        inv.StartRecord(5.0, "trader", "operator", decided="same_step"),
    ]
    assert len(inv.no_start_in_failsafe(starts)) == 4
    assert inv.no_start_in_failsafe(starts, known=False) == [
        "feeder started at t=2.000 during a failsafe (operator)"
    ]
    assert [bug for bug, _ in inv.known_starts_in_failsafe(starts)] == [
        "boot_start_in_failsafe",
        "stale_restart_after_failsafe",
        "restart_in_the_step_entering_failsafe",
    ]
    assert set(inv.KNOWN_BUGS) == {
        "boot_start_in_failsafe",
        "stale_restart_after_failsafe",
        "restart_in_the_step_entering_failsafe",
        # the queue's lock (tests/sim/test_links.py): not starts, counted by the run
        "queue_lock_error_kills_daemon",
        "dead_claim_settle_not_retried",
    }


def test_a_torn_document_fails_and_the_operators_own_garbage_does_not() -> None:
    whole = orjson.dumps({"schema": 1, "dor": True})
    files = {
        "health_v2.json": whole[:-3],
        "autoheal_state.json": b'{"components": {}}',
        "global_flags.json": b'{"failsafe_act',
        "STOP.TXT": b"2026-01-01T00:00:00Z STOP set_by=autoheal reas",
    }
    found = inv.whole_documents(files, by_hand={})
    assert len(found) == 4
    by_hand = {"global_flags.json": b'{"failsafe_act', "STOP.TXT": files["STOP.TXT"]}
    assert len(inv.whole_documents(files, by_hand=by_hand)) == 2
    good = {"health_v2.json": whole, "STOP.TXT": b"t STOP set_by=autoheal reason=x\n"}
    assert inv.whole_documents(good, by_hand={}) == []


def test_a_key_for_two_commands_or_a_command_run_twice_fails() -> None:
    ledger = inv.KeyLedger()
    restart = ("restart", "feeder", "r")
    assert ledger.submitted(inv.Submission("k0", restart, "queued", "c0")) == []
    assert ledger.submitted(inv.Submission("k0", restart, "duplicate", "c0")) == []
    clear = ("failsafe_clear", "", "r")
    assert ledger.submitted(inv.Submission("k0", clear, "conflict", None)) == []
    assert ledger.submitted(inv.Submission("k0", clear, "duplicate", "c0")) != []
    assert ledger.submitted(inv.Submission("k0", restart, "queued", "c9")) != []
    started = inv.JournalEvent(1, "started", command_id="c0")
    assert ledger.see([started]) == []
    assert ledger.see([inv.JournalEvent(2, "started", command_id="c0")]) == [
        "command under key k0 started 2 times"
    ]


def test_restarts_over_the_budget_fail() -> None:
    assert inv.within_budget({"feeder": 3, "trader": 0}, 3) == []
    assert inv.within_budget({"feeder": 4}, 3) != []


def test_a_failsafe_missing_from_the_files_fails() -> None:
    halted = {"failsafe_active": True, "mode": "SIGNAL_READ_ONLY"}
    assert inv.failsafe_visible(True, False, True, halted) == []
    assert inv.failsafe_visible(True, True, False, {**halted, "mode": "REDUCE_ONLY"}) == []
    assert len(inv.failsafe_visible(True, False, False, {"failsafe_active": False})) == 2
    assert inv.failsafe_visible(False, False, False, None) == []


def test_liveness_fails_when_nothing_explains_a_missing_dor() -> None:
    assert inv.live(True, False, [], []) == []
    assert inv.live(False, True, ["feeder"], []) == []
    assert inv.live(False, False, [], []) == []  # what is not running was stopped by hand
    assert inv.live(False, False, ["feeder"], []) != []
    assert inv.live(True, False, [], ["k3"]) == ["command under key k3 never finished"]

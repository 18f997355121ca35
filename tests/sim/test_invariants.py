"""Each invariant of the simulator can fail: hand-made bad inputs, one a test.

(That they hold on the real daemon is the batch's business: ``test_batch.py``.)
"""

from __future__ import annotations

from pathlib import Path

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


def test_a_running_clear_command_clears_a_failsafe_entered_again_during_it() -> None:
    # The clear's own flags write first reads an operator's earlier hand edit (the
    # watch had not reported it) and enters that failsafe: its notice is journaled
    # before the clear's own failsafe_cleared notice.
    ledger = inv.ClearLedger()
    events = [
        notice(5, "failsafe"),
        inv.JournalEvent(6, "failsafe_clear.started", command_id="c1"),
        notice(7, "failsafe", "failsafe entered by alice: halt"),
        notice(8, "failsafe_cleared", "failsafe cleared by operator: mended"),
        inv.JournalEvent(9, "failsafe_clear.succeeded", command_id="c1"),
    ]
    assert ledger.see(events) == []
    # Once the command finished, a failsafe entered after it needs an act of its own.
    found = ledger.see([notice(10, "failsafe"), notice(11, "failsafe_cleared")])
    assert len(found) == 1 and "no operator act" in found[0]


def test_a_resume_is_weighed_after_the_dead_daemons_last_events() -> None:
    # Seed 5456: the fleet's halt (event 5) lifted by its RUN (event 7), neither saved;
    # the next daemon resumes the older fleet failsafe of its state file (journal at 7)
    # before the ledger has read 6..7, and the fleet's RUN lifts that one too (event 9).
    ledger = inv.ClearLedger()
    assert ledger.see([notice(5, "failsafe", "fleet switch unreadable (fleet_timeout)")]) == []
    ledger.fleet_owned = True  # the reason token of a fleet entry (FLEET_ENTRIES)
    ledger.resumed(7, fleet=True)
    run = "fleet RUN v0 by ?: fleet switch never set"
    events = [notice(7, "failsafe_cleared", run), notice(9, "failsafe_cleared", run)]
    events = [inv.JournalEvent(e.id, e.kind, reason=inv.FLEET_CLEAR, data=e.data) for e in events]
    assert ledger.see(events) == []


def test_a_resumed_local_failsafe_lifted_by_the_fleet_still_fails() -> None:
    ledger = inv.ClearLedger()
    ledger.resumed(7, fleet=False)  # nothing unread: weighed at once
    run = inv.JournalEvent(
        9, "notice", reason=inv.FLEET_CLEAR, data={"kind": "failsafe_cleared", "message": "RUN"}
    )
    found = ledger.see([run])
    assert found == ["a fleet RUN cleared a local failsafe (event 9, entered at event 7): RUN"]


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


def test_a_start_during_a_failsafe_fails_named_by_how_it_came_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts = [
        inv.StartRecord(1.0, "feeder", None),
        inv.StartRecord(2.0, "feeder", "operator", decided="in_failsafe"),
        inv.StartRecord(3.0, "trader", "operator", boot=True),
        inv.StartRecord(4.0, "trader", "operator", decided="before"),
        inv.StartRecord(5.0, "trader", "operator", decided="same_step"),
        inv.StartRecord(6.0, "feeder", "operator", decided="reentered"),
    ]
    # Every such start fails, named by how it came about; none is a known bug here.
    monkeypatch.setattr(inv, "KNOWN_BUGS", {})
    assert inv.no_start_in_failsafe(starts, known=False) == [
        "feeder started at t=2.000 during a failsafe (operator)",
        "trader started at t=3.000 during a failsafe (operator) [boot_start_in_failsafe]",
        "trader started at t=4.000 during a failsafe (operator) [stale_restart_after_failsafe]",
        "trader started at t=5.000 during a failsafe (operator) "
        "[restart_in_the_step_entering_failsafe]",
        "feeder started at t=6.000 during a failsafe (operator) "
        "[restart_of_a_clear_undone_in_the_same_read]",
    ]
    assert inv.known_starts_in_failsafe(starts) == []
    # A bug found and not fixed yet is counted apart (``--strict`` fails it).
    monkeypatch.setitem(inv.KNOWN_BUGS, "boot_start_in_failsafe", "what it is")
    assert len(inv.no_start_in_failsafe(starts, known=False)) == 4
    assert [bug for bug, _ in inv.known_starts_in_failsafe(starts)] == ["boot_start_in_failsafe"]
    assert len(inv.no_start_in_failsafe(starts)) == 5


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


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_another_programs_process_ended_or_held_as_a_service_fails(
    tmp_path: Path, anyio_backend: str
) -> None:
    from autoheal.procs.model import ServiceSpec
    from autoheal.sim.processes import SimProcessControl, foreign_harmed

    procs = SimProcessControl(lambda: (None, False))
    spec = ServiceSpec(
        name="feeder",
        argv=("feeder",),
        cwd=tmp_path,
        pidfile=tmp_path / "feeder.pid",
        log_file=tmp_path / "feeder.log",
    )
    first = await procs.start(spec)
    assert procs.reuse_pid_of("feeder") is None  # it runs
    procs.exit("feeder")
    assert procs.reuse_pid_of("feeder") == first.pid
    assert foreign_harmed(procs, [None]) == []
    assert foreign_harmed(procs, [first.pid]) == [
        f"pid {first.pid}, another program's, is held as a service"
    ]
    procs.exit(first.pid)  # what a daemon that signalled it would have done
    assert foreign_harmed(procs, []) == [
        f"pid {first.pid}, another program's since its reuse, was ended"
    ]


def test_a_state_held_as_saved_that_is_not_durable_fails() -> None:
    state = {"schema": 1, "failsafe": {"reason": "halt"}, "components": {}}
    durable = orjson.dumps({**state, "written_at_unix": 1.0})
    assert inv.saved_state_durable(durable, state) == []
    older = orjson.dumps({**state, "failsafe": None, "written_at_unix": 0.5})
    found = inv.saved_state_durable(older, state)
    assert len(found) == 1 and "['failsafe']" in found[0]
    assert "no autoheal_state.json" in inv.saved_state_durable(None, state)[0]
    assert "torn" in inv.saved_state_durable(durable[:-4], state)[0]

"""Real bugs the simulator found in the daemon, not fixed yet: each test says what must
hold, and fails today (``xfail(strict=True)``: it turns into a failure the day the bug
is fixed, so that the mark is removed with the fix). The simulator counts
their violations apart (``Outcome.known``); replay either with
``python -m autoheal.sim --seed N --minutes 5 --strict --trace out.jsonl``.
"""

from __future__ import annotations

import pytest

from autoheal.sim.run import run_seed


def violations(bug: str, seed: int, minutes: float = 5) -> int:
    """How often the seed's run breaks an invariant as ``bug`` does (any other failure
    fails the test: the mark covers only this bug)."""
    out = run_seed(seed, minutes)
    if out.failures:
        pytest.fail(f"seed {seed} fails for another reason: {out.failures}")
    return out.known[bug]


pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "boot_start_in_failsafe: a daemon that starts while a failsafe holds starts the "
        "components the failsafe parked (BACKOFF, failsafe_active) and any other that is "
        "not running: core.queries.starts_at_boot looks only at the component's stage"
    ),
)
def test_a_daemon_restarted_during_a_failsafe_starts_nothing() -> None:
    # Seed 2: the feeder's budget runs out (FAILSAFE), the trader crashes and is parked;
    # the daemon is SIGKILLed (t=226.0 s) and restarted (t=231.3 s): it starts the trader.
    assert violations("boot_start_in_failsafe", 2) == 0


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "stale_restart_after_failsafe: a restart the core decided before a failsafe is "
        "spawned after it (daemon.processes does not ask the core again before the spawn)"
    ),
)
def test_a_restart_decided_before_a_failsafe_is_not_spawned_after_it() -> None:
    # Seed 4 (re-pinned from 166 when the simulated disk's acts changed every seed's
    # draws): the operator writes {"failsafe_active": true} into the flags while the
    # change events are dropped (t=156.9 s); the operator's failsafe_clear (t=163.4 s)
    # clears the budget's failsafe and restarts the parked feeder and trader; carrying
    # out the clear's flags write, the daemon finds the flags changed unseen, reads them
    # and enters the operator's failsafe (halt); then the restart tasks spawn both,
    # inside it.
    assert violations("stale_restart_after_failsafe", 4) == 0


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "restart_in_the_step_entering_failsafe: core.machine.step handles the due "
        "deadlines (healing.advance) before the observation, so one step both restarts a "
        "component whose backoff ran out and enters the operator's failsafe"
    ),
)
def test_a_failsafe_read_at_start_is_not_preceded_by_an_overdue_restart() -> None:
    # Seed 24 (5 virtual minutes; re-pinned from 19 at 20 minutes when the simulated
    # disk's acts changed every seed's draws): a power loss at t=267.7 s; while the
    # daemon is down the feeder's backoff runs out and the operator writes
    # {"failsafe_active": true} into the flags; the next daemon's first read of the
    # files (t=285.4 s, one SwitchFilesRead step) returns both RestartProcess(feeder,
    # attempt 2) and the failsafe; the feeder is spawned inside it.
    assert violations("restart_in_the_step_entering_failsafe", 24) == 0


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "restart_of_a_clear_undone_in_the_same_read: one read of the kill-switch files "
        "both clears the failsafe (STOP.TXT removed by hand) and enters it again (the "
        "flags say failsafe_active: true); the clear's restarts go out in the new failsafe"
    ),
)
def test_a_clear_and_a_halt_read_together_restart_nothing() -> None:
    # Seed 8 (5 virtual minutes): the operator removes STOP.TXT (t=258.1 s) while the
    # change events are dropped, then writes {"failsafe_active": true, "mode":
    # "REDUCE_ONLY"} into the flags (t=267.9 s). That event comes through: one read sees
    # both. The removal clears the failsafe and restarts the parked feeder, the flags
    # enter it again (REDUCE_ONLY) in the same step, and the feeder is started in it.
    assert violations("restart_of_a_clear_undone_in_the_same_read", 8) == 0


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "failsafe_lost_when_the_state_write_failed: a failsafe whose state save the disk "
        "refused is lost at a power loss once the operator edits the kill-switch files "
        "while the daemon is down (the journal's failsafe notice is not read at start)"
    ),
)
def test_a_failsafe_the_disk_refused_to_save_survives_a_power_loss() -> None:
    # Seed 14 (20 virtual minutes): an ENOTDIR window refuses every write of the daemon
    # from t=986.0 s; the operator writes {"failsafe_active": true} into the flags
    # (t=987.5 s): the daemon enters the failsafe, but its writes of STOP.TXT, the
    # flags and the state fail. Power loss at t=991.2 s; while the daemon is down the
    # operator writes {"failsafe_active": false} (t=995.6 s), which must not clear. The
    # next daemon (t=1002.6 s) finds the old state, no STOP.TXT, clear flags: no
    # failsafe, though the journal holds its "failsafe entered by alice" notice.
    assert violations("failsafe_lost_when_the_state_write_failed", 14, minutes=20) == 0


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "document_empty_after_power_loss: health_v2.json's first write (a fresh name, no "
        "fsync) is made durable by the next durable write's fsync of the folder, its "
        "bytes are not: a power loss leaves it empty"
    ),
)
def test_the_health_document_is_whole_after_a_power_loss() -> None:
    # Seed 78: the daemon starts (t=0 s) and writes health_v2.json for the first time
    # (durable=False), then the state (fsync of rt/); power loss at t=0.93 s: the
    # simulated disk leaves the name with no bytes, and health_v2.json is empty.
    assert violations("document_empty_after_power_loss", 78, minutes=2) == 0

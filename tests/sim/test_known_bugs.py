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
    # Seed 3 since the network's acts (h-net20) changed every seed's draws (before: seed
    # 2, where the feeder's budget runs out (FAILSAFE), the trader crashes and is parked;
    # the daemon is SIGKILLed (t=226.0 s) and restarted (t=231.3 s): it starts the trader).
    assert violations("boot_start_in_failsafe", 3) == 0


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "stale_restart_after_failsafe: a restart the core decided before a failsafe is "
        "spawned after it (daemon.processes does not ask the core again before the spawn)"
    ),
)
def test_a_restart_decided_before_a_failsafe_is_not_spawned_after_it() -> None:
    # Seed 61 since the network's acts (h-net20) changed every seed's draws. Before, seed
    # 166: the daemon is SIGKILLed at t=153.4 s; while it is down the operator
    # queues failsafe_enter (k7). The next daemon (t=159.5 s) resumes the feeder's
    # restart (attempt 2, dispatched with no failsafe), then claims k7 (failsafe), then
    # the restart task spawns the feeder: inside the operator's failsafe.
    assert violations("stale_restart_after_failsafe", 61) == 0


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
    # Seed 76 since the network's acts (h-net20) changed every seed's draws. Before, seed
    # 19 (20 virtual minutes): the daemon is down while the feeder's backoff runs
    # out and the operator writes {"failsafe_active": true} into the flags; the next
    # daemon's first read of the files (t=577.1 s, one SwitchFilesRead step) returns
    # both RestartProcess(feeder, attempt 2) and the failsafe; the feeder is spawned
    # inside it.
    assert violations("restart_in_the_step_entering_failsafe", 76, minutes=20) == 0

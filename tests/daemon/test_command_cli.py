"""The operator's durable commands through the real CLI, against the in-process daemon.

``autoheal.cli.main`` runs in a worker thread of this process while the real daemon
runs in the test's event loop (asyncio, real time: the CLI polls the journal in real
time) with :class:`~autoheal.testing.FakeProcessControl`; everything else is real
files in ``tmp_path`` (``tests/daemon/commands_support.py``). The subjects are what
an operator sees: exit codes, the lines printed, and that a key, a race or a dead
claimer never makes a command run twice or report success it did not have. Moved down
from ``tests/e2e/test_command_keys.py`` and ``tests/e2e/test_control_plane.py``
(issue 19), which keep one smoke test each against a real ``autoheal run``.

The dead claimers are honest without a daemon to kill: a claim journaled under the
PID of a real process that has exited and been reaped, or under a live PID with
another start time (a reused PID).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import psutil
import pytest

from autoheal.config import Config
from autoheal.store.journal import Journal
from autoheal.store.lock import RuntimeLock
from autoheal.testing import FakeProcessControl
from tests.daemon.commands_support import (
    FOUR_EVENTS,
    Ran,
    acli,
    claim_as,
    cli,
    command,
    events,
    exited_process,
    flags,
    health,
    kinds,
    only_command,
    os_user,
    running_daemon,
    submit,
    write_config,
)

pytestmark = [pytest.mark.timeout(30)]

DEADLINE_S = 5.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path, virtual=False)


async def wait_for(predicate: Callable[[], object], what: str) -> None:
    """Poll every 10 ms; fail the test after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await anyio.sleep(0.01)


def healthy_pid(config: Config) -> int | None:
    feeder = health(config).get("components", {}).get("feeder", {})
    return feeder.get("pid") if feeder.get("ok") is True else None


# ------------------------------------------------------------------ keys and replays


@pytest.mark.anyio
async def test_a_reused_key_with_another_command_is_refused_exit_2_naming_both(
    config: Config,
) -> None:
    """Nothing is queued or run for the second command: it exits 2 naming the key and the
    earlier command, even when only the payload (the reason) differs."""
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        first = await acli(config, "restart", "feeder", "--idempotency-key", "K1")
        assert first.code == 0, first
        earlier = only_command(config, "K1")

        second = await acli(
            config, "failsafe", "enter", "--reason", "halt now", "--idempotency-key", "K1"
        )
        assert second.code == 2, second
        assert "succeeded" not in second.out
        assert "K1" in second.err and earlier.id in second.err
        assert "restart feeder" in second.err

        third = await acli(
            config, "restart", "feeder", "--reason", "other", "--idempotency-key", "K1"
        )
        assert third.code == 2, third
        assert "payload" in third.err

        assert not config.paths.stop_file.exists()
        assert flags(config).get("failsafe_active") is not True
        assert kinds(config, kind="failsafe_enter.started") == []
        assert only_command(config, "K1").id == earlier.id  # nothing new was queued
        assert len(kinds(config, kind="restart.started")) == 1
        assert fake.started == ["feeder", "feeder"]


@pytest.mark.anyio
async def test_the_same_key_and_command_replays_the_recorded_result_and_exit_code(
    config: Config,
) -> None:
    """A replay prints ``duplicate``, exits as the original did (0 for a success, 3 for a
    restart refused inside a failsafe) and runs nothing again."""
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        entered = await acli(
            config, "failsafe", "enter", "--reason", "halt", "--idempotency-key", "E1"
        )
        assert entered.code == 0, entered
        again = await acli(
            config, "failsafe", "enter", "--reason", "halt", "--idempotency-key", "E1"
        )
        assert again.code == 0, again
        assert "duplicate" in again.out and "succeeded" in again.out
        assert len(kinds(config, kind="failsafe_enter.started")) == 1

        refused = await acli(config, "restart", "feeder", "--idempotency-key", "R1")
        assert refused.code == 3, refused
        assert "failsafe" in refused.err and "halt" in refused.err
        replay = await acli(config, "restart", "feeder", "--idempotency-key", "R1")
        assert replay.code == 3, replay
        assert "duplicate" in replay.out and "failsafe" in replay.err

        cid = only_command(config, "R1").id
        assert kinds(config, command_id=cid) == [
            "started",
            "restart.started",
            "restart.failed",
            "result_written",
        ]
        assert fake.started == ["feeder"] and fake.stops == []


@pytest.mark.anyio
async def test_a_restart_prints_the_new_pid_and_the_same_key_again_restarts_nothing(
    config: Config,
) -> None:
    """The CLI's answer names the new process; the same key again is a ``duplicate`` that
    stops nothing and leaves the new process as it is."""
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        old = fake.current("feeder")
        assert old is not None
        await wait_for(lambda: healthy_pid(config) == old.pid, "a healthy feeder")

        first = await acli(config, "restart", "feeder", "--idempotency-key", "k-once")
        assert first.code == 0, first
        new = fake.current("feeder")
        assert new is not None and new.pid != old.pid
        assert "restart feeder succeeded" in first.out and f'"pid": {new.pid}' in first.out
        await wait_for(lambda: healthy_pid(config) == new.pid, "the new feeder healthy")

        second = await acli(config, "restart", "feeder", "--idempotency-key", "k-once")
        assert second.code == 0, second
        assert "duplicate" in second.out
        assert fake.current("feeder") == new and fake.owned() == [new]
        assert fake.stops == ["feeder"] and fake.started == ["feeder", "feeder"]
    cid = only_command(config, "k-once").id
    assert kinds(config, command_id=cid) == FOUR_EVENTS
    assert kinds(config, kind="restart.started") == ["restart.started"]


@pytest.mark.anyio
@pytest.mark.slow  # four commands waited for (the CLI polls every 50 ms)
async def test_failsafe_refuses_restart_until_cleared(config: Config) -> None:
    """Inside a failsafe a restart exits 3 naming it and its reason and touches nothing;
    the clear (audited in order, as its operator) ends it, and a restart then runs."""
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        old = fake.current("feeder")
        assert old is not None

        entered = await acli(config, "failsafe", "enter", "--reason", "x")
        assert entered.code == 0, entered
        assert config.paths.stop_file.exists()
        assert flags(config)["failsafe_active"] is True

        refused = await acli(config, "restart", "feeder")
        assert refused.code == 3, refused
        assert "failsafe" in refused.err and "x" in refused.err
        assert fake.current("feeder") == old and fake.stops == []

        cleared = await acli(config, "failsafe", "clear", "--reason", "y")
        assert cleared.code == 0, cleared
        assert not config.paths.stop_file.exists()
        assert (flags(config)["failsafe_active"], flags(config)["mode"]) == (False, "NORMAL")
        await wait_for(lambda: health(config).get("failsafe") is False, "health: no failsafe")
        (clear,) = events(config, kind="failsafe_clear.started")
        assert clear.command_id is not None
        trail = events(config, command_id=clear.command_id)
        assert [e.kind for e in trail] == [
            "started",
            "failsafe_clear.started",
            "failsafe_clear.succeeded",
            "result_written",
        ]
        assert {(e.actor, e.reason) for e in trail} == {(os_user(), "y")}

        again = await acli(config, "restart", "feeder")
        assert again.code == 0, again
        assert fake.stops == ["feeder"]


@pytest.mark.anyio
async def test_two_clis_racing_the_same_command_execute_it_once(config: Config) -> None:
    """Both exit 0, one of them as the ``duplicate``; one row, one stop, four events."""
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        old = fake.current("feeder")
        assert old is not None
        results = []

        async def racer() -> None:
            results.append(await acli(config, "restart", "feeder", "--idempotency-key", "race"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(racer)
            tg.start_soon(racer)

        assert [r.code for r in results] == [0, 0], results
        assert sum("duplicate" in r.out for r in results) == 1, results
        new = fake.current("feeder")
        assert new is not None and new.pid != old.pid and fake.owned() == [new]
        assert fake.stops == ["feeder"]
    cid = only_command(config, "race").id  # one row for the key
    assert kinds(config, command_id=cid) == FOUR_EVENTS
    assert kinds(config, kind="restart.started") == ["restart.started"]


# ------------------------------------------------------------------ dead claimers


@pytest.mark.anyio
async def test_a_waiting_cli_settles_a_claim_whose_claimer_died(config: Config) -> None:
    """The CLI waits on a daemon (the lock is held); then the command is claimed, and
    begun, under the identity of a process that is gone (exited and reaped) with no
    result written. The CLI settles it as ``claimer_died`` at its next look and exits 1,
    instead of waiting out its 10 s."""
    config.paths.runtime_dir.mkdir(parents=True)
    lock = RuntimeLock(config.paths.runtime_dir)
    lock.acquire()  # a daemon holds the runtime
    try:
        async with anyio.create_task_group() as tg:
            waiting: list[Ran] = []

            async def wait_cli() -> None:
                waiting.append(
                    await acli(
                        config, "restart", "feeder", "--idempotency-key", "D2", "--timeout", "10"
                    )
                )

            tg.start_soon(wait_cli)
            await wait_for(lambda: _key_queued(config, "D2"), "the command queued")
            pid, start = exited_process()
            claimed_at = time.monotonic()
            claim_as(config, only_command(config, "D2").id, pid, start)
        (ran,) = waiting
    finally:
        lock.release()
    assert time.monotonic() - claimed_at < DEADLINE_S, "the CLI waited for a claimer that was gone"
    assert ran.code == 1, ran
    assert "claimer_died" in ran.err
    done = only_command(config, "D2")
    assert done.status == "failed" and done.result["reason"] == "claimer_died"
    (written,) = events(config, command_id=done.id, kind="result_written")
    assert written.reason == "claimer_died" and written.data is not None
    assert written.data["claimer_pid"] == pid


def _key_queued(config: Config, key: str) -> bool:
    if not (config.paths.runtime_dir / "journal.sqlite3").exists():
        return False
    with Journal.open(config.paths.runtime_dir) as journal:
        return bool(journal.query("SELECT 1 FROM commands WHERE idempotency_key = ?", (key,)))


def test_a_retry_settles_the_claim_of_an_exited_claimer_and_runs_nothing(
    config: Config,
) -> None:
    """No daemon: the retry under the same key finds the claim of a process that has
    exited and been reaped, settles it (``no_such_process``) and exits 1."""
    cid = submit(config, "restart", "feeder", reason="manual", idempotency_key="D3", ttl=600)
    pid, start = exited_process()
    claim_as(config, cid, pid, start, began=False)

    retry = cli(config, "restart", "feeder", "--idempotency-key", "D3", "--timeout", "5")

    assert retry.code == 1, retry
    assert "claimer_died" in retry.err
    done = command(config, cid)
    assert done.status == "failed" and done.result["reason"] == "claimer_died"
    (written,) = events(config, command_id=cid, kind="result_written")
    assert written.reason == "claimer_died" and written.data is not None
    assert (written.data["claimer_pid"], written.data["why"]) == (pid, "no_such_process")
    assert kinds(config, kind="restart.started") == []  # nothing ran, nothing was retried
    assert not (config.paths.runtime_dir / "feeder.pid").exists()


def test_a_retry_settles_a_claim_whose_pid_was_reused_and_leaves_that_process_alone(
    config: Config,
) -> None:
    """The claimer's PID is alive but started at another time: another process has it.
    The claim is settled (``pid_reused``, exit 1); the live process is not touched."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        start = psutil.Process(sleeper.pid).create_time()
        cid = submit(config, "restart", "feeder", reason="manual", idempotency_key="D4", ttl=600)
        claim_as(config, cid, sleeper.pid, start - 100.0, began=False)

        retry = cli(config, "restart", "feeder", "--idempotency-key", "D4", "--timeout", "5")

        assert retry.code == 1, retry
        assert "claimer_died" in retry.err
        assert sleeper.poll() is None, "the process that now has the PID is left alone"
        (written,) = events(config, command_id=cid, kind="result_written")
        assert written.reason == "claimer_died" and written.data is not None
        assert written.data["why"] == "pid_reused"
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


def test_the_cli_never_exits_0_for_a_claimed_or_pending_command(config: Config) -> None:
    """Not done is not success: a live claim that never finishes, or a command no daemon
    claims (its lock held by a hung one), exits 1 saying ``claimed``/``pending``."""
    # Claimed by a live process (this one) that never finishes it.
    cid = submit(config, "restart", "feeder", reason="manual", idempotency_key="C1", ttl=600)
    me = psutil.Process()
    claim_as(config, cid, me.pid, me.create_time(), began=False)
    retry = cli(config, "restart", "feeder", "--idempotency-key", "C1", "--timeout", "0.01")
    assert retry.code == 1, retry
    assert "claimed" in retry.err
    assert command(config, cid).status == "claimed"  # a live claim is not settled

    # Pending: the daemon lock is held by a process that never claims (a hung daemon).
    lock = RuntimeLock(config.paths.runtime_dir)
    lock.acquire()
    try:
        queued = cli(config, "restart", "feeder", "--idempotency-key", "P1", "--no-wait")
        assert queued.code == 0, queued
        assert "queued" in queued.out
        retry = cli(config, "restart", "feeder", "--idempotency-key", "P1", "--timeout", "0.01")
        assert retry.code == 1, retry
        assert "pending" in retry.err
        fresh = cli(config, "failsafe", "enter", "--reason", "r", "--timeout", "0.01")
        assert fresh.code == 1, fresh
        assert "pending" in fresh.err
    finally:
        lock.release()
    assert only_command(config, "P1").status == "pending"
    assert not config.paths.stop_file.exists()

"""The command queue as the real daemon serves it, on virtual time.

The daemon runs in-process on trio's ``MockClock(autojump_threshold=0)`` with
:class:`~autoheal.testing.FakeProcessControl`; the journal, its queue and every file
are real (``tests/daemon/commands_support.py``). Commands are queued through the
real store code, as the CLI queues them; what the CLI prints and exits with is
``test_command_cli.py``'s. Moved down from ``tests/e2e/test_control_plane.py`` and
``tests/e2e/test_command_keys.py`` (issue 19).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import orjson
import psutil
import pytest
from trio.testing import MockClock

from autoheal.config import Config
from autoheal.daemon.clock import LoopClock
from autoheal.store.journal import Journal
from autoheal.testing import FakeProcessControl
from tests.daemon.commands_support import (
    EPOCH,
    FOUR_EVENTS,
    claim_as,
    cli,
    command,
    events,
    exited_process,
    health,
    kinds,
    only_command,
    os_user,
    running_daemon,
    submit,
    until,
    write_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path, virtual=True)


def virtual() -> LoopClock:
    return LoopClock.virtual(EPOCH)


def finished(config: Config, command_id: str) -> bool:
    return command(config, command_id).status not in ("pending", "claimed")


def healthy_pid(config: Config) -> int | None:
    feeder = health(config).get("components", {}).get("feeder", {})
    return feeder.get("pid") if feeder.get("ok") is True else None


async def test_a_restart_gives_a_new_pid_and_four_events_in_order(config: Config) -> None:
    """The daemon claims under its own identity, stops the old process, starts a new one,
    answers with the new PID and audits the four events, all under the operator's name."""
    fake = FakeProcessControl()
    async with running_daemon(config, fake, virtual()):
        old = fake.current("feeder")
        assert old is not None
        await until(lambda: healthy_pid(config) == old.pid, "a healthy feeder")

        cid = submit(config, "restart", "feeder", reason="e2e")
        await until(lambda: finished(config, cid), "the restart's result")

        new = fake.current("feeder")
        assert new is not None and new.pid != old.pid
        done = command(config, cid)
        assert done.status == "succeeded"
        assert done.result == {"component": "feeder", "pid": new.pid}
        assert fake.stops == ["feeder"] and fake.owned() == [new]
        assert fake.started == ["feeder", "feeder"]
        assert (done.claimed_by, done.claimer_pid) == (f"pid:{os.getpid()}", os.getpid())
        assert done.claimer_start_time == psutil.Process().create_time()
        await until(lambda: healthy_pid(config) == new.pid, "the new feeder healthy")
    trail = events(config, command_id=cid)
    assert [e.kind for e in trail] == FOUR_EVENTS
    assert {(e.actor, e.reason, e.component) for e in trail} == {(os_user(), "e2e", "feeder")}
    log = (config.paths.runtime_dir / "notifications.log").read_text().splitlines()
    notices = [orjson.loads(line) for line in log]
    assert any(n["kind"] == "operator" and n["component"] == "feeder" for n in notices)


async def test_expired_and_tampered_commands_are_rejected_and_journaled(config: Config) -> None:
    """Queued before the daemon starts, an expired command and one edited by hand are
    rejected at claim time, each journaled with its reason, and neither runs."""
    # Stamped on the daemon's (virtual) wall clock, which it claims and expires on.
    expired = submit(config, "restart", "feeder", reason="old", ttl=1.0, now=EPOCH - 100)
    tampered = submit(config, "restart", "feeder", reason="fine", ttl=600.0, now=EPOCH)
    db = sqlite3.connect(config.paths.runtime_dir / "journal.sqlite3")
    try:
        with db:  # a careless hand edit of the queued row, before any daemon claimed it
            db.execute(
                "UPDATE commands SET payload = ? WHERE id = ?",
                ('{"reason":"edited by hand"}', tampered),
            )
    finally:
        db.close()

    fake = FakeProcessControl()
    async with running_daemon(config, fake, virtual()):
        await until(
            lambda: all(command(config, c).status == "rejected" for c in (expired, tampered)),
            "both commands rejected",
        )
        assert fake.stops == [] and fake.started == ["feeder"]

    for cid, reason in ((expired, "expired"), (tampered, "checksum_mismatch")):
        assert [(e.kind, e.reason) for e in events(config, command_id=cid)] == [
            ("command.rejected", reason)
        ]
        assert command(config, cid).result == {"reason": reason}
    assert kinds(config, kind="restart.started") == []


@pytest.mark.parametrize(("late_s", "status"), [(30.0, "succeeded"), (61.0, "rejected")])
async def test_a_command_expires_on_the_daemons_clock(
    config: Config, late_s: float, status: str
) -> None:
    """Queued with a minute to live, at the daemon's wall time; the daemon starts
    ``late_s`` (virtual) seconds later: within the minute it runs, past it it is
    rejected ``expired``. (The bridge used to expire on ``time.time()``, whatever the
    daemon's clock said.)"""
    cid = submit(config, "restart", "feeder", reason="late", ttl=60.0, now=EPOCH)
    await anyio.sleep(late_s)
    fake = FakeProcessControl()
    async with running_daemon(config, fake, virtual()):
        await until(lambda: finished(config, cid), "the command's end")
    done = command(config, cid)
    assert done.status == status, done
    if status == "rejected":
        assert done.result == {"reason": "expired"}
        assert done.finished_at == pytest.approx(EPOCH + late_s, abs=1.0)
    else:
        assert done.finished_at is not None and EPOCH + late_s <= done.finished_at < EPOCH + 60


async def test_the_journal_and_stop_txt_are_stamped_on_the_daemons_clock(config: Config) -> None:
    """Every event the daemon journals, and the line of the STOP.TXT it writes, carry
    the daemon's wall time (virtual here: EPOCH + t), not the host's (``time.time``):
    the simulator's escape watch heard both (issue 20)."""
    cid = submit(config, "failsafe_enter", reason="stamp", ttl=60.0, now=EPOCH)
    fake = FakeProcessControl()
    async with running_daemon(config, fake, virtual()):
        await until(lambda: finished(config, cid), "the failsafe")
    stamps = [e.ts for e in events(config)]
    assert stamps and all(EPOCH <= ts < EPOCH + 120 for ts in stamps), stamps
    line = config.paths.stop_file.read_text().splitlines()[0]
    assert line.startswith("2023-11-14T22:1"), line  # EPOCH: 2023-11-14T22:13:20Z


@pytest.mark.parametrize("claimer", ["exited", "pid_reused"])
async def test_a_starting_daemon_settles_a_dead_claimers_claim_as_claimer_died(
    config: Config, claimer: str
) -> None:
    """A claim left between ``started`` and ``result_written`` by a claimer that is gone
    (its PID exited and was reaped, or now belongs to a process started at another time)
    is settled ``failed``/``claimer_died`` by the next daemon, before it claims anything;
    a retry under the same key then reports that failure, exit 1, and runs nothing."""
    if claimer == "exited":
        pid, start, why = *exited_process(), "no_such_process"
    else:  # this test's own PID, alive, claimed as if it had started 100 s earlier
        pid, start, why = os.getpid(), psutil.Process().create_time() - 100, "pid_reused"
    cid = submit(config, "restart", "feeder", reason="crash me", idempotency_key="D1")
    claim_as(config, cid, pid, start)
    assert command(config, cid).status == "claimed"
    assert kinds(config, command_id=cid) == ["started", "restart.started"]

    fake = FakeProcessControl()
    async with running_daemon(config, fake, virtual()):
        await until(lambda: finished(config, cid), "the dead claim settled")
        assert fake.started == ["feeder"] and fake.stops == []  # nothing was restarted

    done = only_command(config, "D1")
    assert done.status == "failed" and done.result["reason"] == "claimer_died"
    assert done.result["why"] == why
    (written,) = events(config, command_id=cid, kind="result_written")
    assert written.reason == "claimer_died"
    assert written.data is not None
    assert (written.data["status"], written.data["claimer_pid"]) == ("failed", pid)
    assert kinds(config, command_id=cid) == ["started", "restart.started", "result_written"]

    retry = cli(config, "restart", "feeder", "--reason", "crash me", "--idempotency-key", "D1")
    assert retry.code == 1, retry
    assert "claimer_died" in retry.err and "duplicate" in retry.out
    assert kinds(config, command_id=cid) == ["started", "restart.started", "result_written"]
    with Journal.open(config.paths.runtime_dir) as journal:
        assert journal.query("SELECT count(*) AS n FROM commands")[0]["n"] == 1


def _locked(times: int, real: Any) -> Any:
    """``real``, refused ``times`` times first as SQLite refuses a held lock."""
    calls = {"n": 0}

    def call(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    return call


async def test_a_locked_journal_delays_a_result_and_kills_nothing(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's queue-lock fault (issue 20): the daemon died when the journal
    refused a command's ``started`` event or its result (only ``CommandError`` was
    caught). Now a command whose start cannot be recorded is not run (no act goes
    unrecorded) and fails ``journal_refused``; a result the journal refuses is kept
    and written at a later poll."""
    from autoheal.store import commands as store_commands

    monkeypatch.setattr(store_commands, "record_started", _locked(1, store_commands.record_started))
    monkeypatch.setattr(store_commands, "finish", _locked(2, store_commands.finish))
    first = submit(config, "failsafe_enter", reason="locked", now=EPOCH)
    fake = FakeProcessControl()
    async with running_daemon(config, fake, virtual()):
        await until(lambda: finished(config, first), "the first command's answer")
        assert health(config).get("failsafe") is not True  # not run
        again = submit(config, "failsafe_enter", reason="again", now=EPOCH)
        await until(lambda: finished(config, again), "the retry's answer")
        assert health(config).get("failsafe") is True
    refused = command(config, first)
    assert refused.status == "failed" and refused.result["reason"] == "journal_refused"
    assert "started" not in kinds(config, command_id=first)
    assert command(config, again).status == "succeeded"


async def test_dead_claims_are_settled_at_a_later_poll_when_the_first_try_is_locked(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A starting daemon settled dead claims once: a lock then left the command claimed
    until another daemon started (the simulator's seed 26). Now each poll tries again."""
    from autoheal.store import commands as store_commands

    real = store_commands.settle_dead_claims
    monkeypatch.setattr(store_commands, "settle_dead_claims", _locked(1, real))
    pid, start = exited_process()
    cid = submit(config, "restart", "feeder", reason="crash me", idempotency_key="L1")
    claim_as(config, cid, pid, start)
    fake = FakeProcessControl()
    async with running_daemon(config, fake, virtual()):
        await until(lambda: finished(config, cid), "the dead claim settled")
    done = command(config, cid)
    assert done.status == "failed" and done.result["reason"] == "claimer_died"

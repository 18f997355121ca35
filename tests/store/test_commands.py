"""The durable command queue: idempotency, exactly-once claims, rejection, audit order."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autoheal.store import commands
from autoheal.store.commands import Command, CommandError
from autoheal.store.journal import Journal


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path) as j:
        yield j


def _submit(journal: Journal, **kw: object) -> Command:
    args: dict[str, object] = {"payload": {"reason": "manual"}, "now": 1000.0, **kw}
    return commands.submit(journal, "restart", "feeder", requested_by="alice", **args).command  # type: ignore[arg-type]


def _kinds(journal: Journal, command_id: str) -> list[str]:
    return [e.kind for e in journal.events(command_id=command_id)]


def test_submit_stores_pending_command_with_checksum(journal: Journal) -> None:
    result = commands.submit(journal, "restart", "feeder", {"reason": "r"}, "alice",
                             ttl=30.0, now=1000.0)
    cmd = result.command
    assert not result.duplicate
    assert cmd.status == "pending" and cmd.expires_at == 1030.0
    assert len(cmd.id) == 32 and len(cmd.idempotency_key) == 32
    assert cmd.checksum == commands.checksum_for(
        type="restart", target="feeder", payload={"reason": "r"}, requested_by="alice",
        idempotency_key=cmd.idempotency_key, expires_at=1030.0,
    )
    assert commands.get(journal, cmd.id) == cmd


def test_submit_same_idempotency_key_twice_gives_one_row(journal: Journal) -> None:
    first = commands.submit(journal, "restart", "feeder", {}, "alice", idempotency_key="k1")
    second = commands.submit(journal, "restart", "feeder", {}, "alice", idempotency_key="k1")
    assert not first.duplicate and second.duplicate
    assert second.command.id == first.command.id
    assert journal.query("SELECT COUNT(*) FROM commands")[0][0] == 1


def test_submit_without_key_is_a_new_intent_each_time(journal: Journal) -> None:
    a = _submit(journal)
    b = _submit(journal)
    assert a.id != b.id and a.idempotency_key != b.idempotency_key


def test_submit_rejects_bad_arguments(journal: Journal) -> None:
    with pytest.raises(ValueError, match="ttl"):
        commands.submit(journal, "restart", "feeder", {}, "alice", ttl=0)
    with pytest.raises(ValueError, match="type"):
        commands.submit(journal, "", "feeder", {}, "alice")
    with pytest.raises(TypeError):
        commands.submit(journal, "restart", "feeder", {"x": object()}, "alice")


def test_claim_next_takes_oldest_once(journal: Journal) -> None:
    old = _submit(journal, now=1000.0)
    new = _submit(journal, now=1001.0)
    got = commands.claim_next(journal, "pid:1", now=1002.0)
    assert got is not None and got.id == old.id
    assert got.status == "claimed" and got.claimed_by == "pid:1"
    got2 = commands.claim_next(journal, "pid:2", now=1002.0)
    assert got2 is not None and got2.id == new.id
    assert commands.claim_next(journal, "pid:3", now=1002.0) is None


def test_claim_next_rejects_expired_and_records_event(journal: Journal) -> None:
    stale = _submit(journal, ttl=5.0, now=1000.0)
    fresh = _submit(journal, ttl=60.0, now=1001.0)
    got = commands.claim_next(journal, "pid:1", now=1010.0)
    assert got is not None and got.id == fresh.id
    rejected = commands.get(journal, stale.id)
    assert rejected is not None and rejected.status == "rejected"
    assert rejected.result == {"reason": "expired"}
    [event] = journal.events(command_id=stale.id)
    assert (event.kind, event.reason, event.actor, event.component) == (
        "command.rejected", "expired", "alice", "feeder")


@pytest.mark.parametrize(
    ("column", "value"),
    [("payload", '{"reason": "evil"}'), ("target", "trader"), ("payload", "not json"),
     ("expires_at", 9e9)],
)
def test_claim_rejects_tampered_row(journal: Journal, column: str, value: object) -> None:
    cmd = _submit(journal)
    with journal.transaction() as conn:
        conn.execute(f"UPDATE commands SET {column} = ? WHERE id = ?", (value, cmd.id))
    assert commands.claim_next(journal, "pid:1", now=1001.0) is None
    rejected = commands.get(journal, cmd.id)
    assert rejected is not None and rejected.status == "rejected"
    assert rejected.result == {"reason": "checksum_mismatch"}
    assert [(e.kind, e.reason) for e in journal.events(command_id=cmd.id)] == [
        ("command.rejected", "checksum_mismatch")]


def test_claim_specific_command(journal: Journal) -> None:
    a = _submit(journal)
    b = _submit(journal)
    got = commands.claim(journal, b.id, "cli:alice", now=1001.0)
    assert got is not None and got.id == b.id
    assert commands.claim(journal, b.id, "cli:bob", now=1001.0) is None  # already claimed
    assert commands.claim(journal, "unknown", "cli:bob", now=1001.0) is None
    still = commands.get(journal, a.id)
    assert still is not None and still.status == "pending"
    expired = _submit(journal, ttl=1.0, now=1000.0)
    assert commands.claim(journal, expired.id, "cli:alice", now=1002.0) is None
    assert commands.get(journal, expired.id).status == "rejected"  # type: ignore[union-attr]


def test_execute_records_audit_events_in_order(journal: Journal) -> None:
    _submit(journal, payload={"reason": "3am"})
    cmd = commands.claim_next(journal, "pid:7", now=1001.0)
    assert cmd is not None
    done = commands.execute(journal, cmd, lambda c: (True, {"new_pid": 42}))
    assert done.status == "succeeded" and done.result == {"new_pid": 42}
    events = journal.events(command_id=cmd.id)
    assert [e.kind for e in events] == [
        "started", "restart.started", "restart.succeeded", "result_written"]
    assert {(e.actor, e.component, e.reason) for e in events} == {("alice", "feeder", "3am")}


def test_execute_handler_failure_and_exception(journal: Journal) -> None:
    for handler in (lambda c: (False, {"error": "start_failed"}), lambda c: 1 / 0):
        _submit(journal)
        cmd = commands.claim_next(journal, "pid:7", now=1001.0)
        assert cmd is not None
        done = commands.execute(journal, cmd, handler)
        assert done.status == "failed"
        assert _kinds(journal, cmd.id) == [
            "started", "restart.started", "restart.failed", "result_written"]
    assert done.result["error"] == "ZeroDivisionError"


def test_finish_requires_claimed(journal: Journal) -> None:
    cmd = _submit(journal)
    with pytest.raises(CommandError, match="not claimed"):
        commands.finish(journal, cmd.id, True, {})
    with pytest.raises(ValueError, match="phase"):
        commands.record_action(journal, cmd, "exploded")


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_result_is_bounded(journal: Journal) -> None:
    cmd = _submit(journal)
    fake = _FakeTime()
    got = commands.wait_result(journal, cmd.id, 1.0, poll=0.3,
                               sleep_fn=fake.sleep, clock=fake.clock)
    assert got.status == "pending"
    assert fake.now == pytest.approx(1.0)
    assert fake.sleeps == pytest.approx([0.3, 0.3, 0.3, 0.1])


def test_wait_result_returns_when_finished(journal: Journal) -> None:
    cmd = _submit(journal)
    fake = _FakeTime()

    def sleep_and_finish(seconds: float) -> None:
        fake.sleep(seconds)
        claimed = commands.claim(journal, cmd.id, "pid:1", now=1001.0)
        if claimed is not None:
            commands.finish(journal, cmd.id, True, {"ok": True})

    got = commands.wait_result(journal, cmd.id, 10.0, sleep_fn=sleep_and_finish,
                               clock=fake.clock)
    assert got.status == "succeeded" and len(fake.sleeps) == 1
    with pytest.raises(CommandError):
        commands.wait_result(journal, "missing", 1.0, sleep_fn=fake.sleep, clock=fake.clock)


_CLAIMER = """
import os, sys, time
from pathlib import Path
from autoheal.store.journal import Journal
from autoheal.store.commands import claim_next
path, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
with Journal.open(path) as j:
    ready.touch()
    deadline = time.monotonic() + 10
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    ids = []
    while (c := claim_next(j, f"pid:{os.getpid()}")) is not None:
        ids.append(c.id)
print("\\n".join(ids))
"""


@pytest.mark.slow
def test_claim_next_two_processes_racing_claim_each_exactly_once(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        ids = {commands.submit(journal, "restart", "feeder", {"n": n}, "alice").command.id
               for n in range(50)}
    go = tmp_path / "go"
    procs = []
    for k in range(2):
        ready = tmp_path / f"ready{k}"
        procs.append((ready, subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(tmp_path), str(ready), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + 15
    while not all(r.exists() for r, _ in procs) and time.monotonic() < deadline:
        time.sleep(0.005)
    go.touch()
    claimed: list[list[str]] = []
    for _, proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        claimed.append(out.split())
    assert set(claimed[0]).isdisjoint(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(ids)
    with Journal.open(tmp_path) as journal:
        rows = journal.query("SELECT status, COUNT(*) FROM commands GROUP BY status")
        claimers = journal.query("SELECT COUNT(DISTINCT claimed_by) FROM commands")[0][0]
    assert [tuple(r) for r in rows] == [("claimed", 50)]
    assert claimers in (1, 2)


# ------------------------------------------------------- issue 9: reused keys, dead claimers


def test_reused_key_with_a_different_command_is_refused(journal: Journal) -> None:
    first = commands.submit(journal, "restart", "feeder", {"reason": "manual"}, "alice",
                            idempotency_key="K1").command
    with pytest.raises(commands.KeyConflictError) as info:
        commands.submit(journal, "failsafe_enter", "", {"reason": "halt now"}, "alice",
                        idempotency_key="K1")
    assert info.value.key == "K1" and info.value.earlier.id == first.id
    assert info.value.differs == ("type", "target", "payload")
    assert "K1" in str(info.value) and first.id in str(info.value)
    with pytest.raises(commands.KeyConflictError) as info:
        commands.submit(journal, "restart", "feeder", {"reason": "other"}, "alice",
                        idempotency_key="K1")
    assert info.value.differs == ("payload",)
    assert [r["id"] for r in journal.query("SELECT id FROM commands")] == [first.id]
    assert journal.events() == []


def test_same_key_same_command_returns_the_recorded_result(journal: Journal) -> None:
    first = commands.submit(journal, "restart", "feeder", {"reason": "r", "n": (1, 2)}, "alice",
                            idempotency_key="K1").command
    claimed = commands.claim(journal, first.id, "pid:1")
    assert claimed is not None
    commands.finish(journal, first.id, False, {"refused": True, "reason": "failsafe_active"})
    # Another user and another ttl do not make it another command; a tuple is a JSON list.
    again = commands.submit(journal, "restart", "feeder", {"n": [1, 2], "reason": "r"}, "bob",
                            idempotency_key="K1", ttl=5.0)
    assert again.duplicate and again.command.id == first.id
    assert again.command.status == "failed"
    assert again.command.result == {"refused": True, "reason": "failsafe_active"}


def test_claim_records_the_claimers_pid_and_start_time(journal: Journal) -> None:
    cmd = _submit(journal)
    got = commands.claim_next(journal, "pid:me", now=1001.0)
    assert got is not None and got.id == cmd.id
    assert got.claimer_pid == os.getpid()
    assert got.claimer_start_time == pytest.approx(psutil.Process().create_time(), abs=0.005)
    assert commands.get(journal, cmd.id) == got


_CLAIM_AND_WAIT = """
import os, sys, time
from autoheal.store.journal import Journal
from autoheal.store.commands import claim
with Journal.open(sys.argv[1]) as j:
    c = claim(j, sys.argv[2], f"pid:{os.getpid()}")
print("claimed" if c is not None else "not-claimed", flush=True)
time.sleep(120)
"""


def _claim_in_subprocess(tmp_path: Path, command_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _CLAIM_AND_WAIT, str(tmp_path), command_id],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "claimed"
    return proc


@pytest.mark.slow
def test_claim_of_a_dead_claimer_is_settled_claimer_died(
    tmp_path: Path, journal: Journal
) -> None:
    cmd = _submit(journal, payload={"reason": "3am"}, now=time.time(), ttl=600.0)
    claimer = _claim_in_subprocess(tmp_path, cmd.id)
    claimed = commands.get(journal, cmd.id)
    assert claimed is not None and claimed.claimer_pid == claimer.pid
    assert claimed.claimer_start_time is not None
    commands.record_started(journal, claimed)  # it got as far as "started", then died
    claimer.kill()
    claimer.communicate(timeout=10)

    [settled] = commands.settle_dead_claims(journal, settled_by="pid:42")

    assert settled.id == cmd.id and settled.status == "failed"
    assert settled.result["reason"] == "claimer_died"
    assert settled.result["why"] == "no_such_process"
    assert "claimer_died" in settled.result["message"]
    events = journal.events(command_id=cmd.id)
    assert [(e.kind, e.reason) for e in events] == [
        ("started", "3am"), ("result_written", "claimer_died")]
    data = events[-1].data
    assert data is not None
    assert data["status"] == "failed" and data["claimer_pid"] == claimer.pid
    assert data["settled_by"] == "pid:42" and data["operator_reason"] == "3am"
    # Settled once: nothing left to settle, and the dead claimer can never finish it.
    assert commands.settle_dead_claims(journal, settled_by="pid:42") == []
    with pytest.raises(CommandError, match="not claimed"):
        commands.finish(journal, cmd.id, True, {})


@pytest.mark.slow
def test_claim_with_a_reused_pid_is_settled_and_a_live_claim_is_not(journal: Journal) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        start = psutil.Process(sleeper.pid).create_time()
        reused = _submit(journal, now=time.time(), ttl=600.0)
        live = _submit(journal, now=time.time(), ttl=600.0)
        # The recorded claimer had this PID but started at another time: PID reuse.
        assert commands.claim(journal, reused.id, "pid:x",
                              identity=(sleeper.pid, start - 30.0)) is not None
        assert commands.claim(journal, live.id, "pid:y", identity=(sleeper.pid, start)) is not None

        settled = commands.settle_dead_claims(journal, settled_by="cli:alice")

        assert [(c.id, c.result["why"]) for c in settled] == [(reused.id, "pid_reused")]
        still = commands.get(journal, live.id)
        assert still is not None and still.status == "claimed"
        assert sleeper.poll() is None, "settling never touches the process"
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


def test_wait_result_settles_a_claim_whose_claimer_is_gone(journal: Journal) -> None:
    cmd = _submit(journal)
    assert commands.claim(journal, cmd.id, "pid:x", 1001.0, identity=(os.getpid(), 1.0))
    fake = _FakeTime()
    got = commands.wait_result(journal, cmd.id, 5.0, sleep_fn=fake.sleep, clock=fake.clock,
                               settled_by="cli:alice")
    assert got.status == "failed" and got.result["why"] == "pid_reused"
    assert fake.sleeps == []  # no waiting for a claimer that is gone
    # Without settled_by it only waits (the old behaviour, bounded).
    other = _submit(journal)
    assert commands.claim(journal, other.id, "pid:x", 1001.0, identity=(os.getpid(), 1.0))
    left = commands.wait_result(journal, other.id, 0.1, sleep_fn=fake.sleep, clock=fake.clock)
    assert left.status == "claimed"


#: The commands table as schema 1 shipped it, before the claimer columns.
_V1_COMMANDS = """
CREATE TABLE commands (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, target TEXT NOT NULL, payload TEXT NOT NULL,
    requested_by TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, checksum TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    claimed_by TEXT, claimed_at REAL, finished_at REAL, result TEXT
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, component TEXT,
    reason TEXT, actor TEXT, command_id TEXT, data TEXT
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, created_at REAL NOT NULL, webhook TEXT NOT NULL,
    notification TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_error TEXT, delivered_at REAL
);
PRAGMA user_version = 1;
"""


@pytest.mark.slow
def test_a_journal_without_claimer_columns_is_migrated_and_keeps_working(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=10)  # reaped: no process has this PID now
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(_V1_COMMANDS)
    old.close()
    rows = []
    for key, status, claimed_by in (("a", "claimed", f"pid:{dead.pid}"),
                                    ("b", "claimed", "cli-direct"),
                                    ("c", "claimed", f"pid:{os.getpid()}"),
                                    ("d", "pending", None)):
        checksum = commands.checksum_for(type="restart", target="feeder", payload={},
                                         requested_by="alice", idempotency_key=key,
                                         expires_at=9e9)
        rows.append((key, "restart", "feeder", "{}", "alice", key, checksum, 1.0, 9e9, status,
                     claimed_by, 2.0 if claimed_by else None))
    old = sqlite3.connect(path)
    with old:
        old.executemany("INSERT INTO commands (id, type, target, payload, requested_by,"
                        " idempotency_key, checksum, created_at, expires_at, status, claimed_by,"
                        " claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    old.close()

    with Journal.open(path) as journal:
        columns = {r[1] for r in journal.query("PRAGMA table_info(commands)")}
        assert {"claimer_pid", "claimer_start_time"} <= columns
        legacy = commands.get(journal, "a")
        assert legacy is not None and legacy.claimer_pid is None
        # A legacy "pid:N" whose PID is gone is provably dead; "cli-direct" names no
        # process, and a live "pid:N" cannot be told from a reused PID: both are left.
        settled = commands.settle_dead_claims(journal, settled_by="pid:1")
        assert [(c.id, c.result["why"]) for c in settled] == [("a", "no_such_process")]
        assert f"pid {dead.pid}," in settled[0].result["message"]
        assert [commands.get(journal, k).status for k in "bcd"] == [  # type: ignore[union-attr]
            "claimed", "claimed", "pending"]
        got = commands.claim_next(journal, "pid:me")
        assert got is not None and got.id == "d" and got.claimer_pid == os.getpid()
        [event] = journal.events()
        assert (event.command_id, event.kind, event.reason) == (
            "a", "result_written", "claimer_died")
        assert event.data is not None and event.data["claimer_pid"] == dead.pid
    with Journal.open(path) as journal:  # opening again adds nothing twice
        assert journal.query("SELECT COUNT(*) FROM commands")[0][0] == 4

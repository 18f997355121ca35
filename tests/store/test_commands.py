"""The durable command queue: idempotency, exactly-once claims, rejection, audit order."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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

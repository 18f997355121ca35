"""The operator's control plane end to end: a real daemon, the real CLI, the real journal.

Each test starts ``autoheal run`` over one simple service (``feeder``, a Python child
that writes a heartbeat every 0.2 s) in ``tmp_path`` and drives it with
``python -m autoheal ...`` subprocesses, then checks what an operator would: exit
codes and messages, PIDs in the pidfile and in ``health_v2.json``, the kill-switch
files, and the audit events of each command in the journal, in order.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from autoheal.drills.stacks.simple import Runtime, alive, wait_for
from autoheal.store import commands as queue
from autoheal.store.journal import Journal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

FOUR_EVENTS = ["started", "restart.started", "restart.succeeded", "result_written"]


def os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(tmp_path) as runtime:
        yield runtime


def command_ids(rt: Runtime, ctype: str) -> list[str]:
    """Ids of the commands of one type that the journal saw start, oldest first."""
    return [e.command_id for e in rt.events(kind=f"{ctype}.started") if e.command_id is not None]


def sigterm_count(rt: Runtime, name: str = "feeder") -> int:
    """How many times a ``name`` process was sent SIGTERM (each one writes a line)."""
    try:
        return len((rt.runtime_dir / f"{name}.sigterm").read_text().splitlines())
    except FileNotFoundError:
        return 0


def new_healthy_pid(rt: Runtime, old: int) -> int:
    """Wait until pidfile and health agree on a PID other than ``old`` and it is healthy."""
    return wait_for(
        lambda: (p := rt.healthy_pid("feeder")) is not None and p != old and p,
        10,
        "a new healthy feeder PID",
    )


def test_restart_gives_new_pid_and_four_events_in_order(rt: Runtime) -> None:
    rt.start_daemon()
    old = rt.healthy_pid("feeder")
    assert old is not None

    done = rt.cli("restart", "feeder", "--reason", "e2e")

    assert done.returncode == 0, done.stderr
    assert "restart feeder succeeded" in done.stdout
    new = new_healthy_pid(rt, old)
    assert f'"pid": {new}' in done.stdout
    assert not alive(old)
    (cid,) = command_ids(rt, "restart")
    events = rt.events(command_id=cid)
    assert [e.kind for e in events] == FOUR_EVENTS
    assert {e.actor for e in events} == {os_user()}
    assert {e.reason for e in events} == {"e2e"}
    assert {e.component for e in events} == {"feeder"}
    assert sigterm_count(rt) == 1
    notices = [
        orjson.loads(line)
        for line in (rt.runtime_dir / "notifications.log").read_text().splitlines()
    ]
    assert any(n["kind"] == "operator" and n["component"] == "feeder" for n in notices)


def test_same_idempotency_key_twice_restarts_once(rt: Runtime) -> None:
    rt.start_daemon()
    old = rt.healthy_pid("feeder")
    assert old is not None

    first = rt.cli("restart", "feeder", "--idempotency-key", "k-once")
    assert first.returncode == 0, first.stderr
    new = new_healthy_pid(rt, old)
    second = rt.cli("restart", "feeder", "--idempotency-key", "k-once")

    assert second.returncode == 0, second.stderr
    assert "duplicate" in second.stdout
    assert rt.healthy_pid("feeder") == new
    assert sigterm_count(rt) == 1
    (cid,) = command_ids(rt, "restart")
    assert rt.kinds(command_id=cid) == FOUR_EVENTS


def test_expired_and_tampered_commands_are_rejected_and_journaled(rt: Runtime) -> None:
    rt.runtime_dir.mkdir()
    now = time.time()
    with Journal.open(rt.runtime_dir) as journal:
        expired = queue.submit(
            journal, "restart", "feeder", {"reason": "old"}, os_user(), ttl=1.0, now=now - 100
        ).command
        tampered = queue.submit(
            journal, "restart", "feeder", {"reason": "fine"}, os_user(), ttl=600.0
        ).command
    # A careless hand edit of the queued row, before any daemon has claimed it.
    db = sqlite3.connect(rt.runtime_dir / "journal.sqlite3")
    try:
        with db:
            db.execute(
                "UPDATE commands SET payload = ? WHERE id = ?",
                ('{"reason":"edited by hand"}', tampered.id),
            )
    finally:
        db.close()

    rt.start_daemon()

    def both_rejected() -> bool:
        with Journal.open(rt.runtime_dir) as journal:
            got = [queue.get(journal, c.id) for c in (expired, tampered)]
        return all(c is not None and c.status == "rejected" for c in got)

    wait_for(both_rejected, 10, "both commands to be rejected")
    for command, reason in ((expired, "expired"), (tampered, "checksum_mismatch")):
        events = rt.events(command_id=command.id)
        assert [(e.kind, e.reason) for e in events] == [("command.rejected", reason)]
        with Journal.open(rt.runtime_dir) as journal:
            stored = queue.get(journal, command.id)
        assert stored is not None and stored.result == {"reason": reason}
    assert rt.kinds(kind="restart.started") == []
    assert sigterm_count(rt) == 0


def test_cli_without_daemon_restarts_directly(tmp_path: Path) -> None:
    with Runtime(tmp_path, stop_services_on_exit=False) as rt:
        rt.start_daemon()
        old = rt.healthy_pid("feeder")
        assert old is not None
        assert rt.stop_daemon() == 0
        assert alive(old), "the daemon was told to leave its services running"

        done = rt.cli("restart", "feeder", "--reason", "no daemon")

        assert done.returncode == 0, done.stderr
        assert "no daemon" in done.stderr
        new = rt.pidfile("feeder")
        assert new is not None and new != old
        assert alive(new)
        assert not alive(old)
        assert f'"pid": {new}' in done.stdout
        # The new process really runs: its heartbeat names it.
        wait_for(
            lambda: (
                f'"pid": {new}' in _read(rt.runtime_dir / "feeder.heartbeat.json")
                or f'"pid":{new}' in _read(rt.runtime_dir / "feeder.heartbeat.json")
            ),
            5,
            "the new feeder's heartbeat",
        )
        (cid,) = command_ids(rt, "restart")
        assert rt.kinds(command_id=cid) == FOUR_EVENTS
        assert {e.actor for e in rt.events(command_id=cid)} == {os_user()}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.mark.parametrize("with_daemon", [True, False], ids=["daemon", "direct"])
def test_two_clis_racing_the_same_command_execute_once(tmp_path: Path, with_daemon: bool) -> None:
    with Runtime(tmp_path, stop_services_on_exit=False) as rt:
        rt.start_daemon()
        old = rt.healthy_pid("feeder")
        assert old is not None
        if not with_daemon:
            assert rt.stop_daemon() == 0

        racers = [rt.cli_popen("restart", "feeder", "--idempotency-key", "race") for _ in "ab"]
        outputs = [p.communicate(timeout=30) for p in racers]

        for proc, (out, err) in zip(racers, outputs, strict=True):
            assert proc.returncode == 0, (out, err)
        assert sum("duplicate" in out for out, _ in outputs) == 1
        assert sigterm_count(rt) == 1
        (cid,) = command_ids(rt, "restart")
        assert rt.kinds(command_id=cid) == FOUR_EVENTS
        with Journal.open(rt.runtime_dir) as journal:
            rows = journal.query("SELECT id FROM commands WHERE idempotency_key = 'race'")
        assert [r["id"] for r in rows] == [cid]
        new = rt.pidfile("feeder")
        assert new is not None and new != old and alive(new) and not alive(old)


def test_failsafe_refuses_restart_until_cleared(rt: Runtime) -> None:
    rt.start_daemon()
    pid = rt.healthy_pid("feeder")

    entered = rt.cli("failsafe", "enter", "--reason", "x")
    assert entered.returncode == 0, entered.stderr
    assert rt.stop_file.exists()
    assert rt.flags()["failsafe_active"] is True

    refused = rt.cli("restart", "feeder")
    assert refused.returncode == 3, (refused.stdout, refused.stderr)
    assert "failsafe" in refused.stderr and "x" in refused.stderr
    assert rt.pidfile("feeder") == pid and sigterm_count(rt) == 0

    cleared = rt.cli("failsafe", "clear", "--reason", "y")
    assert cleared.returncode == 0, cleared.stderr
    assert not rt.stop_file.exists()
    flags = rt.flags()
    assert flags["failsafe_active"] is False and flags["mode"] == "NORMAL"
    wait_for(lambda: (rt.health() or {}).get("failsafe") is False, 5, "health failsafe false")
    (cid,) = command_ids(rt, "failsafe_clear")
    events = rt.events(command_id=cid)
    assert [e.kind for e in events] == [
        "started",
        "failsafe_clear.started",
        "failsafe_clear.succeeded",
        "result_written",
    ]
    assert {(e.actor, e.reason) for e in events} == {(os_user(), "y")}

    again = rt.cli("restart", "feeder")
    assert again.returncode == 0, again.stderr

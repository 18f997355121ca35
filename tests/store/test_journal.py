"""The SQLite journal: permissions, schema, events, several writer processes at once."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoheal.store.journal import (
    JOURNAL_FILENAME,
    SCHEMA_VERSION,
    Event,
    Journal,
    JournalError,
    format_event,
)


def test_journal_open_creates_file_mode_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Journal.open(tmp_path) as journal:
            journal.record("boot")
            assert journal.path == tmp_path / JOURNAL_FILENAME
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / JOURNAL_FILENAME).stat().st_mode) == 0o600
    wal = tmp_path / f"{JOURNAL_FILENAME}-wal"
    if wal.exists():
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_journal_open_with_group_is_0660_and_owned_by_it(tmp_path: Path) -> None:
    gid = os.getgid()
    with Journal.open(tmp_path / "j.sqlite3", group=gid):
        pass
    st = (tmp_path / "j.sqlite3").stat()
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == gid


def test_journal_open_unknown_group_raises(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="group"):
        Journal.open(tmp_path / "j.sqlite3", group="no-such-group-autoheal")


def test_journal_uses_wal_and_versioned_schema(tmp_path: Path) -> None:
    with Journal.open(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / JOURNAL_FILENAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"events", "commands", "outbox"} <= tables
    finally:
        conn.close()


def test_journal_open_missing_directory_raises_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal.open(tmp_path / "nope" / "journal.sqlite3")


def test_journal_open_garbage_file_raises(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILENAME
    path.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(JournalError, match=str(path)):
        Journal.open(path)


def test_journal_open_newer_schema_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / JOURNAL_FILENAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="schema version"):
        Journal.open(tmp_path)


def test_journal_record_and_filter_events(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.record("stage", component="feeder", reason="process_exited", ts=100.0)
        journal.record("stage", component="trader", reason="heartbeat_stale", ts=200.0)
        eid = journal.record(
            "restart", component="feeder", actor="alice", data={"pid": 12}, ts=300.0
        )
        everything = journal.events()
        feeder = journal.events(component="feeder")
        recent = journal.events(since=150.0)
        last = journal.events(limit=1)
    assert [e.kind for e in everything] == ["stage", "stage", "restart"]
    assert [e.ts for e in feeder] == [100.0, 300.0]
    assert [e.component for e in recent] == ["trader", "feeder"]
    assert last == [
        Event(id=eid, ts=300.0, kind="restart", component="feeder", actor="alice", data={"pid": 12})
    ]


def test_format_event_one_line_iso_utc() -> None:
    event = Event(id=1, ts=0.5, kind="restart.started", component="feeder",
                  reason="manual\nfake line", actor="bob")
    line = format_event(event)
    assert "\n" not in line
    assert line.startswith("1970-01-01T00:00:00.500Z restart.started")
    assert "feeder" in line and "reason=manual fake line" in line and "actor=bob" in line
    assert "reason=-" in format_event(Event(id=2, ts=0.0, kind="x"))


def test_format_event_shows_the_transition_and_pid() -> None:
    moved = Event(id=3, ts=0.0, kind="stage_transition", component="feeder", reason="x",
                  data={"from": "BACKOFF", "to": "FAILSAFE", "attempt": 3, "max_attempts": 3})
    assert format_event(moved).endswith("BACKOFF->FAILSAFE attempt=3/3")
    started = Event(id=4, ts=0.0, kind="process_started", component="feeder", data={"pid": 77})
    assert format_event(started).endswith("pid=77")
    forged = Event(id=5, ts=0.0, kind="notice", data={"message": "a\nb"})
    assert "\n" not in format_event(forged)


_WRITER = """
import sys
from autoheal.store.journal import Journal
path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Journal.open(path) as j:
    for i in range(n):
        j.record("tick", component=name, data={"i": i})
"""


@pytest.mark.slow
def test_journal_concurrent_writer_processes_lose_nothing(tmp_path: Path) -> None:
    writers, per_writer = 3, 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), f"w{k}", str(per_writer)],
            stderr=subprocess.PIPE,
        )
        for k in range(writers)
    ]
    started = time.monotonic()
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    elapsed = time.monotonic() - started
    with Journal.open(tmp_path) as journal:
        events = journal.events(limit=10_000)
    assert len(events) == writers * per_writer
    for k in range(writers):
        mine = [e.data["i"] for e in events if e.component == f"w{k}" and e.data]
        assert mine == list(range(per_writer))  # complete and in each writer's order
    assert elapsed < 20

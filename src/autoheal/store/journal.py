"""The journal: one SQLite file holding the audit events, the command queue and the outbox.

Several processes use it at once (the daemon, CLIs, drills), so it runs in WAL mode
with a ``busy_timeout``, every write is a short ``BEGIN IMMEDIATE`` transaction (taking
the write lock up front avoids the ``SQLITE_BUSY`` that a read transaction gets when it
tries to upgrade), and each process opens its own connection. A connection is guarded
by a re-entrant lock, so one :class:`Journal` may also be used from worker threads
(``anyio.to_thread``).

The file is created ``0600``, or ``0660`` and chowned to a group when one is given, so
that an operator group can run the CLI. With a group, the mode and the group are
applied on every open, to the database and its ``-wal`` and ``-shm`` files alike,
not only when this process created it.

The schema is versioned with ``PRAGMA user_version``; a journal written by a newer
autoheal is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import grp
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from autoheal.store import layout as runtime_files
from autoheal.terminal import clean

__all__ = [
    "JOURNAL_FILENAME",
    "SCHEMA_VERSION",
    "Event",
    "Journal",
    "JournalError",
    "format_event",
]

JOURNAL_FILENAME = runtime_files.JOURNAL
SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    component TEXT,
    reason TEXT,
    actor TEXT,
    command_id TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_component ON events (component, ts);
CREATE INDEX IF NOT EXISTS events_command ON events (command_id);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    checksum TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    claimed_by TEXT,
    claimed_at REAL,
    finished_at REAL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS commands_pending ON commands (status, created_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    webhook TEXT NOT NULL,
    notification TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (webhook, next_attempt_at)
    WHERE delivered_at IS NULL;
"""

#: Columns added to schema 1 since it shipped: nullable, added on open when missing, so
#: a journal written before them keeps working (its rows read NULL) and an older
#: autoheal can still read a newer file (it does not look at them).
_ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    # who claimed a command, provably: its PID and kernel start time (unix seconds)
    "commands": (("claimer_pid", "INTEGER"), ("claimer_start_time", "REAL")),
}


class JournalError(Exception):
    """The journal cannot be opened or used (missing directory, not a database, newer schema)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One journal event; ``ts`` is unix seconds (a label, never used for durations)."""

    id: int
    ts: float
    kind: str
    component: str | None = None
    reason: str | None = None
    actor: str | None = None
    command_id: str | None = None
    data: dict[str, Any] | None = None

    def to_doc(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (for ``autoheal events --json``)."""
        return {
            "id": self.id,
            "ts": self.ts,
            "kind": self.kind,
            "component": self.component,
            "reason": self.reason,
            "actor": self.actor,
            "command_id": self.command_id,
            "data": self.data,
        }


def _resolve_gid(group: str | int) -> int:
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise JournalError(f"journal group {group!r} does not exist") from None


def _create_file(path: Path, group: str | int | None) -> None:
    """Create the database file with its final mode before SQLite ever opens it."""
    mode = 0o600 if group is None else 0o660
    gid = None if group is None else _resolve_gid(group)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)  # the umask must not widen or narrow it
    finally:
        os.close(fd)


def _apply_group(path: Path, group: str | int) -> None:
    """Give the journal and its ``-wal``/``-shm`` the group and ``0660``, on every open.

    A journal created before ``journal_group`` was set, by a CLI, or chmodded by hand
    must not keep a mode the config no longer says; and SQLite creates ``-wal`` and
    ``-shm`` with the opener's group, not the database's.

    Raises:
        OSError: the mode or group cannot be set (e.g. we do not own the file).
    """
    gid = _resolve_gid(group)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            st = os.stat(file)
        except FileNotFoundError:
            continue
        if st.st_gid != gid:
            os.chown(file, -1, gid)
        if st.st_mode & 0o7777 != 0o660:
            os.chmod(file, 0o660)


class Journal:
    """An open journal. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0
        self.path = path

    @classmethod
    def open(
        cls, path: Path | str, *, group: str | int | None = None, busy_timeout_s: float = 10.0
    ) -> Journal:
        """Open (creating if needed) the journal at ``path``.

        Args:
            path: the database file, or a runtime directory holding ``journal.sqlite3``.
            group: group name or gid; the file (and its ``-wal``, ``-shm``) is then made
                ``0660`` and given to it, on every open, however it was created.
            busy_timeout_s: how long a writer waits for another process's lock.

        Raises:
            JournalError: the file cannot be created or opened, is not a journal, or was
                written by a newer schema.
        """
        path = Path(path)
        if path.is_dir():
            path = path / JOURNAL_FILENAME
        try:
            _create_file(path, group)
            conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from exc
        journal = cls(conn, path)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a command or audit event acknowledged to the operator survives a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            journal._migrate()
            if group is not None:  # after WAL mode is on: -wal and -shm exist now
                _apply_group(path, group)
        except (sqlite3.Error, OSError) as exc:
            conn.close()
            raise JournalError(f"cannot open journal {path}: {exc}") from exc
        except JournalError:
            conn.close()
            raise
        return journal

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {self.path} has schema version {version}; this autoheal "
                    f"understands up to {SCHEMA_VERSION}"
                )
            if version < 1:
                for statement in _SCHEMA_V1.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for table, columns in _ADDED_COLUMNS.items():
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for name, decl in columns:
                    if name not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested use joins the outer one.

        Keep the body short: other processes wait for the lock while it runs.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run a read-only statement and return all rows."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def record(
        self,
        kind: str,
        *,
        component: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
        command_id: str | None = None,
        data: dict[str, Any] | None = None,
        ts: float | None = None,
    ) -> int:
        """Append one event and return its id (ids give the commit order across processes)."""
        blob = None if data is None else orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
        stamp = time.time() if ts is None else ts
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO events (ts, kind, component, reason, actor, command_id, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stamp, kind, component, reason, actor, command_id, blob),
            )
            return int(cur.lastrowid or 0)

    def events(
        self,
        since: float | None = None,
        component: str | None = None,
        limit: int = 1000,
        *,
        command_id: str | None = None,
        kind: str | None = None,
    ) -> list[Event]:
        """The newest ``limit`` events matching the filters, oldest first.

        Args:
            since: only events with ``ts >= since`` (unix seconds).
            component: only events about this component.
            limit: at most this many (the most recent ones).
            command_id: only events of this command.
            kind: only events of this kind.
        """
        clauses, params = [], []
        for column, value in (
            ("ts >=", since),
            ("component =", component),
            ("command_id =", command_id),
            ("kind =", kind),
        ):
            if value is not None:
                clauses.append(f"{column} ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.query(
            f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?",  # noqa: S608 - fixed columns
            (*params, max(0, limit)),
        )
        return [_row_to_event(row) for row in reversed(rows)]

    def last_notice(self, kinds: tuple[str, ...]) -> Event | None:
        """The newest ``notice`` event whose notice kind is one of ``kinds``, if any."""
        marks = ", ".join("?" * len(kinds))
        rows = self.query(
            "SELECT * FROM events WHERE kind = 'notice'"  # noqa: S608 - placeholders only
            f" AND json_extract(data, '$.kind') IN ({marks}) ORDER BY id DESC LIMIT 1",
            kinds,
        )
        return _row_to_event(rows[0]) if rows else None

    def close(self) -> None:
        """Close the connection; the journal must not be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _row_to_event(row: sqlite3.Row) -> Event:
    data = None
    if row["data"] is not None:
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(row["data"])
    return Event(
        id=row["id"],
        ts=row["ts"],
        kind=row["kind"],
        component=row["component"],
        reason=row["reason"],
        actor=row["actor"],
        command_id=row["command_id"],
        data=data if isinstance(data, dict) else None,
    )


def format_event(event: Event) -> str:
    """One line for ``autoheal events``: ISO UTC time, kind, component, reason, actor.

    Every field came from outside (an operator's ``--reason``, a row anyone with the
    file could have written) and goes through :func:`~autoheal.terminal.clean`:
    folded onto one line, so a newline cannot forge a second event, with nothing a
    terminal would obey (issue 18 A10).
    """
    when = datetime.fromtimestamp(event.ts, tz=UTC).isoformat(timespec="milliseconds")
    when = when.replace("+00:00", "Z")
    line = (
        f"{when} {clean(event.kind):<24} {clean(event.component):<12} "
        f"reason={clean(event.reason)} actor={clean(event.actor)}"
    )
    return line + _details(event.data)


def _details(data: Any) -> str:
    """The few data fields an operator reads first: the transition, a PID, the message."""
    if not isinstance(data, dict):
        return ""
    parts = []
    if "from" in data and "to" in data:
        parts.append(f"{clean(data['from'])}->{clean(data['to'])}")
        if "attempt" in data and "max_attempts" in data:
            parts.append(f"attempt={clean(data['attempt'])}/{clean(data['max_attempts'])}")
    for key in ("pid", "probe", "message"):
        if key in data:
            parts.append(f"{key}={clean(data[key])}")
    return (" " + " ".join(parts)) if parts else ""

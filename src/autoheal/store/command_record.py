"""A durable command as stored: the record, its checksum, and its rows in the journal.

What :mod:`autoheal.store.commands` (the queue) and :mod:`autoheal.store.command_claimers`
(settling the claims of the dead) share: the :class:`Command` dataclass and its errors,
the checksum over the fields that define the intent (sha256 over their canonical JSON,
verified at claim time), the decoding of a ``commands`` row, where a mangled column is
detected rather than raised, and the writing of one ``events`` row about a command.
:func:`json_text`, :func:`row_to_command` and :func:`insert_event` are for those two
modules only (not in ``__all__``).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "Command",
    "CommandError",
    "KeyConflictError",
    "Submitted",
    "checksum_for",
]


class CommandError(Exception):
    """A command that does not exist, or is not in the state the call needs."""


@dataclass(frozen=True, slots=True)
class Command:
    """One durable command, as stored."""

    id: str
    type: str
    target: str
    payload: dict[str, Any]
    requested_by: str
    idempotency_key: str
    checksum: str
    created_at: float
    expires_at: float
    status: str = "pending"
    claimed_by: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    claimed_at: float | None = None
    finished_at: float | None = None
    claimer_pid: int | None = None
    claimer_start_time: float | None = None

    @property
    def reason(self) -> str | None:
        """The operator's free-text reason, if the payload has one."""
        value = self.payload.get("reason")
        return None if value is None else str(value)

    def describe(self) -> str:
        """``restart feeder``, ``failsafe_enter``: the type and target, for messages."""
        return f"{self.type} {self.target}".strip()


class KeyConflictError(CommandError):
    """An idempotency key already names a different command; nothing was queued."""

    def __init__(self, key: str, earlier: Command, differs: tuple[str, ...]) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used by command {earlier.id} "
            f"({earlier.describe()}, {earlier.status}); this command differs in "
            f"{', '.join(differs)}: use a new key for a new command"
        )
        self.key = key
        self.earlier = earlier
        self.differs = differs


@dataclass(frozen=True, slots=True)
class Submitted:
    """The result of :func:`submit`: the stored command, and whether it already existed."""

    command: Command
    duplicate: bool


def json_text(doc: Any) -> str:
    """A JSON column's text: sorted keys, so equal documents store equal text."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def checksum_for(
    *,
    type: str,
    target: str,
    payload: dict[str, Any],
    requested_by: str,
    idempotency_key: str,
    expires_at: float,
) -> str:
    """sha256 hex of the canonical JSON (sorted keys) of the fields that define the intent."""
    canonical = orjson.dumps(
        {
            "type": type,
            "target": target,
            "payload": payload,
            "requested_by": requested_by,
            "idempotency_key": idempotency_key,
            # Always a float: SQLite's RETURNING may hand back 1060 for a stored 1060.0,
            # and orjson writes those differently.
            "expires_at": float(expires_at),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def _loads_dict(text: str | None) -> tuple[dict[str, Any], bool]:
    """Decode a JSON object column; ``(doc, ok)`` so a mangled row is detected, not raised."""
    if text is None:
        return {}, True
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}, False
    return (doc, True) if isinstance(doc, dict) else ({}, False)


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def row_to_command(row: sqlite3.Row) -> tuple[Command, bool]:
    """A ``commands`` row as a :class:`Command`, and whether its payload decoded."""
    payload, payload_ok = _loads_dict(row["payload"])
    result, _ = _loads_dict(row["result"])
    command = Command(
        id=row["id"],
        type=row["type"],
        target=row["target"],
        payload=payload,
        requested_by=row["requested_by"],
        idempotency_key=row["idempotency_key"],
        checksum=row["checksum"],
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        status=row["status"],
        claimed_by=row["claimed_by"],
        result=result,
        claimed_at=_float_or_none(row["claimed_at"]),
        finished_at=_float_or_none(row["finished_at"]),
        claimer_pid=None if row["claimer_pid"] is None else int(row["claimer_pid"]),
        claimer_start_time=_float_or_none(row["claimer_start_time"]),
    )
    return command, payload_ok


def insert_event(
    conn: sqlite3.Connection,
    command: Command,
    kind: str,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    ts: float | None = None,
) -> int:
    """Write one ``events`` row about ``command`` inside the caller's transaction."""
    values = (
        time.time() if ts is None else ts,
        kind,
        command.target or None,
        command.reason if reason is None else reason,
        command.requested_by,
        command.id,
        None if data is None else json_text(data),
    )
    cur = conn.execute(
        "INSERT INTO events (ts, kind, component, reason, actor, command_id, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        values,
    )
    return int(cur.lastrowid or 0)

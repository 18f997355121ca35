"""The durable command queue: what an operator asks, claimed exactly once, audited in order.

A command lives in the journal's ``commands`` table. Its life::

    pending ──claim──► claimed ──finish──► succeeded | failed
       └──────claim (expired or checksum mismatch)──► rejected

Claiming is one ``UPDATE … WHERE status = 'pending' … RETURNING`` inside ``BEGIN
IMMEDIATE``, so two daemons or two CLIs racing never both get the same command. The
checksum (sha256 over the canonical JSON of the fields that define the intent) is
verified at claim time: a row edited after submit is rejected, not executed. It guards
against accidental or careless edits, not against someone who can also rewrite the
checksum column (that needs a keyed MAC and a secret the CLI does not have).

An executed command leaves these events, in this order, each carrying the command id,
``actor`` = requester, ``component`` = target and ``reason`` = ``payload["reason"]``:
``started``, ``<type>.started``, ``<type>.succeeded`` or ``<type>.failed``,
``result_written``. :func:`execute` does all of it for a synchronous handler; an async
executor calls :func:`record_started`, :func:`record_action` and :func:`finish` itself.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from autoheal.store.journal import Journal

__all__ = [
    "TERMINAL_STATUSES",
    "Command",
    "CommandError",
    "Submitted",
    "audit",
    "checksum_for",
    "claim",
    "claim_next",
    "execute",
    "finish",
    "get",
    "record_action",
    "record_started",
    "submit",
    "wait_result",
]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "rejected"})


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

    @property
    def reason(self) -> str | None:
        """The operator's free-text reason, if the payload has one."""
        value = self.payload.get("reason")
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Submitted:
    """The result of :func:`submit`: the stored command, and whether it already existed."""

    command: Command
    duplicate: bool


def _dumps(doc: Any) -> str:
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


def _row_to_command(row: sqlite3.Row) -> tuple[Command, bool]:
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
    )
    return command, payload_ok


def submit(
    journal: Journal,
    type: str,
    target: str,
    payload: dict[str, Any],
    requested_by: str,
    *,
    idempotency_key: str | None = None,
    ttl: float = 60.0,
    now: float | None = None,
) -> Submitted:
    """Queue a command, or return the existing one with the same idempotency key.

    Args:
        type: ``restart``, ``stop``, ``start``, ``failsafe_enter``, ``failsafe_clear``, ...
        target: the component name, or ``""``.
        payload: JSON-ready details, e.g. ``{"reason": "..."}``.
        requested_by: the OS user (the CLI passes ``pwd.getpwuid(os.geteuid()).pw_name``).
        idempotency_key: the same key twice means the same intent; default a fresh uuid,
            since each CLI invocation is a new intent.
        ttl: seconds until the command expires if nobody claimed it.
        now: unix time (for tests).

    Raises:
        ValueError: empty type or a non-positive ttl.
        TypeError: a payload that is not JSON-serialisable.
    """
    if not type:
        raise ValueError("command type must not be empty")
    if ttl <= 0:
        raise ValueError(f"command ttl must be positive, got {ttl}")
    created_at = time.time() if now is None else now
    key = idempotency_key or uuid.uuid4().hex
    expires_at = created_at + ttl
    checksum = checksum_for(
        type=type, target=target, payload=payload, requested_by=requested_by,
        idempotency_key=key, expires_at=expires_at,
    )
    payload_text = _dumps(payload)
    with journal.transaction() as conn:
        row = conn.execute("SELECT * FROM commands WHERE idempotency_key = ?", (key,)).fetchone()
        if row is not None:
            return Submitted(_row_to_command(row)[0], duplicate=True)
        row = conn.execute(
            "INSERT INTO commands (id, type, target, payload, requested_by, idempotency_key,"
            " checksum, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (uuid.uuid4().hex, type, target, payload_text, requested_by, key, checksum,
             created_at, expires_at),
        ).fetchall()[0]
    return Submitted(_row_to_command(row)[0], duplicate=False)


def _rejection(command: Command, payload_ok: bool, now: float) -> str | None:
    # Checksum first: a tampered expires_at must not pass as "not expired".
    expected = checksum_for(
        type=command.type, target=command.target, payload=command.payload,
        requested_by=command.requested_by, idempotency_key=command.idempotency_key,
        expires_at=command.expires_at,
    )
    if not payload_ok or expected != command.checksum:
        return "checksum_mismatch"
    if now >= command.expires_at:
        return "expired"
    return None


def _claim_where(
    conn: sqlite3.Connection, where: str, params: tuple[Any, ...], claimer: str, now: float
) -> Command | None:
    """Claim one pending row chosen by ``where``; reject it (and return None) if invalid."""
    rows = conn.execute(
        "UPDATE commands SET status = 'claimed', claimed_by = ?, claimed_at = ?"  # noqa: S608
        f" WHERE id = (SELECT id FROM commands WHERE status = 'pending' {where}"
        " ORDER BY created_at, rowid LIMIT 1) RETURNING *",
        (claimer, now, *params),
    ).fetchall()
    if not rows:
        raise LookupError
    command, payload_ok = _row_to_command(rows[0])
    reason = _rejection(command, payload_ok, now)
    if reason is None:
        return command
    conn.execute(
        "UPDATE commands SET status = 'rejected', result = ?, finished_at = ? WHERE id = ?",
        (_dumps({"reason": reason}), now, command.id),
    )
    _insert_event(conn, command, "command.rejected", reason=reason, ts=now,
                  data={"type": command.type, "claimed_by": claimer})
    return None


def claim_next(journal: Journal, claimer: str, *, now: float | None = None) -> Command | None:
    """Claim the oldest valid pending command, rejecting expired and tampered ones on the way.

    Args:
        claimer: who claims, e.g. ``pid:1234``.
        now: unix time (for tests).

    Returns:
        The claimed command (status ``claimed``), or None when nothing valid is pending.
    """
    stamp = time.time() if now is None else now
    with journal.transaction() as conn:
        while True:
            try:
                command = _claim_where(conn, "", (), claimer, stamp)
            except LookupError:
                return None
            if command is not None:
                return command


def claim(
    journal: Journal, command_id: str, claimer: str, now: float | None = None
) -> Command | None:
    """Claim one specific pending command (the CLI acting directly when no daemon runs).

    Returns:
        The claimed command, or None if it is not pending (already claimed, finished, unknown)
        or was just rejected; :func:`get` tells which.
    """
    stamp = time.time() if now is None else now
    with journal.transaction() as conn:
        try:
            return _claim_where(conn, "AND id = ?", (command_id,), claimer, stamp)
        except LookupError:
            return None


def get(journal: Journal, command_id: str) -> Command | None:
    """The stored command with this id, or None."""
    rows = journal.query("SELECT * FROM commands WHERE id = ?", (command_id,))
    return _row_to_command(rows[0])[0] if rows else None


def _insert_event(
    conn: sqlite3.Connection,
    command: Command,
    kind: str,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    ts: float | None = None,
) -> int:
    values = (
        time.time() if ts is None else ts,
        kind,
        command.target or None,
        command.reason if reason is None else reason,
        command.requested_by,
        command.id,
        None if data is None else _dumps(data),
    )
    cur = conn.execute(
        "INSERT INTO events (ts, kind, component, reason, actor, command_id, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        values,
    )
    return int(cur.lastrowid or 0)


def audit(
    journal: Journal,
    command: Command,
    kind: str,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    ts: float | None = None,
) -> int:
    """Record one event about ``command``: its id, requester as actor, target as component.

    Args:
        kind: the event kind, e.g. ``started`` or ``restart.succeeded``.
        reason: defaults to the payload's ``reason``.
        data: extra JSON-ready details.
        ts: unix time (for tests).

    Returns:
        The event id.
    """
    with journal.transaction() as conn:
        return _insert_event(conn, command, kind, reason=reason, data=data, ts=ts)


def record_started(journal: Journal, command: Command) -> int:
    """The executor took the claimed command up: the ``started`` event."""
    return audit(journal, command, "started", data={"claimed_by": command.claimed_by})


def record_action(
    journal: Journal, command: Command, phase: str, *, data: dict[str, Any] | None = None
) -> int:
    """The handler's own event ``<type>.<phase>``; phase is started, succeeded or failed."""
    if phase not in ("started", "succeeded", "failed"):
        raise ValueError(f"unknown command phase {phase!r}")
    return audit(journal, command, f"{command.type}.{phase}", data=data)


def finish(
    journal: Journal,
    command_id: str,
    ok: bool,
    result: dict[str, Any],
    *,
    now: float | None = None,
) -> Command:
    """Store the outcome of a claimed command and record ``result_written``.

    Raises:
        CommandError: the command does not exist or is not claimed.
    """
    stamp = time.time() if now is None else now
    status = "succeeded" if ok else "failed"
    with journal.transaction() as conn:
        rows = conn.execute(
            "UPDATE commands SET status = ?, result = ?, finished_at = ?"
            " WHERE id = ? AND status = 'claimed' RETURNING *",
            (status, _dumps(result), stamp, command_id),
        ).fetchall()
        if not rows:
            raise CommandError(f"command {command_id} is not claimed; cannot finish it")
        command = _row_to_command(rows[0])[0]
        _insert_event(conn, command, "result_written", ts=stamp, data={"status": status})
    return command


def execute(
    journal: Journal,
    command: Command,
    handler: Callable[[Command], tuple[bool, dict[str, Any]]],
) -> Command:
    """Run a claimed command through ``handler`` and journal the four events in order.

    An exception from ``handler`` becomes a failed result (``error`` = its class name),
    so a command is never left claimed forever by a bug in one handler.
    """
    record_started(journal, command)
    record_action(journal, command, "started")
    try:
        ok, result = handler(command)
    except Exception as exc:
        ok, result = False, {"error": type(exc).__name__, "detail": str(exc)}
    record_action(journal, command, "succeeded" if ok else "failed")
    return finish(journal, command.id, ok, result)


def wait_result(
    journal: Journal,
    command_id: str,
    timeout: float,
    *,
    poll: float = 0.05,
    sleep_fn: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Command:
    """Poll until the command is finished or ``timeout`` passes; never waits longer.

    Returns:
        The command in whatever status it has by then (check ``status``).

    Raises:
        CommandError: no such command.
    """
    deadline = clock() + timeout
    while True:
        command = get(journal, command_id)
        if command is None:
            raise CommandError(f"no command {command_id}")
        remaining = deadline - clock()
        if command.status in TERMINAL_STATUSES or remaining <= 0:
            return command
        sleep_fn(min(poll, remaining))

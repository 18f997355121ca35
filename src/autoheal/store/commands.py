"""The durable command queue: what an operator asks, claimed exactly once, audited in order.

A command lives in the journal's ``commands`` table. Its life::

    pending ──claim──► claimed ──finish──► succeeded | failed
       │                  └──settle (its claimer is gone)──► failed (claimer_died)
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

An idempotency key stands for one command: :func:`submit` under a used key returns
that command (finished: its recorded result; in flight: to wait for), unless the new
command differs in type, target or payload, which raises :class:`KeyConflictError`
and stores nothing. What a reuse means is decided by
:func:`autoheal.core.commands.decide_key_use`.

A claim records its claimer's identity; a claim whose claimer is provably gone is
settled as ``failed`` with reason ``claimer_died``
(:mod:`autoheal.store.command_claimers`). The record itself, its checksum and its rows
are :mod:`autoheal.store.command_record`. This module is the front door: it re-exports
the public names of both, so callers import the queue from here.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from autoheal.core.commands import (
    TERMINAL_STATUSES,
    Intent,
    KeyUse,
    ProcessSeen,
    decide_key_use,
)
from autoheal.store.command_claimers import (
    observe_process,
    own_identity,
    settle_dead_claims,
    settle_if_claimer_gone,
)
from autoheal.store.command_record import (
    Command,
    CommandError,
    KeyConflictError,
    Submitted,
    checksum_for,
    insert_event,
    json_text,
    row_to_command,
)
from autoheal.store.journal import Journal

__all__ = [
    "TERMINAL_STATUSES",
    "Command",
    "CommandError",
    "KeyConflictError",
    "Submitted",
    "audit",
    "checksum_for",
    "claim",
    "claim_next",
    "execute",
    "finish",
    "get",
    "observe_process",
    "own_identity",
    "record_action",
    "record_started",
    "settle_dead_claims",
    "settle_if_claimer_gone",
    "submit",
    "wait_result",
]


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

    The same key with the same type, target and payload is the same command: the
    stored one is returned (``duplicate``), finished or not, and nothing new is queued.

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
        KeyConflictError: the key already names a command with another type, target or
            payload (``requested_by`` and ``ttl`` are not part of what a key stands for).
    """
    if not type:
        raise ValueError("command type must not be empty")
    if ttl <= 0:
        raise ValueError(f"command ttl must be positive, got {ttl}")
    created_at = time.time() if now is None else now
    key = idempotency_key or uuid.uuid4().hex
    expires_at = created_at + ttl
    checksum = checksum_for(
        type=type,
        target=target,
        payload=payload,
        requested_by=requested_by,
        idempotency_key=key,
        expires_at=expires_at,
    )
    payload_text = json_text(payload)
    # Compare as stored: JSON data, not whatever Python objects the caller passed.
    new = Intent(type, target, orjson.loads(payload_text))
    with journal.transaction() as conn:
        row = conn.execute("SELECT * FROM commands WHERE idempotency_key = ?", (key,)).fetchone()
        if row is not None:
            earlier = row_to_command(row)[0]
            decision = decide_key_use(
                Intent(earlier.type, earlier.target, earlier.payload), earlier.status, new
            )
            if decision.use is KeyUse.CONFLICT:
                raise KeyConflictError(key, earlier, decision.differs)
            return Submitted(earlier, duplicate=True)
        row = conn.execute(
            "INSERT INTO commands (id, type, target, payload, requested_by, idempotency_key,"
            " checksum, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                uuid.uuid4().hex,
                type,
                target,
                payload_text,
                requested_by,
                key,
                checksum,
                created_at,
                expires_at,
            ),
        ).fetchall()[0]
    return Submitted(row_to_command(row)[0], duplicate=False)


def _rejection(command: Command, payload_ok: bool, now: float) -> str | None:
    # Checksum first: a tampered expires_at must not pass as "not expired".
    expected = checksum_for(
        type=command.type,
        target=command.target,
        payload=command.payload,
        requested_by=command.requested_by,
        idempotency_key=command.idempotency_key,
        expires_at=command.expires_at,
    )
    if not payload_ok or expected != command.checksum:
        return "checksum_mismatch"
    if now >= command.expires_at:
        return "expired"
    return None


def _claim_where(
    conn: sqlite3.Connection,
    where: str,
    params: tuple[Any, ...],
    claimer: str,
    now: float,
    *,
    identity: tuple[int, float] | None,
) -> Command | None:
    """Claim one pending row chosen by ``where``; reject it (and return None) if invalid."""
    pid, start = identity if identity is not None else (None, None)
    rows = conn.execute(
        "UPDATE commands SET status = 'claimed', claimed_by = ?, claimed_at = ?,"  # noqa: S608
        " claimer_pid = ?, claimer_start_time = ?"
        f" WHERE id = (SELECT id FROM commands WHERE status = 'pending' {where}"
        " ORDER BY created_at, rowid LIMIT 1) RETURNING *",
        (claimer, now, pid, start, *params),
    ).fetchall()
    if not rows:
        raise LookupError
    command, payload_ok = row_to_command(rows[0])
    reason = _rejection(command, payload_ok, now)
    if reason is None:
        return command
    conn.execute(
        "UPDATE commands SET status = 'rejected', result = ?, finished_at = ? WHERE id = ?",
        (json_text({"reason": reason}), now, command.id),
    )
    insert_event(
        conn,
        command,
        "command.rejected",
        reason=reason,
        ts=now,
        data={"type": command.type, "claimed_by": claimer},
    )
    return None


def claim_next(
    journal: Journal,
    claimer: str,
    *,
    now: float | None = None,
    identity: tuple[int, float] | None = None,
) -> Command | None:
    """Claim the oldest valid pending command, rejecting expired and tampered ones on the way.

    Args:
        claimer: who claims, e.g. ``pid:1234``.
        now: unix time (for tests).
        identity: the claimer's PID and start time; default this process
            (:func:`own_identity`), which is who claims in every real caller.

    Returns:
        The claimed command (status ``claimed``), or None when nothing valid is pending.
    """
    stamp = time.time() if now is None else now
    who = own_identity() if identity is None else identity
    with journal.transaction() as conn:
        while True:
            try:
                command = _claim_where(conn, "", (), claimer, stamp, identity=who)
            except LookupError:
                return None
            if command is not None:
                return command


def claim(
    journal: Journal,
    command_id: str,
    claimer: str,
    now: float | None = None,
    *,
    identity: tuple[int, float] | None = None,
) -> Command | None:
    """Claim one specific pending command (the CLI acting directly when no daemon runs).

    Args:
        identity: as for :func:`claim_next` (default this process).

    Returns:
        The claimed command, or None if it is not pending (already claimed, finished, unknown)
        or was just rejected; :func:`get` tells which.
    """
    stamp = time.time() if now is None else now
    who = own_identity() if identity is None else identity
    with journal.transaction() as conn:
        try:
            return _claim_where(conn, "AND id = ?", (command_id,), claimer, stamp, identity=who)
        except LookupError:
            return None


def get(journal: Journal, command_id: str) -> Command | None:
    """The stored command with this id, or None."""
    rows = journal.query("SELECT * FROM commands WHERE id = ?", (command_id,))
    return row_to_command(rows[0])[0] if rows else None


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
        return insert_event(conn, command, kind, reason=reason, data=data, ts=ts)


def record_started(journal: Journal, command: Command, *, now: float | None = None) -> int:
    """The executor took the claimed command up: the ``started`` event."""
    return audit(journal, command, "started", data={"claimed_by": command.claimed_by}, ts=now)


def record_action(
    journal: Journal,
    command: Command,
    phase: str,
    *,
    data: dict[str, Any] | None = None,
    now: float | None = None,
) -> int:
    """The handler's own event ``<type>.<phase>``; phase is started, succeeded or failed."""
    if phase not in ("started", "succeeded", "failed"):
        raise ValueError(f"unknown command phase {phase!r}")
    return audit(journal, command, f"{command.type}.{phase}", data=data, ts=now)


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
            (status, json_text(result), stamp, command_id),
        ).fetchall()
        if not rows:
            raise CommandError(f"command {command_id} is not claimed; cannot finish it")
        command = row_to_command(rows[0])[0]
        insert_event(conn, command, "result_written", ts=stamp, data={"status": status})
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
    settled_by: str | None = None,
    observe: Callable[[int], ProcessSeen] = observe_process,
) -> Command:
    """Poll until the command is finished or ``timeout`` passes; never waits longer.

    Args:
        settled_by: when given, a claim whose claimer is provably gone is settled as
            ``claimer_died`` (by this name) instead of being waited for.

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
        if settled_by is not None and command.status == "claimed":
            command = (
                settle_if_claimer_gone(journal, command, settled_by=settled_by, observe=observe)
                or command
            )
        remaining = deadline - clock()
        if command.status in TERMINAL_STATUSES or remaining <= 0:
            return command
        sleep_fn(min(poll, remaining))

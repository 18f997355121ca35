"""An operator's re-enable of a scope the repeated-execution throttle disabled.

``autoheal risk enable SCOPE [--operator NAME]`` (RTS 6 Art. 15(3): "until a designated
person re-enables it") runs :func:`submit_enable`, the way ``breaker reset`` runs
(:mod:`autoheal.guard.breaker_reset` says why in full): the latch file is the guard's,
the daemon holds none of it, so the command is executed in the calling process, the
same with a daemon or without; and it still goes through the journal's command queue,
submitted and claimed in one transaction (a running daemon never sees it pending), so
it is durable and audited like ``failsafe clear``: an idempotency key, the actor (the
operator's name, ``--operator`` or else the OS user; the OS user is journaled beside
it), the events ``started``, ``risk_enable.started``, ``risk_enable.succeeded|failed``.

The entry is removed under the guard's lock on ``risk_scope_latches.json.lock``
(:func:`autoheal.guard.scope_latches.remove_latch`): a trader latching another scope
at the same moment loses nothing. Only the named scope is removed; ``all`` removes
every entry and is the one way to replace a garbage document. A trading process
notices the removal at its next check (a ``stat``) and forgets its own latch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoheal.guard.scope_latches import remove_latch
from autoheal.guard.throttles import canonical_scope, parse_scope

if TYPE_CHECKING:
    from autoheal.store.commands import Command
    from autoheal.store.journal import Journal

__all__ = ["COMMAND", "execute_enable", "normalize_scope", "submit_enable"]

#: The command's type in the journal's queue.
COMMAND = "risk_enable"


def normalize_scope(text: str) -> str | None:
    """The scope as the latch file keys it, or ``None`` when ``text`` is not a scope."""
    parts = parse_scope(text)
    return None if parts is None else canonical_scope(parts)


def execute_enable(
    journal: Journal, command: Command, runtime_dir: Path, *, lock_timeout: float = 10.0
) -> Command:
    """Run a claimed ``risk_enable`` command and journal it; returns the finished command."""
    from autoheal.store import commands as queue

    scope = str(command.payload.get("scope") or "")
    operator = str(command.payload.get("operator") or command.requested_by)
    queue.record_started(journal, command)
    queue.record_action(journal, command, "started", data={"scope": scope, "operator": operator})
    try:
        ok, result = remove_latch(runtime_dir, scope, lock_timeout=lock_timeout)
    except Exception as exc:  # an unwritable file, a held lock: failed, never a stuck claim
        ok, result = False, {"reason": type(exc).__name__, "message": str(exc)[:300]}
    result = {**result, "scope": scope, "operator": operator}
    queue.record_action(journal, command, "succeeded" if ok else "failed", data=result)
    return queue.finish(journal, command.id, ok, result)


def submit_enable(
    runtime_dir: Path,
    scope: str,
    *,
    operator: str,
    os_user: str,
    timeout: float,
    idempotency_key: str | None = None,
    on_duplicate: Callable[[Command], object] | None = None,
) -> Command:
    """Queue, claim (in one transaction) and execute an enable; the command as it stands.

    Raises:
        KeyConflictError: the key names another command; nothing was queued.
    """
    from autoheal.store import commands as queue
    from autoheal.store.journal import Journal

    runtime_dir = Path(runtime_dir)
    runtime_dir.mkdir(parents=True, exist_ok=True)
    settler = f"cli:{os_user}"
    payload: dict[str, Any] = {
        "scope": scope,
        "operator": operator,
        "os_user": os_user,
        "reason": f"enable {scope}",
    }
    with Journal.open(runtime_dir) as journal:
        with journal.transaction():
            submitted = queue.submit(
                journal,
                COMMAND,
                "",
                payload,
                operator,
                idempotency_key=idempotency_key,
                ttl=max(60.0, timeout * 2),
            )
            claimed = None
            if submitted.command.status == "pending":
                claimed = queue.claim(journal, submitted.command.id, settler)
        command = submitted.command
        if submitted.duplicate and on_duplicate is not None:
            on_duplicate(command)
        if claimed is not None:
            return execute_enable(journal, claimed, runtime_dir, lock_timeout=timeout)
        command = queue.settle_if_claimer_gone(journal, command, settled_by=settler) or command
        if command.status not in queue.TERMINAL_STATUSES:
            command = queue.wait_result(journal, command.id, timeout, settled_by=settler)
        return command

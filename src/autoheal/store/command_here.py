"""A command the calling process runs itself, through the journal's queue all the same.

``breaker reset`` and ``risk enable`` change a file of the guard's that the daemon holds
none of, so the CLI executes them in its own process, daemon or not; they still go
through the queue so that they are durable and audited like every operator command:
submitted and claimed in one transaction (a running daemon never sees them pending),
an idempotency key, the actor, the events. A reused key finds the first command: it
is executed here if still pending, else its result is waited for (a claimer that died
is settled as failed, ``claimer_died``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autoheal.store import commands as queue
from autoheal.store.commands import Command
from autoheal.store.journal import Journal

__all__ = ["submit_and_run_here"]


def submit_and_run_here(
    runtime_dir: Path,
    command_type: str,
    payload: Mapping[str, Any],
    actor: str,
    *,
    settler: str,
    execute: Callable[[Journal, Command], Command],
    timeout: float,
    idempotency_key: str | None = None,
    on_duplicate: Callable[[Command], object] | None = None,
) -> Command:
    """Queue, claim (in one transaction) and ``execute`` a command; the command as it stands.

    Raises:
        KeyConflictError: the key names another command; nothing was queued.
    """
    with Journal.open(runtime_dir) as journal:
        with journal.transaction():
            submitted = queue.submit(
                journal,
                command_type,
                "",
                dict(payload),
                actor,
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
            return execute(journal, claimed)
        command = queue.settle_if_claimer_gone(journal, command, settled_by=settler) or command
        if command.status not in queue.TERMINAL_STATUSES:
            command = queue.wait_result(journal, command.id, timeout, settled_by=settler)
        return command

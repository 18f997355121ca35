"""The durable commands' one path: submit, hand over or execute, wait; then one report.

``restart``, ``stop``, ``start``, ``failsafe``, ``chaos`` and ``breaker reset`` are
durable commands (DESIGN.md §4): each is a :class:`Request` value parsed from argv,
queued in the journal with an idempotency key, a checksum and an expiry, executed
once, and waited for. :func:`submit_and_wait` does that and returns an
:data:`Outcome` value; :func:`report` alone turns an outcome into text and an exit
code:

============================================  =======================================  ====
outcome                                       prints                                   exit
============================================  =======================================  ====
:class:`Finished`, ``succeeded``              ``<command> succeeded: <result JSON>``   0
:class:`Finished`, still pending or claimed   ``... no result yet: ...`` (stderr)      1
:class:`Finished`, failed (or expired, ...)   ``<command> <status>: <why>`` (stderr)   1
:class:`Finished`, refused by a safety gate   the same                                 3
:class:`Queued` (``--no-wait``)               ``queued command <id> ...``              0
:class:`~autoheal.cli.common.Problem`         one line (stderr)                        2/3/1
============================================  =======================================  ====

Exit 0 means the command succeeded, or, with ``--no-wait``, that it is durably queued
(the caller chose not to wait); not done is never success.

Who executes:

* a daemon command (all but the breaker reset): the daemon, when one holds the
  runtime's lock; else this process, directly (:mod:`autoheal.daemon.direct`), and
  says so. A chaos fault needs the daemon (``autoheal run --chaos``): without one it
  is settled as failed (``no_daemon``).
* ``breaker_reset``: always this process, under the guard's file lock
  (:func:`autoheal.guard.breaker_reset.submit_reset`, which the status page's button
  runs too).

An idempotency key used again with the same command returns the earlier command's
recorded result (``duplicate: ...`` first), or waits for it; with another command it
is a usage error and nothing is queued. Lines that tell what is happening (the
duplicate, "executing directly") are printed as it happens, before any wait.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autoheal.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, Problem, err, fail, say

if TYPE_CHECKING:
    from autoheal.config import Config
    from autoheal.store.commands import Command
    from autoheal.store.journal import Journal

__all__ = ["Finished", "Outcome", "Queued", "Request", "report", "submit_and_wait"]


@dataclass(frozen=True, slots=True)
class Request:
    """One durable command as the operator asked for it; nothing read or written yet.

    Attributes:
        type: ``restart``, ``stop``, ``start``, ``failsafe_enter``, ``failsafe_clear``,
            ``failsafe_reduce_only``, ``chaos_<fault>`` or ``breaker_reset``.
        target: the service (or chaos target); ``""`` for none.
        payload: what the executor needs (the reason, a fault's settings, the keys).
        idempotency_key: the operator's key; None for a fresh one.
        timeout: seconds to wait for the result.
        wait: False for ``--no-wait``: queued is enough.
    """

    type: str
    target: str
    payload: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    timeout: float = 30.0
    wait: bool = True

    @property
    def ttl(self) -> float:
        """How long the queued command stays valid: twice the wait, at least a minute."""
        return max(60.0, self.timeout * 2)


@dataclass(frozen=True, slots=True)
class Finished:
    """The command as it stands after it ran or the wait ended (maybe still not done)."""

    command: Command


@dataclass(frozen=True, slots=True)
class Queued:
    """Durably queued, not waited for (``--no-wait``)."""

    command: Command
    duplicate: bool


Outcome = Finished | Queued | Problem


def report(outcome: Outcome) -> int:
    """Print ``outcome`` (see the table in the module doc) and return its exit code.

    The command's fields come from the journal: every line is cleaned.
    """
    if isinstance(outcome, Problem):
        return fail(outcome)
    command = outcome.command
    if isinstance(outcome, Queued):
        # Exit 0 here means "durably queued", not "done": the caller chose not to wait.
        if outcome.duplicate:
            say(f"queued command {command.id} ({command.status}); not waiting")
        else:
            say(f"queued command {command.id}; not waiting for its result")
        return EXIT_OK
    result = command.result or {}
    if command.status == "succeeded":
        say(f"{command.describe()} succeeded: {json.dumps(result, sort_keys=True)}")
        return EXIT_OK
    if command.status in ("pending", "claimed"):
        # Not done is not success: exit 1, whatever may still happen to it.
        by = f" by {command.claimed_by}" if command.status == "claimed" else ""
        err(
            f"autoheal: {command.describe()}: no result yet: command {command.id} is still "
            f"{command.status}{by}"
        )
        return EXIT_FAILED
    message = result.get("message") or result.get("reason") or command.status
    err(f"autoheal: {command.describe()} {command.status}: {message}")
    return EXIT_REFUSED if result.get("refused") else EXIT_FAILED


def _say_duplicate(command: Command) -> None:
    say(
        f"duplicate: idempotency key {command.idempotency_key!r} already used by "
        f"{command.id} ({command.status})"
    )


def submit_and_wait(cfg: Config, request: Request, *, user: str) -> Outcome:
    """Queue ``request`` as ``user``, have it executed, wait for it (see the module doc).

    ``request`` is checked against the config already (a known service, not chaos on a
    live runtime): this only queues, executes or waits.
    """
    from autoheal.guard.breaker_reset import COMMAND as BREAKER_RESET
    from autoheal.store.commands import KeyConflictError

    try:
        if request.type == BREAKER_RESET:
            return Finished(_reset_here(cfg, request, user))
        return _through_daemon(cfg, request, user)
    except KeyConflictError as exc:  # nothing was queued
        return Problem("usage", str(exc))


def _reset_here(cfg: Config, request: Request, user: str) -> Command:
    from autoheal.guard.breaker_reset import submit_reset

    return submit_reset(
        cfg.paths.runtime_dir,
        request.payload["keys"],
        reason=request.payload["reason"],
        user=user,
        idempotency_key=request.idempotency_key,
        timeout=request.timeout,
        on_duplicate=_say_duplicate,
    )


def _through_daemon(cfg: Config, request: Request, user: str) -> Outcome:
    from autoheal.store import commands as queue
    from autoheal.store.journal import Journal
    from autoheal.store.lock import lock_holder

    runtime_dir = cfg.paths.runtime_dir
    settler = f"cli:{user}"  # who settles a claim whose claimer is gone, for the journal
    runtime_dir.mkdir(parents=True, exist_ok=True)
    with Journal.open(runtime_dir) as journal:
        submitted = queue.submit(
            journal,
            request.type,
            request.target,
            request.payload,
            user,
            idempotency_key=request.idempotency_key,
            ttl=request.ttl,
        )
        command = submitted.command
        if submitted.duplicate:
            _say_duplicate(command)
            # Its claimer may have died: then nobody will ever finish it.
            command = queue.settle_if_claimer_gone(journal, command, settled_by=settler) or command
            if command.status in queue.TERMINAL_STATUSES:
                return Finished(command)  # the recorded result, the original's exit code
            if command.status == "claimed" or lock_holder(runtime_dir) is not None:
                if not request.wait:
                    return Queued(command, duplicate=True)
                return Finished(_wait(journal, command, request, settler))
            # pending and no daemon: act on it directly, as for a new command
        if lock_holder(runtime_dir) is None:
            return _without_daemon(cfg, journal, command, request, settler)
        if not request.wait:
            return Queued(command, duplicate=False)
        return Finished(_wait(journal, command, request, settler))


def _without_daemon(
    cfg: Config, journal: Journal, command: Command, request: Request, settler: str
) -> Outcome:
    """No daemon holds the lock: a chaos fault fails, anything else runs here, now."""
    from autoheal.store import commands as queue

    if request.type.startswith("chaos_"):
        queue.claim(journal, command.id, "cli")
        queue.finish(journal, command.id, False, {"reason": "no_daemon"})
        return Problem("failed", "no daemon running: chaos faults need 'autoheal run --chaos'")
    err("no daemon running (its lock is free): executing directly")
    from autoheal.daemon.direct import execute_directly

    command = execute_directly(cfg, journal, command)
    if command.status not in queue.TERMINAL_STATUSES:
        # Another CLI claimed it first (same key, racing): wait for its result.
        command = _wait(journal, command, request, settler)
    return Finished(command)


def _wait(journal: Journal, command: Command, request: Request, settler: str) -> Command:
    from autoheal.store import commands as queue

    return queue.wait_result(journal, command.id, request.timeout, settled_by=settler)

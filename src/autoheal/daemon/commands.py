"""Operator commands from the journal's queue into the core, and their results back.

A command runs "through the same code path as automatic healing": it becomes an
``Operator*`` observation for :func:`autoheal.core.step`, whose decision names the
action that answers it (``Decision.reply_after``): its result is written when that
process action has finished (the new PID of a restart), or at once when there is
none (failsafe enter/clear: the restarts a clear begins report on their own).
Audit events, in order: ``started``, ``<type>.started``, ``<type>.succeeded|failed``,
``result_written``.

Each claim records this daemon's PID and start time. Before it claims anything, a
starting daemon settles the claims of claimers that are provably gone (a daemon
killed between ``started`` and ``result_written``, a CLI killed while acting
directly) as ``failed``/``claimer_died``: nobody else would ever finish them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from autoheal.core import commands as core_commands
from autoheal.core.actions import SendNotice
from autoheal.core.commands import COMPONENT_COMMANDS, SCOPED_COMMANDS
from autoheal.core.errors import CommandRefusedError
from autoheal.core.observations import Observation
from autoheal.daemon.clock import Clock
from autoheal.store import commands as queue
from autoheal.store.commands import Command
from autoheal.store.journal import Journal

log = logging.getLogger("autoheal")

#: The fallback poll while no watch sees the journal change (failed, or not started yet).
POLL_INTERVAL_S = 1.0
#: The safety-net poll while the watch runs: each journal change pokes us at once, so this
#: only bounds the wait for a change a watch could miss (a journal on a network filesystem).
WATCHED_POLL_INTERVAL_S = 10.0


@dataclass
class PendingCommand:
    """A claimed command until its result is written (``done``: written, once)."""

    command: Command
    done: bool = field(default=False)


def observation_for(command: Command) -> Observation | None:
    """The core observation for a queued command, or None when it is not the core's."""
    reason = str(command.payload.get("reason") or "")
    return core_commands.observation_for(command.type, command.target, reason, command.requested_by)


def refusal_result(exc: Exception) -> dict[str, Any]:
    return {
        "refused": isinstance(exc, CommandRefusedError),
        "reason": getattr(exc, "reason", type(exc).__name__),
        "message": str(exc),
    }


class CommandBridge:
    """Claims queued commands for one daemon and reports their outcome.

    What a command means is the core's business: the consumer steps it
    (:meth:`autoheal.daemon.interpreter.Interpreter.take`) after :meth:`start`.

    Args:
        journal: the journal holding the queue.
        submit: hands a claimed command to the daemon's one consumer loop.
        notify: sends an operator notice.
        clock: the daemon's clock (the poll's pace).
    """

    def __init__(
        self,
        *,
        journal: Journal,
        submit: Callable[[PendingCommand], Awaitable[None]],
        notify: Callable[[SendNotice], None],
        clock: Clock,
    ) -> None:
        self._journal = journal
        self._submit = submit
        self._notify = notify
        self._clock = clock
        self.claimer = f"pid:{os.getpid()}"
        self._wake = anyio.Event()
        self.poll_interval_s = POLL_INTERVAL_S
        #: Dead claims are settled at start, and again at each poll until that works.
        self._settled = False
        #: Results the journal refused (its lock, a full disk): written at the next poll.
        self._unwritten: list[tuple[str, bool, dict[str, Any], float]] = []

    def poke(self) -> None:
        """The journal changed: a command may be waiting."""
        self._wake.set()

    def watching(self, watched: bool) -> None:
        """Whether a watch reports the journal's changes (then the poll is only a safety net)."""
        self.poll_interval_s = WATCHED_POLL_INTERVAL_S if watched else POLL_INTERVAL_S
        # Look once now: for what came before the watch began, or to poll at the new pace.
        self._wake.set()

    def settle_dead_claims(self) -> None:
        """Settle the claims of gone claimers (a previous daemon's, a killed CLI's).

        A journal that refuses (its lock held past the busy timeout, a full disk) is
        asked again at each poll: nobody else would ever finish those commands.
        """
        try:
            settled = queue.settle_dead_claims(
                self._journal, settled_by=self.claimer, now=self._clock.wall()
            )
        except Exception as exc:
            log.error("command_settle_failed error=%s; trying again at the next poll", exc)
            return
        self._settled = True
        for command in settled:
            log.warning(
                "command_claimer_died id=%s type=%s target=%s claimed_by=%s why=%s",
                command.id,
                command.type,
                command.target or "-",
                command.claimed_by,
                command.result.get("why"),
            )

    async def poll(self) -> None:
        while True:
            if not self._settled:
                self.settle_dead_claims()
            self._write_unwritten()
            try:
                command = queue.claim_next(self._journal, self.claimer, now=self._clock.wall())
            except Exception as exc:
                log.error("command_claim_failed error=%s", exc)
                command = None
            if command is not None:
                await self._submit(PendingCommand(command))
                continue
            with self._clock.move_on_at(self._clock.now() + self.poll_interval_s):
                await self._wake.wait()
            self._wake = anyio.Event()

    def _write_result(self, command_id: str, ok: bool, result: dict[str, Any], now: float) -> bool:
        """Store a command's result; kept for the next poll when the journal refuses."""
        try:
            queue.finish(self._journal, command_id, ok, result, now=now)
        except queue.CommandError as exc:
            # Only if someone settled our live claim (they could not prove us gone, so
            # this is a bug elsewhere); the daemon carries on.
            log.error("command_finish_failed id=%s error=%s", command_id, exc)
        except Exception as exc:
            log.error("command_result_unwritten id=%s error=%s; kept to retry", command_id, exc)
            self._unwritten.append((command_id, ok, result, now))
            return False
        return True

    def _write_unwritten(self) -> None:
        """Results the journal refused before, oldest first, until it refuses again."""
        while self._unwritten:
            command_id, ok, result, now = self._unwritten.pop(0)
            if not self._write_result(command_id, ok, result, now):
                self._unwritten.insert(0, self._unwritten.pop())  # back in its place
                return

    def start(self, pending: PendingCommand) -> bool:
        """Record that ``pending`` starts now (``started``, ``<type>.started``).

        Returns:
            False when the journal refused (its lock, a full disk): then the command is
            not run, since no act goes unrecorded, and is answered as failed
            (``journal_refused``; the result is written as soon as the journal takes
            it). The operator may retry under the same key.
        """
        command = pending.command
        now = self._clock.wall()
        try:
            queue.record_started(self._journal, command, now=now)
            queue.record_action(self._journal, command, "started", now=now)
        except Exception as exc:
            log.error("command_not_started id=%s error=%s", command.id, exc)
            self.fail_reason(pending, "journal_refused", f"its start could not be recorded: {exc}")
            return False
        log.info(
            "command_started id=%s type=%s target=%s by=%s",
            command.id,
            command.type,
            command.target or "-",
            command.requested_by,
        )
        return True

    def succeed(self, pending: PendingCommand, result: dict[str, Any]) -> None:
        self._finish(pending, True, result)

    def fail(self, pending: PendingCommand, exc: Exception) -> None:
        self._finish(pending, False, refusal_result(exc))

    def fail_reason(
        self, pending: PendingCommand, reason: str, message: str = "", refused: bool = False
    ) -> None:
        self._finish(
            pending, False, {"refused": refused, "reason": reason, "message": message or reason}
        )

    def _finish(self, pending: PendingCommand, ok: bool, result: dict[str, Any]) -> None:
        if pending.done:
            return
        pending.done = True
        journal = self._journal
        now = self._clock.wall()
        try:
            queue.record_action(journal, pending.command, "succeeded" if ok else "failed", now=now)
        except Exception as exc:
            log.error("command_audit_failed id=%s phase=result error=%s", pending.command.id, exc)
        self._write_result(pending.command.id, ok, result, now)
        command = pending.command
        if command.type in COMPONENT_COMMANDS or command.type in SCOPED_COMMANDS:
            # failsafe enter/clear notify through the core's SendNotice already; a scoped
            # halt (no core step) is told here, naming its scope
            outcome = "done" if ok else f"failed ({result.get('reason')})"
            self._notify(
                SendNotice(
                    "operator",
                    command.target,
                    "operator",
                    f"{command.type} {command.target} by {command.requested_by}: {outcome}; "
                    f"reason: {command.payload.get('reason') or '-'}",
                )
            )
        log.info(
            "command_finished id=%s type=%s ok=%s result=%s",
            pending.command.id,
            pending.command.type,
            ok,
            result,
        )

"""An operator's scoped halt (``failsafe enter|clear --scope``), carried out by the daemon.

The command was journaled when it was queued (who asked, the scope, the reason) and
its start by the bridge; this writes the daemon's record ``scoped_halts.json`` and
copies the halts into ``global_flags.json`` (:mod:`autoheal.guard.scoped_record`),
then answers the command. The same code runs in the CLI when no daemon runs
(:mod:`autoheal.daemon.direct`). Only an operator's clear removes a scope.
"""

from __future__ import annotations

import logging

from autoheal.core.commands import CommandType
from autoheal.core.fleet_scoped import SET_BY as FLEET_SET_BY
from autoheal.daemon.commands import CommandBridge, PendingCommand
from autoheal.daemon.killswitch import KillSwitch
from autoheal.guard import scoped_record as scoped_halts
from autoheal.guard.scopes import Halt, ScopeError, parse_scope

__all__ = ["run_scoped_command"]

log = logging.getLogger("autoheal")


def run_scoped_command(
    killswitch: KillSwitch, commands: CommandBridge, pending: PendingCommand, wall: float
) -> None:
    """Set or clear the scope the command names; its result says what changed."""
    command = pending.command
    try:
        scope = parse_scope(command.target)
    except ScopeError as exc:
        commands.fail_reason(pending, "invalid_scope", str(exc), refused=True)
        return
    name = str(scope)
    if scope.is_all:
        commands.fail_reason(
            pending, "invalid_scope", "scope all is the whole-runtime failsafe", refused=True
        )
        return
    reason = str(command.payload.get("reason") or "")
    rt = killswitch.files.runtime_dir
    try:
        if command.type == CommandType.FAILSAFE_ENTER_SCOPE:
            halt = Halt(reason, wall, command.requested_by)
            # An operator's enter takes a fleet-set scope over: the fleet's clear leaves it.
            changed = scoped_halts.set_halt(rt, name, halt, take_over=FLEET_SET_BY)
        else:
            changed = scoped_halts.clear_halt(rt, name)
        synced = scoped_halts.sync_flags(rt)
    except scoped_halts.RecordUnreadableError as exc:
        log.error("scoped_halt_refused scope=%s error=%s", name, exc)
        commands.fail_reason(pending, scoped_halts.UNREADABLE, str(exc), refused=True)
        return
    except OSError as exc:
        log.error("scoped_halt_write_failed scope=%s error=%s", name, exc)
        commands.fail_reason(pending, "scoped_halt_write_failed", str(exc))
        return
    if synced:
        killswitch.rewrote_flags()
    entered = command.type == CommandType.FAILSAFE_ENTER_SCOPE
    log.warning(
        "scoped_halt_%s scope=%s by=%s reason=%s changed=%s",
        "entered" if entered else "cleared",
        name,
        command.requested_by,
        reason or "-",
        changed,
    )
    commands.succeed(
        pending,
        {
            "scope": name,
            "halted": entered,
            "changed": changed,
            "set_by": command.requested_by,
            "flags_written": synced,
        },
    )

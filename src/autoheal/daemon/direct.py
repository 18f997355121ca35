"""Executing one operator command with no daemon running (its lock free).

The same core step and the same action code as the daemon: we take the daemon's
lock for the duration (so a daemon cannot start half-way through), load the
state, apply the command, wait for its process action, save the state. No exit
watchers or probes run: the next daemon adopts the new process by its pidfile.
"""

from __future__ import annotations

import logging

import anyio

from autoheal.config import Config
from autoheal.daemon.commands import PendingCommand
from autoheal.store import commands as queue
from autoheal.store.commands import Command
from autoheal.store.journal import Journal
from autoheal.store.lock import LockHeldError, RuntimeLock

log = logging.getLogger("autoheal")


def execute_directly(config: Config, journal: Journal, command: Command) -> Command:
    """Claim ``command`` and run it here; returns the finished command."""
    from autoheal.daemon.loop import Daemon

    claimed = queue.claim(journal, command.id, "cli-direct")
    if claimed is None:
        return queue.get(journal, command.id) or command
    daemon = Daemon(config)
    lock = RuntimeLock(config.paths.runtime_dir)
    try:
        lock.acquire()
    except LockHeldError as exc:
        # A daemon started between our check and now: hand the command back to it.
        log.info("daemon appeared (%s); leaving the command to it", exc)
        queue.finish(journal, command.id, False, {"reason": "daemon_started", "message": str(exc)})
        return queue.get(journal, command.id) or command
    try:
        anyio.run(daemon.run_command, PendingCommand(claimed), journal)
    finally:
        lock.release()
    return queue.get(journal, command.id) or command

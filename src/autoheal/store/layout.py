"""The runtime contract's file names, in one place (DESIGN.md: files and fields).

Every module that reads or writes a runtime file takes its name from here, so a
name in the docs, the daemon, the guard, ``autoheal status`` and the drills cannot
drift apart. Paths are relative to ``paths.runtime_dir`` unless said otherwise.
Names, and :func:`owned_files` / :func:`owned_folders` that list them as paths (what
``paths.stop_file`` must never be: ``autoheal.config``): importing this costs nothing
(``autoheal status`` must start fast).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath

#: The kill switch (``STOP.TXT``'s default place is beside the runtime directory).
STOP_FILE_DEFAULT = "STOP.TXT"
FLAGS = "global_flags.json"
#: The guard's daily-loss latch: a request for REDUCE_ONLY that only the daemon
#: (on an operator's clear) or an operator removes.
RISK_LATCH = "risk_latch.json"
#: Scoped halts (``autoheal failsafe enter --scope``): the daemon's durable record of
#: them; their copy under ``scoped_halts`` in the flags is what a flags reader sees.
SCOPED_HALTS = "scoped_halts.json"

#: The daemon's own files.
HEALTH = "health_v2.json"
STATE = "autoheal_state.json"
DAEMON_HEARTBEAT = "auto_heal.heartbeat.json"
JOURNAL = "journal.sqlite3"
LOCK = "autoheal.lock"
NOTIFICATIONS = "notifications.log"
STATUS_ENDPOINT = "status_endpoint.json"
ALERTS_DIR = "alerts"
LOGS_DIR = "logs"
DRILLS_DIR = "drills"
#: Each drill's last result (``autoheal drill run`` writes, ``autoheal compliance`` reads).
DRILL_HISTORY = "drill_history.json"
#: SQLite's files beside the journal (WAL mode; ``-journal`` in rollback mode).
JOURNAL_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

#: The guard's files, shared by the trading processes.
ORDER_LEDGER = "runtime/order_sigs.json"
BREAKERS = "circuit_breaker.json"
POSITIONS = "positions_snapshot.json"
STATE_BUS = "state_bus.json"
#: The state bus's last-known-good copy, and the suffix of the guard's lock files
#: (``flock`` on ``<file>.lock`` beside each file it shares between processes).
BACKUP_SUFFIX = ".bak"
GUARD_LOCK_SUFFIX = ".lock"
#: The day's realized PnL, loss latch and cost basis (``[risk]``), under ``risk_pnl.json.lock``.
RISK_PNL = "risk_pnl.json"
#: The last reconciliation of the order ledger with the venue's open orders (issue 24).
RECONCILIATION = "reconciliation.json"

#: A service's own files: ``<name>.pid`` and ``<name>.heartbeat.json``.
PIDFILE_SUFFIX = ".pid"
HEARTBEAT_SUFFIX = ".heartbeat.json"


def owned_files(runtime_dir: PurePath, services: Iterable[str]) -> dict[PurePath, str]:
    """Every file under ``runtime_dir`` the daemon, the guard or a service writes by name.

    Args:
        runtime_dir: ``paths.runtime_dir``.
        services: the configured services' names (``<name>.pid``, ``<name>.heartbeat.json``).

    Returns:
        Each path with what it is, in words (``"the journal"``).
    """
    rt = runtime_dir
    found: dict[PurePath, str] = {
        rt / FLAGS: "the kill switch's flags file",
        rt / SCOPED_HALTS: "the daemon's record of scoped halts",
        rt / HEALTH: "the health file",
        rt / STATE: "the daemon's state file",
        rt / DAEMON_HEARTBEAT: "the daemon's heartbeat",
        rt / JOURNAL: "the journal",
        rt / LOCK: "the daemon's lock",
        rt / NOTIFICATIONS: "the notifications log",
        rt / STATUS_ENDPOINT: "the status page's endpoint file",
        rt / (STATE_BUS + BACKUP_SUFFIX): "the guard's state bus backup",
        rt / DRILL_HISTORY: "the drill history",
        rt / (DRILL_HISTORY + GUARD_LOCK_SUFFIX): "the lock of the drill history",
    }
    for suffix in JOURNAL_SIDE_SUFFIXES:
        found[rt / (JOURNAL + suffix)] = "the journal"
    for name, what in (
        (ORDER_LEDGER, "the guard's order ledger"),
        (BREAKERS, "the guard's circuit breakers"),
        (POSITIONS, "the guard's positions snapshot"),
        (STATE_BUS, "the guard's state bus"),
        (RISK_PNL, "the guard's day of realized PnL"),
    ):
        found[rt / name] = what
        found[rt / (name + GUARD_LOCK_SUFFIX)] = f"the lock of {what}"
    for service in services:
        found[rt / (service + PIDFILE_SUFFIX)] = f"service {service}'s pidfile"
        found[rt / (service + HEARTBEAT_SUFFIX)] = f"service {service}'s heartbeat"
    return found


def owned_folders(runtime_dir: PurePath) -> dict[PurePath, str]:
    """The folders under ``runtime_dir`` whose whole content the daemon or the guard owns."""
    return {
        runtime_dir / ALERTS_DIR: "the alerts folder",
        runtime_dir / LOGS_DIR: "the services' logs folder",
        runtime_dir / DRILLS_DIR: "the drill reports folder",
        runtime_dir / PurePath(ORDER_LEDGER).parent: "the guard's runtime folder",
    }

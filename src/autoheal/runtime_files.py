"""The runtime contract's file names, in one place (DESIGN.md: files and fields).

Every module that reads or writes a runtime file takes its name from here, so a
name in the docs, the daemon, the guard, ``autoheal status`` and the drills cannot
drift apart. Paths are relative to ``paths.runtime_dir`` unless said otherwise.
Names only: importing this costs nothing (``autoheal status`` must start fast).
"""

from __future__ import annotations

#: The kill switch (``STOP.TXT``'s default place is beside the runtime directory).
STOP_FILE_DEFAULT = "STOP.TXT"
FLAGS = "global_flags.json"
#: The guard's daily-loss latch: a request for REDUCE_ONLY that only the daemon
#: (on an operator's clear) or an operator removes.
RISK_LATCH = "risk_latch.json"

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

#: The guard's files, shared by the trading processes.
ORDER_LEDGER = "runtime/order_sigs.json"
BREAKERS = "circuit_breaker.json"
POSITIONS = "positions_snapshot.json"
STATE_BUS = "state_bus.json"

#: A service's own files: ``<name>.pid`` and ``<name>.heartbeat.json``.
PIDFILE_SUFFIX = ".pid"
HEARTBEAT_SUFFIX = ".heartbeat.json"

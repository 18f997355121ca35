"""The five stages of a supervised component and the reason tokens they carry.

Stage names are part of the contract: they appear in ``health_v2.json``,
``autoheal_state.json``, log lines and metrics. Reason tokens are stable words
shared by logs, files and tests: add new ones, never rename.
"""

from __future__ import annotations

import enum


class Stage(enum.StrEnum):
    OBSERVE = "OBSERVE"
    RESTART = "RESTART"
    BACKOFF = "BACKOFF"
    FAILSAFE = "FAILSAFE"
    NOTIFY = "NOTIFY"


#: Severity for "the most severe stage" in health_v2.json.
SEVERITY: dict[Stage, int] = {
    Stage.OBSERVE: 0,
    Stage.BACKOFF: 1,
    Stage.RESTART: 2,
    Stage.NOTIFY: 3,
    Stage.FAILSAFE: 4,
}

#: Failures that mean the process itself is gone: restart at once, no counting.
HARD_REASONS = frozenset({"process_exited", "process_missing", "spawn_failed"})

PROCESS_EXITED = "process_exited"
PROCESS_MISSING = "process_missing"
SPAWN_FAILED = "spawn_failed"
HEARTBEAT_STALE = "heartbeat_stale"
VERIFY_TIMEOUT = "verify_timeout"
MAX_RESTARTS_EXCEEDED = "max_restarts_exceeded"
DEPENDENCY_FAILING = "dependency_failing"
FAILSAFE_ACTIVE = "failsafe_active"
CONFIG_CHANGED = "config_changed"
CONFIG_ADDED = "config_added"
CONFIG_REMOVED = "config_removed"
OPERATOR = "operator"
RECOVERED = "recovered"
VERIFIED = "verified"
STARTED = "started"
STABLE = "stable_reset"

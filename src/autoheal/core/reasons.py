"""Reason tokens: the stable words that logs, files, metrics and tests share (DESIGN.md §3).

One home for every reason a probe, a process or the stage machine gives: a probe's
failure (``heartbeat_stale``, ``CONN_TIMEOUT``, ``http_status_<code>``, ...), what
happened to a process (``process_exited``, ``spawn_failed``), and why a component
moved (``verify_timeout``, ``max_restarts_exceeded``, ``operator``, ...). The probes
(:mod:`autoheal.probes.result`) and the process control (:mod:`autoheal.procs.model`)
re-export theirs from here. Add new ones; never rename.

Domain words with a home of their own stay there: the fleet's (``core.fleet``), the
kill switch's alerts (``core.switch``), the command queue's (``core.commands``).
"""

from __future__ import annotations

__all__ = [
    "AUTH_ENV_MISSING",
    "CONFIG_ADDED",
    "CONFIG_CHANGED",
    "CONFIG_REMOVED",
    "CONN_ERROR",
    "CONN_REFUSED",
    "CONN_TIMEOUT",
    "CPU_HIGH",
    "DEPENDENCY_FAILING",
    "EXEC_FAILED",
    "EXEC_TIMEOUT",
    "FAILSAFE_ACTIVE",
    "FDS_HIGH",
    "FEED_INVALID",
    "FEED_MISSING",
    "FEED_SEQUENCE_GAP",
    "FEED_STALE",
    "HARD_REASONS",
    "HEARTBEAT_INVALID",
    "HEARTBEAT_MISSING",
    "HEARTBEAT_STALE",
    "JSON_FIELD_MISSING",
    "JSON_FIELD_TYPE",
    "JSON_INVALID",
    "JSON_STALE",
    "JSON_VALUE_MISMATCH",
    "LATENCY_P95_HIGH",
    "MAX_RESTARTS_EXCEEDED",
    "OPERATOR",
    "ORDER_MISSING_AT_VENUE",
    "ORDER_UNKNOWN_AT_VENUE",
    "PROBE_ERROR",
    "PROBE_TIMEOUT",
    "PROCESS_EXITED",
    "PROCESS_MISSING",
    "RECONCILE_UNKNOWN",
    "RECOVERED",
    "RISK_COLLAR_WINDOW",
    "RISK_DRAWDOWN",
    "RISK_MESSAGE_RATE",
    "RISK_PNL_UNAVAILABLE",
    "RISK_REPEATED_EXECUTION",
    "RSS_HIGH",
    "SCOPED_HALT",
    "SPAWN_FAILED",
    "STABLE",
    "STARTED",
    "THREADS_HIGH",
    "VERIFIED",
    "VERIFY_TIMEOUT",
    "WS_STALE",
    "exit_code_reason",
    "http_status_reason",
]

# -- a process
PROCESS_EXITED = "process_exited"
#: A pidfile that does not lead to a live process of ours.
PROCESS_MISSING = "process_missing"
SPAWN_FAILED = "spawn_failed"

#: Failures that mean the process itself is gone: restart at once, no counting.
HARD_REASONS = frozenset({PROCESS_EXITED, PROCESS_MISSING, SPAWN_FAILED})

# -- a probe
HEARTBEAT_STALE = "heartbeat_stale"
HEARTBEAT_MISSING = "heartbeat_missing"
HEARTBEAT_INVALID = "heartbeat_invalid"
WS_STALE = "ws_stale"
CONN_TIMEOUT = "CONN_TIMEOUT"
CONN_REFUSED = "CONN_REFUSED"
CONN_ERROR = "CONN_ERROR"
LATENCY_P95_HIGH = "latency_p95_high"
#: The probe did not answer within the runner's timeout.
PROBE_TIMEOUT = "probe_timeout"
#: The probe itself raised (a bug or an unexpected OS error); logged once by the runner.
PROBE_ERROR = "probe_error"

# -- an http_json probe (issue 22); its HTTP-level failures are the http probe's tokens
#: The body is not JSON, or is larger than the probe reads.
JSON_INVALID = "json_invalid"
#: The JSON pointer leads nowhere in the body.
JSON_FIELD_MISSING = "json_field_missing"
#: The field has the wrong type for the judgement (not a timestamp; not the type of ``equals``).
JSON_FIELD_TYPE = "json_field_type"
#: The timestamp field is older than ``max_age``.
JSON_STALE = "json_stale"
#: The field is not ``equals``.
JSON_VALUE_MISMATCH = "json_value_mismatch"
#: The environment variable named by ``auth_env`` is not set in the daemon's environment.
AUTH_ENV_MISSING = "auth_env_missing"

# -- a feed_lag probe (issue 23): the feeder's per-symbol exchange data (core.feed_lag)
#: A symbol's newest exchange event timestamp is older than ``max_age``.
FEED_STALE = "feed_stale"
#: A symbol missed more sequence numbers than ``max_gaps`` since the feeder started.
FEED_SEQUENCE_GAP = "feed_sequence_gap"
#: No ``feed`` section in the heartbeat, or a configured symbol is not in it.
FEED_MISSING = "feed_missing"
#: The ``feed`` section or a symbol's entry has the wrong shape or type.
FEED_INVALID = "feed_invalid"

# -- an exec probe (issue 23)
#: The command exited with a code other than 0 (the detail has the code and stderr's first line).
EXEC_FAILED = "exec_failed"
#: The command did not exit within the probe's timeout; it was killed with its process group.
EXEC_TIMEOUT = "exec_timeout"

# -- a resource probe (issue 23): a threshold on the service's process tree crossed
RSS_HIGH = "rss_high"
CPU_HIGH = "cpu_high"
FDS_HIGH = "fds_high"
THREADS_HIGH = "threads_high"


def http_status_reason(status: int) -> str:
    """Return the stable token for an unexpected HTTP status, e.g. ``http_status_502``."""
    return f"http_status_{status}"


# -- the stage machine: why a component moved
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
#: An order inside an operator's scoped halt (``scoped_halt:<scope>`` from the gate;
#: :data:`autoheal.guard.scopes.SCOPED_HALT`).
SCOPED_HALT = "scoped_halt"


# -- a service's exit-code rules (issue 23): ``failsafe_exit_codes``, ``restart_exit_codes``
def exit_code_reason(code: int) -> str:
    """Return the token for an exit a rule judged, e.g. ``exit_code_78``."""
    return f"exit_code_{code}"


# -- the guard's loss limits (issue 24; the guard's own list: autoheal.guard.risk_check.REASONS)
#: The drawdown from the peak latched after ``loss_breach_reads`` consecutive breaching reads.
RISK_DRAWDOWN = "risk_drawdown"
#: An equity read that is missing or not a number: new entries paused, nothing latched.
RISK_PNL_UNAVAILABLE = "risk_pnl_unavailable"


# -- reconciliation of the order ledger with the venue (issue 24; the guard's own copies
# are in autoheal.guard.reconcile, which ships without the core)
#: An order open at the venue that the ledger does not know: reported, never adopted.
ORDER_UNKNOWN_AT_VENUE = "order_unknown_at_venue"
#: An order the ledger holds resting that the venue does not have.
ORDER_MISSING_AT_VENUE = "order_missing_at_venue"
#: A reconciliation pass that could not be done (venue or ledger unreadable): never ok.
RECONCILE_UNKNOWN = "reconcile_unknown"


# -- the guard's execution throttles (issue 24; autoheal.guard.throttles): RTS 6
# Art. 15(1)(d) message limits, 15(1)(a) the collar over a period, 15(3) repeated executions
RISK_MESSAGE_RATE = "risk_message_rate"
RISK_COLLAR_WINDOW = "risk_collar_window"
RISK_REPEATED_EXECUTION = "risk_repeated_execution"

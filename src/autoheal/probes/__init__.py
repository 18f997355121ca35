"""Async health probes and the runner that drives each one (DESIGN.md §1, §3).

A probe answers with a :class:`ProbeResult` (failure is a value with a stable
reason token, never an exception); :class:`ProbeRunner` runs one probe in its
own task under a timeout and wakes at the probe's own deadline (``recheck_at``)
as well as at its interval. Process liveness is not here: ``autoheal.procs``
notices a child's exit as it happens.
"""

from autoheal.probes.heartbeat import FieldFreshnessProbe, HeartbeatFiles, HeartbeatProbe
from autoheal.probes.http import HttpProbe
from autoheal.probes.http_json import HttpJsonProbe
from autoheal.probes.result import (
    CONN_ERROR,
    CONN_REFUSED,
    CONN_TIMEOUT,
    HEARTBEAT_INVALID,
    HEARTBEAT_MISSING,
    HEARTBEAT_STALE,
    LATENCY_P95_HIGH,
    PROBE_ERROR,
    PROBE_TIMEOUT,
    WS_STALE,
    Probe,
    ProbeResult,
    TimeoutAware,
    http_status_reason,
)
from autoheal.probes.runner import Emit, ProbeRunner, WakeCause, run_probe

__all__ = [
    "CONN_ERROR",
    "CONN_REFUSED",
    "CONN_TIMEOUT",
    "HEARTBEAT_INVALID",
    "HEARTBEAT_MISSING",
    "HEARTBEAT_STALE",
    "LATENCY_P95_HIGH",
    "PROBE_ERROR",
    "PROBE_TIMEOUT",
    "WS_STALE",
    "Emit",
    "FieldFreshnessProbe",
    "HeartbeatFiles",
    "HeartbeatProbe",
    "HttpJsonProbe",
    "HttpProbe",
    "Probe",
    "ProbeResult",
    "ProbeRunner",
    "TimeoutAware",
    "WakeCause",
    "http_status_reason",
    "run_probe",
]

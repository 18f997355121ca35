"""What a probe reports, and the protocol every probe implements.

A probe answers one question ("is the feeder's heartbeat fresh?") with a
:class:`ProbeResult`: plain data the daemon turns into an observation for the
core. Failure is a value, never an exception: the reason is one of the stable
tokens of DESIGN.md §3 so that logs, ``health_v2.json`` and tests agree.

``recheck_at`` is the probe's own deadline (aioquic's ``get_timer()``): the
monotonic moment at which the answer will change *by itself*, e.g. when a fresh
heartbeat turns stale if nobody writes it again. The runner sleeps until then
instead of until the next poll, which is how staleness is seen within tens of
milliseconds of crossing ``max_age``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# The probes' reason tokens have one home, with every other one: autoheal.core.reasons.
from autoheal.core.reasons import (
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
    http_status_reason,
)

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
    "Probe",
    "ProbeResult",
    "TimeoutAware",
    "http_status_reason",
]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One answer of one probe.

    Attributes:
        ok: the check passed.
        reason: ``""`` when ok, else a stable reason token.
        value: what was measured (age in s, latency p95 in s, ...), when known.
        threshold: the limit ``value`` is judged against, when there is one.
        recheck_at: monotonic deadline at which the answer will change by itself, or None.
        detail: a short human explanation for logs; never a secret.
    """

    ok: bool
    reason: str
    value: float | None
    threshold: float | None
    recheck_at: float | None = None
    detail: str = ""


@runtime_checkable
class Probe(Protocol):
    """Anything with an async ``check`` that returns a :class:`ProbeResult` and never blocks.

    A probe whose check cannot block at all (a read of a small local file) may also
    have ``check_inline``, a plain callable doing the same: the runner then calls it
    without a timeout scope, which costs more than such a check.
    """

    async def check(self) -> ProbeResult:
        """Run the check once."""
        ...


@runtime_checkable
class TimeoutAware(Protocol):
    """A probe that knows what a runner-level timeout means for it.

    The HTTP probe says ``CONN_TIMEOUT`` and counts the timeout as a latency
    sample; probes without this method get a generic ``probe_timeout``.
    """

    def timed_out(self, after: float) -> ProbeResult:
        """Build the result for a check abandoned after ``after`` seconds."""
        ...

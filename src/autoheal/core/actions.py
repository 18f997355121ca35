"""Actions: what the core asks the shell to do, in order.

Imperative names; plain frozen data. The shell executes them and feeds the
outcome back as observations (e.g. :class:`RestartProcess` → ``SpawnFinished``).
"""

from __future__ import annotations

from dataclasses import dataclass

from autoheal.core.stages import Stage


@dataclass(frozen=True, slots=True)
class StartProcess:
    component: str
    reason: str


@dataclass(frozen=True, slots=True)
class RestartProcess:
    """Stop the process tree, clean stale locks and pidfile, start it again.

    ``debug``: a restart after a failure of a service with ``debug_on_retry``; the
    shell adds the service's ``debug_environment`` (and ``AUTOHEAL_DEBUG_INVOCATION=1``).
    """

    component: str
    attempt: int
    max_attempts: int
    reason: str
    debug: bool = False


@dataclass(frozen=True, slots=True)
class StopProcess:
    component: str
    reason: str


@dataclass(frozen=True, slots=True)
class WriteFlags:
    """Write ``global_flags.json`` (the shell stamps ``since`` with wall time)."""

    failsafe_active: bool
    mode: str
    reason: str
    set_by: str


@dataclass(frozen=True, slots=True)
class WriteStop:
    reason: str
    set_by: str


@dataclass(frozen=True, slots=True)
class RemoveStop:
    reason: str
    set_by: str


@dataclass(frozen=True, slots=True)
class RemoveRiskLatch:
    """Remove the guard's ``risk_latch.json``, if it is still the one the daemon saw.

    Only an operator's clear of REDUCE_ONLY asks for it. ``version`` is the latch the
    daemon saw (``LatchView.version``; empty: none seen, nothing to remove); the shell
    compares, so a latch that appeared since is left, and asks for REDUCE_ONLY again.
    """

    reason: str
    set_by: str
    version: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SendNotice:
    """Append to ``notifications.log`` and call the webhooks."""

    kind: str  # failsafe | failsafe_cleared | degraded | recovered | operator
    target: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Write ``alerts/<name>.json``: a problem that lasts until :class:`ClearAlert`."""

    name: str
    file: str
    detail: str


@dataclass(frozen=True, slots=True)
class ClearAlert:
    name: str
    file: str
    detail: str


@dataclass(frozen=True, slots=True)
class LogSwitchEvent:
    """One log line and journal event for what someone did to the kill-switch files.

    ``kind`` is ``operator_kill_switch`` (an operator's act) or
    ``kill_switch_tightened`` (a writer that may only tighten); ``token`` says what
    (``stop_file_removed``, ``flags_entered``, ``risk_latch``, ...).
    """

    kind: str
    token: str
    actor: str


@dataclass(frozen=True, slots=True)
class LogTransition:
    """One ``stage_transition`` log line and journal event."""

    component: str
    from_stage: Stage
    to_stage: Stage
    reason: str
    attempt: int
    max_attempts: int


#: The actions that take time (a task per component); one may answer an operator's command.
ProcessAction = StartProcess | RestartProcess | StopProcess

Action = (
    StartProcess
    | RestartProcess
    | StopProcess
    | WriteFlags
    | WriteStop
    | RemoveStop
    | RemoveRiskLatch
    | SendNotice
    | RaiseAlert
    | ClearAlert
    | LogTransition
    | LogSwitchEvent
)

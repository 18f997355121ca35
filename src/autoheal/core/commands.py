"""What a command queue's facts mean: its commands, a reused idempotency key, an orphaned claim.

The command types are one enum (:class:`CommandType`) with one table of what each
asks of the core (:func:`observation_for`); ``chaos_*`` commands are the fault
injector's, and ``breaker_reset`` is the guard's, run by the CLI under its lock.

Two decisions, as plain data in and plain data out (the SQLite and ``/proc`` work is in
:mod:`autoheal.store.commands`):

* :func:`decide_key_use`: an operator submits a command under a key that may already
  name an earlier command. The same key means the same intent, so the same command
  under it is that command again (its recorded result, or a wait for it), and a
  different command under it is a mistake that must be refused: running nothing and
  reporting the earlier command's success is how an operator's "halt now" got lost.
* :func:`claimer_gone`: a command stays ``claimed`` until its claimer writes the
  result. If the claimer is provably gone (no such PID, an exited process, or a PID
  now held by a process that started at another time) nobody ever will, so the claim
  is settled as ``failed`` (``claimer_died``). Anything we cannot prove (a live PID
  whose start time cannot be read, a claim with no recorded PID) is left alone: a
  wrong settlement would report a failure for a command that is still running.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from autoheal.core.observations import (
    Observation,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorSetReduceOnly,
    OperatorStarted,
    OperatorStopped,
)

__all__ = [
    "CHAOS_PREFIX",
    "CLAIMER_DIED",
    "COMPONENT_COMMANDS",
    "SCOPED_COMMANDS",
    "START_TIME_TOLERANCE_S",
    "TERMINAL_STATUSES",
    "Claimer",
    "CommandType",
    "Intent",
    "KeyDecision",
    "KeyUse",
    "ProcessSeen",
    "claimer_gone",
    "claimer_of",
    "decide_key_use",
    "is_chaos",
    "observation_for",
]


class CommandType(enum.StrEnum):
    """The operator's commands that the queue carries (``commands.type`` in the journal)."""

    RESTART = "restart"
    STOP = "stop"
    START = "start"
    FAILSAFE_ENTER = "failsafe_enter"
    FAILSAFE_CLEAR = "failsafe_clear"
    FAILSAFE_REDUCE_ONLY = "failsafe_reduce_only"
    #: Every circuit breaker of the guard, reset under its file lock (no core step).
    BREAKER_RESET = "breaker_reset"
    #: A scoped halt (``failsafe enter|clear --scope``; target: the scope), written by
    #: the daemon's shell to its record and the flags (no core step).
    FAILSAFE_ENTER_SCOPE = "failsafe_enter_scope"
    FAILSAFE_CLEAR_SCOPE = "failsafe_clear_scope"
    #: A scope the guard's repeated-execution throttle disabled, re-enabled by an
    #: operator under the guard's file lock (no core step; autoheal.guard.risk_enable).
    RISK_ENABLE = "risk_enable"


#: The fault injector's commands are ``chaos_<fault>`` (``chaos_kill``, ``chaos_heal``, ...).
CHAOS_PREFIX = "chaos_"

#: The commands that name a component: what the core is asked, from (target, reason, actor).
_COMPONENT: Mapping[str, Callable[[str, str, str], Observation]] = {
    CommandType.RESTART: OperatorRestarted,
    CommandType.STOP: OperatorStopped,
    CommandType.START: OperatorStarted,
}
#: The commands for the whole runtime: what the core is asked, from (reason, actor).
_RUNTIME: Mapping[str, Callable[[str, str], Observation]] = {
    CommandType.FAILSAFE_ENTER: OperatorEnteredFailsafe,
    CommandType.FAILSAFE_CLEAR: OperatorClearedFailsafe,
    CommandType.FAILSAFE_REDUCE_ONLY: OperatorSetReduceOnly,
}

#: The commands that name a component (the others act on the whole runtime).
COMPONENT_COMMANDS = frozenset(CommandType(t) for t in _COMPONENT)
#: The scoped halts' commands (their target is the scope).
SCOPED_COMMANDS = frozenset({CommandType.FAILSAFE_ENTER_SCOPE, CommandType.FAILSAFE_CLEAR_SCOPE})


def is_chaos(command_type: str) -> bool:
    """Whether a command is the fault injector's."""
    return command_type.startswith(CHAOS_PREFIX)


def observation_for(command_type: str, target: str, reason: str, actor: str) -> Observation | None:
    """What a queued command asks of the core; None when it is not the core's to step
    (a fault, a breaker reset) or not a command at all.

    Args:
        command_type: the command's type (a :class:`CommandType` value).
        target: the component it names ("" for the runtime's commands).
        reason: the operator's reason.
        actor: who asked.
    """
    component = _COMPONENT.get(command_type)
    if component is not None:
        return component(target, reason, actor)
    runtime = _RUNTIME.get(command_type)
    return None if runtime is None else runtime(reason, actor)


#: The reason token of a claim settled because its claimer is gone.
CLAIMER_DIED = "claimer_died"

#: Statuses after which a command never changes again.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "rejected"})

#: Kernel start times are in jiffies (10 ms); this absorbs float noise, never a reused PID.
#: The same tolerance as ``autoheal.procs.identity.CREATE_TIME_TOLERANCE_S``.
START_TIME_TOLERANCE_S = 0.005


@dataclass(frozen=True, slots=True)
class Intent:
    """What a command asks for: the fields an idempotency key stands for.

    ``payload`` is compared as JSON data (the store round-trips a new payload through
    JSON before comparing, so ``(1, 2)`` and ``[1, 2]`` are the same payload).
    """

    type: str
    target: str
    payload: Mapping[str, object]


class KeyUse(Enum):
    """What to do with a submission under a key."""

    NEW = "new"
    """No earlier command has this key: queue the new one."""
    REPLAY = "replay"
    """The same command already finished: report its recorded result, run nothing."""
    JOIN = "join"
    """The same command is pending or claimed: wait for its result, queue nothing."""
    CONFLICT = "conflict"
    """A different command has this key: refuse, run nothing, queue nothing."""


@dataclass(frozen=True, slots=True)
class KeyDecision:
    use: KeyUse
    differs: tuple[str, ...] = ()
    """For CONFLICT: which of ``type``, ``target``, ``payload`` differ, in that order."""


def decide_key_use(earlier: Intent | None, earlier_status: str | None, new: Intent) -> KeyDecision:
    """What a submission of ``new`` means, given the command already under its key.

    Args:
        earlier: the intent of the command stored under the key, or None when the key
            is unused.
        earlier_status: that command's status (``pending``, ``claimed``, ``succeeded``,
            ``failed``, ``rejected``); ignored when ``earlier`` is None.
        new: the intent being submitted.
    """
    if earlier is None:
        return KeyDecision(KeyUse.NEW)
    differs = tuple(
        name
        for name, same in (
            ("type", earlier.type == new.type),
            ("target", earlier.target == new.target),
            ("payload", dict(earlier.payload) == dict(new.payload)),
        )
        if not same
    )
    if differs:
        return KeyDecision(KeyUse.CONFLICT, differs)
    if earlier_status in TERMINAL_STATUSES:
        return KeyDecision(KeyUse.REPLAY)
    return KeyDecision(KeyUse.JOIN)


@dataclass(frozen=True, slots=True)
class Claimer:
    """Who claimed a command: a PID and, when recorded, the kernel start time of it."""

    pid: int
    start_time: float | None
    """None for a claim from before claimer identities were recorded (``pid:N`` only)."""


def claimer_of(claimed_by: str | None, pid: int | None, start_time: float | None) -> Claimer | None:
    """The claimer recorded in a row, or None when it names no process we could check.

    Rows written before the claimer columns existed name their claimer only as
    ``pid:N`` (the daemon) or ``cli``/``cli-direct`` (no PID at all).
    """
    if pid is not None:
        return Claimer(pid, start_time) if pid > 0 else None
    if claimed_by is None or not claimed_by.startswith("pid:"):
        return None
    digits = claimed_by[len("pid:") :]
    if not digits.isascii() or not digits.isdigit():
        return None
    legacy = int(digits)
    return Claimer(legacy, None) if legacy > 0 else None


@dataclass(frozen=True, slots=True)
class ProcessSeen:
    """What the OS says about one PID right now."""

    exists: bool
    """False only when the kernel has no process with this PID (``kill(pid, 0)``: ESRCH)."""
    start_time: float | None = None
    """Its start time; None when it exists but the start time could not be read."""
    zombie: bool = False
    """It has exited and waits to be reaped."""


def claimer_gone(
    claimer: Claimer | None,
    seen: ProcessSeen,
    *,
    tolerance: float = START_TIME_TOLERANCE_S,
) -> str | None:
    """Why ``claimer`` is provably gone, or None when it may still be working.

    Returns:
        ``no_such_process``, ``exited`` (a zombie), ``pid_reused`` (the PID runs a
        process that started at another time), or None.
    """
    if claimer is None:
        return None
    if not seen.exists:
        return "no_such_process"
    if seen.zombie:
        return "exited"
    if claimer.start_time is None or seen.start_time is None:
        return None
    if abs(seen.start_time - claimer.start_time) > tolerance:
        return "pid_reused"
    return None

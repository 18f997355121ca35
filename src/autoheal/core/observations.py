"""Observations: facts about the world that the shell feeds into :func:`step`.

Two kinds, kept apart on purpose:

* **Facts** (probe results, process exits, spawn outcomes, a deadline passing)
  are past-tense and can never be illegal: ``step`` accepts each in any state.
* **Operator commands** (``Operator*``) are requests; a command that does not
  apply raises :class:`~autoheal.core.errors.IllegalCommandError` or is refused
  by a safety gate with :class:`~autoheal.core.errors.CommandRefusedError`.

The kill-switch files are facts like any other: what they say when read
(:class:`SwitchFilesRead`) and how each of our writes went (:class:`SwitchWriteLanded`,
:class:`SwitchWriteFailed`); ``step`` decides what that means (``core.switch``).
"""

from __future__ import annotations

from dataclasses import dataclass

from autoheal.core.switchfiles import DiskView, FlagsDoc


@dataclass(frozen=True, slots=True)
class ProbeSucceeded:
    """A probe of a component or dependency (``target``) passed."""

    target: str
    probe: str


@dataclass(frozen=True, slots=True)
class ProbeFailed:
    """A probe failed with a reason token (``heartbeat_stale``, ``CONN_TIMEOUT``, ...).

    A reason in :data:`~autoheal.core.reasons.HARD_REASONS` means the process is gone.
    """

    target: str
    probe: str
    reason: str


@dataclass(frozen=True, slots=True)
class ProcessExited:
    """The component's process exited or vanished (a hard failure)."""

    component: str
    reason: str = "process_exited"
    code: int | None = None


@dataclass(frozen=True, slots=True)
class SpawnFinished:
    """The shell finished a start or restart; ``ok`` is False when the spawn itself failed."""

    component: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    """Time passed: the shell woke up at a ``wake_at`` the core asked for."""


@dataclass(frozen=True, slots=True)
class OperatorEnteredFailsafe:
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class OperatorClearedFailsafe:
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class OperatorSetReduceOnly:
    """Only position-reducing sells from now on (until a failsafe clear or enter)."""

    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class RiskLatchSeen:
    """The guard's daily-loss latch (``risk_latch.json``) is on disk: it asks for
    REDUCE_ONLY. A fact, not a command: applied only where it tightens (never inside a
    failsafe, whose halt it would loosen), and never a reason to clear anything."""

    reason: str


@dataclass(frozen=True, slots=True)
class OperatorRestarted:
    component: str
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class OperatorStopped:
    component: str
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class OperatorStarted:
    component: str
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class ConfigReloaded:
    """The config was reloaded; ``step`` is called with the *new* policy.

    ``changed`` names the components whose settings changed (the shell compares the
    specs). Components the new policy lacks were removed, those the old state lacks
    were added: ``step`` works both out from the state and the policy.
    """

    changed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FleetSwitchRead:
    """A fresh, valid read of the fleet switch (``core.fleet`` judged it): ``state`` is
    ``RUN``, ``REDUCE_ONLY`` or ``HALT``. A fact: the fleet's state, not a command."""

    state: str
    version: int
    set_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class FleetLost:
    """The fleet switch could not be read (or was unreadable) for ``stale_after``.

    ``on_lost`` is the configured answer: ``degrade`` or ``halt``.
    """

    reason: str
    on_lost: str = "degrade"


@dataclass(frozen=True, slots=True)
class FleetDetached:
    """The daemon runs without ``[fleet]`` (an operator removed it): a fleet loss that
    was persisted ends, since nothing will read the switch again. A failsafe the fleet
    set stays until an operator clears it."""


@dataclass(frozen=True, slots=True)
class SwitchFilesRead:
    """The kill-switch files as read now; ``startup``: by a daemon that just started
    (nothing on disk may then loosen the resumed state); ``late``: asked for by one of
    the daemon's own writes, which found an edit nobody reported. When that edit was
    made is unknown (perhaps before the decisions made since the last read), so it
    may tighten, never loosen: it cannot clear a failsafe it may predate."""

    disk: DiskView
    startup: bool = False
    late: bool = False


@dataclass(frozen=True, slots=True)
class SwitchWriteLanded:
    """Our write (or removal) of a kill-switch file (``stop_file``, ``flags``,
    ``risk_latch``) reached the disk: ``present`` for STOP.TXT (for the latch: a newer
    one left standing), ``flags`` the document as written."""

    key: str
    present: bool | None = None
    flags: FlagsDoc | None = None


@dataclass(frozen=True, slots=True)
class SwitchWriteFailed:
    """Our write (``op`` ``write``) or removal (``remove``) of a kill-switch file failed."""

    key: str
    op: str
    errno: str
    detail: str
    flags: FlagsDoc | None = None
    """For the flags: the document it tried to write (it may have landed regardless)."""


Observation = (
    ProbeSucceeded
    | ProbeFailed
    | ProcessExited
    | SpawnFinished
    | DeadlineReached
    | OperatorEnteredFailsafe
    | OperatorClearedFailsafe
    | OperatorSetReduceOnly
    | RiskLatchSeen
    | OperatorRestarted
    | OperatorStopped
    | OperatorStarted
    | ConfigReloaded
    | FleetSwitchRead
    | FleetLost
    | FleetDetached
    | SwitchFilesRead
    | SwitchWriteLanded
    | SwitchWriteFailed
)

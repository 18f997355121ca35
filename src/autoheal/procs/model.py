"""Plain data for process control: what to run, what proves a PID is ours, what happened.

Nothing here touches the operating system; the psutil boundary lives in
:mod:`autoheal.procs.inspect`, the side effects in :mod:`autoheal.procs.control`.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autoheal.core import reasons

__all__ = [
    "PROCESS_MISSING",
    "AdoptResult",
    "ProcessIdentity",
    "ProcessStatus",
    "ServiceSpec",
    "StopOutcome",
    "StopResult",
]

#: The reason token (DESIGN.md §3) for a pidfile that does not lead to a live process of
#: ours; its home is :mod:`autoheal.core.reasons`.
PROCESS_MISSING = reasons.PROCESS_MISSING


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """How to run one supervised service; decoupled from the config file format.

    Attributes:
        name: the component name (``feeder``); used in messages only.
        argv: program and arguments, executed directly (never through a shell).
        cwd: working directory of the child.
        env: variables added on top of the daemon's own environment.
        env_remove: names of the daemon's variables the child must not inherit (the
            webhooks' secrets); a name also in ``env`` takes the value given there.
        stop_signal: first signal sent to the process group on stop.
        stop_timeout: seconds to wait after ``stop_signal`` before SIGKILL.
        pidfile: where the child's PID is written (plain text, PID and newline).
        lock_files: files the service leaves behind that block a restart when stale.
        log_file: stdout and stderr of the child, appended.
        log_max_bytes: rotate the log when it is larger than this.
        log_backups: how many rotated logs (``name.log.1`` ...) to keep.
    """

    name: str
    argv: tuple[str, ...]
    cwd: Path
    pidfile: Path
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)
    env_remove: frozenset[str] = frozenset()
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 10.0
    lock_files: tuple[Path, ...] = ()
    log_max_bytes: int = 1 << 20
    log_backups: int = 3


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """What proves a PID is ours: the PID plus its kernel start time.

    ``create_time`` guards against PID reuse: a recycled PID belongs to a process
    with a later start time. ``cmdline`` is what ``/proc`` reported when the
    identity was taken (informational; the proof is ``create_time``).
    """

    pid: int
    create_time: float
    cmdline: tuple[str, ...]


class ProcessStatus(enum.StrEnum):
    """What a PID is, as far as we are concerned; psutil's exceptions end here.

    ``RUNNING`` includes a stopped (SIGSTOP) process: it is alive, merely hung.
    ``EXITED`` is one of our own children that has exited (and is now reaped).
    ``MISSING`` is no process with that PID. ``ZOMBIE`` exited but not reaped by
    its parent. ``NOT_OURS`` is a live PID whose start time differs (reused) or
    that we may not inspect.
    """

    RUNNING = "running"
    EXITED = "exited"
    MISSING = "missing"
    ZOMBIE = "zombie"
    NOT_OURS = "not_ours"


class StopOutcome(enum.StrEnum):
    """How a stop ended."""

    EXITED = "exited"  # the process exited within the grace period after the stop signal
    KILLED = "killed"  # it had to be SIGKILLed
    NOT_OURS = "not_ours"  # the PID now belongs to another process: nothing was signalled
    ALREADY_GONE = "already_gone"  # nothing to stop


@dataclass(frozen=True, slots=True)
class StopResult:
    """What :meth:`ProcessControl.stop` did.

    Attributes:
        outcome: see :class:`StopOutcome`.
        elapsed_s: monotonic seconds from the call to the end of the stop.
        exit_code: the exit code of our own child (negative signal number as in
            :mod:`subprocess`); ``None`` for a process we did not start.
        killed: how many processes of the tree (main one included) got SIGKILL.
    """

    outcome: StopOutcome
    elapsed_s: float
    exit_code: int | None = None
    killed: int = 0


@dataclass(frozen=True, slots=True)
class AdoptResult:
    """The outcome of adopting a process through its pidfile.

    Attributes:
        identity: the proven identity, or ``None``.
        reason: ``None`` when adopted, else the token ``process_missing``.
        detail: for humans, e.g. ``pid 4242 belongs to another program``.
    """

    identity: ProcessIdentity | None
    reason: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.identity is not None

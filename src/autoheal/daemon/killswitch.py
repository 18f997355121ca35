"""The kill switch's shell: reads ``STOP.TXT``, ``global_flags.json`` and the guard's
``risk_latch.json``, writes the first two (and removes the latch on an operator's
clear), and reports every outcome to :mod:`autoheal.core.switch`, which decides what
it means.

Nothing here decides whether a missing file is an operator's removal or a failed
write of ours: it only reads the disk, executes the writes and says how each went.
It never steps the core: :meth:`KillSwitch.read` returns what an operator did as the
commands to step, and the interpreter steps them. Its ports are narrow (``execute``
a notice, ``journal_event``, the clocks); the folder watch that calls it on a change
is :mod:`autoheal.daemon.watch`.
"""

from __future__ import annotations

import enum
import errno as errno_names
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoheal.core import switch as core_switch
from autoheal.core.actions import RemoveRiskLatch, RemoveStop, WriteFlags, WriteStop
from autoheal.core.observations import Observation
from autoheal.core.state import RuntimeState
from autoheal.core.switch import (
    DiskView,
    FlagsDoc,
    LatchView,
    SwitchNotice,
    SwitchState,
    SwitchWrite,
)
from autoheal.store.flags import (
    FLAGS_FILENAME,
    Flags,
    read_flags,
    read_risk_latch,
    remove_risk_latch,
    remove_stop_file,
    risk_latch_present,
    stop_file_present,
    write_flags,
    write_stop_file,
)

log = logging.getLogger("autoheal")

#: The flags file's signature before the daemon first read it.
_UNREAD = object()


class Written(enum.Enum):
    """How one kill-switch write went."""

    LANDED = "landed"
    FAILED = "failed"
    #: Nothing written: someone changed the flags since the daemon last read them.
    READ_FIRST = "read_first"


def errno_name(exc: OSError) -> str:
    """``EROFS`` for an ``OSError`` with errno 30; ``OSError`` when it has none."""
    return errno_names.errorcode.get(exc.errno or 0, type(exc).__name__)


def as_written(flags: Flags) -> FlagsDoc:
    """A document we wrote, as the kill switch's interpretation sees it (every key named)."""
    return FlagsDoc(flags.failsafe_active, flags.mode, flags.reason, flags.set_by, flags.since)


class FileLayer:
    """The kill-switch files on disk. Tests put a fault-injecting layer in its place."""

    def __init__(self, runtime_dir: Path, stop_file: Path) -> None:
        self.runtime_dir = runtime_dir
        self.stop_file = stop_file

    def read(self) -> DiskView:
        read = read_flags(self.runtime_dir)
        invalid = "" if read.flags is not None else (read.detail or read.reason or "invalid")
        latch = read_risk_latch(self.runtime_dir)
        return DiskView(
            stop_file_present(self.stop_file),
            FlagsDoc(**read.named),
            invalid,
            None if latch is None else LatchView(latch.reason, latch.version),
        )

    def write_flags(self, flags: Flags) -> None:
        write_flags(self.runtime_dir, flags)

    def flags_signature(self) -> tuple[int, int, int, int] | None:
        """Which flags file is on disk (inode, mtime, ctime, size); None when there is none.

        Compared before a write: a different signature means someone wrote the file
        since the daemon last read or wrote it, and that must be read first.
        """
        try:
            st = os.lstat(self.runtime_dir / FLAGS_FILENAME)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def write_stop(self, reason: str, set_by: str) -> None:
        write_stop_file(self.stop_file, reason, set_by=set_by)

    def remove_stop(self) -> None:
        remove_stop_file(self.stop_file)

    def remove_latch(self, version: tuple[int, ...]) -> bool:
        """Remove the risk latch if it is still ``version``; False when a newer one stands."""
        if len(version) != 3:
            return False  # not a version this layer made: never remove blind
        return remove_risk_latch(self.runtime_dir, (version[0], version[1], version[2]))


class KillSwitch:
    """Keeps the files saying what the core's state says, and hears an operator's hand.

    Args:
        files: the kill-switch files.
        execute: carries out a non-file action (notice, alert) from the switch.
        journal_event: records an operator's act in the journal.
        clock: monotonic seconds (retry backoff).
        wall: unix seconds (the flags' ``since``).
    """

    def __init__(
        self,
        files: FileLayer,
        *,
        execute: Callable[[SwitchNotice], None],
        journal_event: Callable[..., None],
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.files = files
        self._execute = execute
        self._journal_event = journal_event
        self._clock = clock
        self._wall = wall
        self.switch = SwitchState()
        #: The flags file as the daemon last read or wrote it (``flags_signature``);
        #: ``_UNREAD`` until the first read.
        self._flags_sig: object = _UNREAD

    # ------------------------------------------------------------------ reading

    def read(self, state: RuntimeState, *, startup: bool = False) -> tuple[Observation, ...]:
        """Read the files: what an operator did since, as the commands the core must step.

        Each act is logged and journaled here; the caller steps them in order, then
        writes what is due (:meth:`due`).

        Args:
            state: the core's state before the operator's acts.
            startup: the daemon just started: nothing on disk may loosen the state.
        """
        # The signature first: a write landing after it reads as a change next time.
        sig = self.files.flags_signature()
        result = core_switch.interpret(self.switch, state, self.files.read(), startup=startup)
        self.switch = result.switch
        self._flags_sig = sig
        for action in result.actions:
            self._execute(action)
        for event in result.events:
            log.warning("%s %s actor=%s", event.journal_kind, event.token, event.actor)
            self._journal_event(event.journal_kind, reason=event.token, actor=event.actor)
        return tuple(event.observation for event in result.events)

    def latch_changed(self) -> bool:
        """Whether the risk latch appeared or went since the last read (one ``lstat``).

        The latch is usually absent, so the watch cannot follow it file by file (and
        the runtime folder is not watched: heartbeats); the heartbeat asks this instead.
        """
        return risk_latch_present(self.files.runtime_dir) != (self.switch.latch_on_disk is not None)

    def due(self, state: RuntimeState) -> tuple[SwitchWrite, ...]:
        """What the files lack for ``state`` (a failed write's retry once its backoff ran out)."""
        return core_switch.due_writes(self.switch, state, self._clock())

    # ------------------------------------------------------------------ writing

    def write(self, action: SwitchWrite, *, just_read: bool = False) -> Written:
        """Carry out one kill-switch write and say how it went.

        Args:
            action: the write.
            just_read: the files were read in this same turn (a reconcile): no one can
                have changed the flags unseen since.

        Returns:
            ``READ_FIRST`` (nothing written) when someone (an operator's editor) wrote
            the flags since the daemon last read them and the watch has not told us
            yet: writing now would erase their act unseen; the caller reads first.
        """
        if isinstance(action, RemoveRiskLatch):
            return Written.LANDED if self._remove_latch(action) else Written.FAILED
        if isinstance(action, WriteFlags) and not just_read and self._flags_changed_unread():
            log.info("flags_changed_before_write: reading global_flags.json first")
            return Written.READ_FIRST
        key = core_switch.FLAGS if isinstance(action, WriteFlags) else core_switch.STOP
        op = "remove" if isinstance(action, RemoveStop) else "write"
        try:
            match action:
                case WriteFlags():
                    flags = Flags(
                        action.failsafe_active,
                        action.mode,
                        action.reason,
                        self._wall(),
                        action.set_by,
                    )
                    self.files.write_flags(flags)
                    self._flags_sig = self.files.flags_signature()
                    self.switch, follow = core_switch.write_succeeded(
                        self.switch, key, flags=as_written(flags)
                    )
                    log.info(
                        "flags_written failsafe_active=%s mode=%s reason=%s",
                        action.failsafe_active,
                        action.mode,
                        action.reason,
                    )
                case WriteStop():
                    self.files.write_stop(action.reason, action.set_by)
                    self.switch, follow = core_switch.write_succeeded(
                        self.switch, key, present=True
                    )
                    log.warning(
                        "stop_file_written path=%s reason=%s", self.files.stop_file, action.reason
                    )
                case RemoveStop():
                    self.files.remove_stop()
                    self.switch, follow = core_switch.write_succeeded(
                        self.switch, key, present=False
                    )
                    log.warning(
                        "stop_file_removed path=%s by=%s reason=%s",
                        self.files.stop_file,
                        action.set_by,
                        action.reason,
                    )
        except OSError as exc:
            name = errno_name(exc)
            detail = exc.strerror or str(exc)
            self.switch, follow = core_switch.write_failed(
                self.switch, key, op=op, errno=name, detail=detail, now=self._clock()
            )
            failure = self.switch.failures[key]
            log.error(
                "%s_%s_failed errno=%s detail=%s attempt=%d retry_in_s=%.1f; "
                "the failsafe holds in memory and in every file that can be written",
                key,
                op,
                name,
                detail,
                failure.attempts,
                failure.retry_at - self._clock(),
            )
            for action_ in follow:
                self._execute(action_)
            return Written.FAILED
        for action_ in follow:
            self._execute(action_)
        return Written.LANDED

    def _remove_latch(self, action: RemoveRiskLatch) -> bool:
        """An operator's clear: remove the risk latch the daemon saw (and only that one)."""
        seen = self.switch.latch_on_disk
        if seen is None:
            return True  # none seen: a latch that appeared since is read, and holds
        key = core_switch.LATCH
        try:
            removed = self.files.remove_latch(seen.version)
        except OSError as exc:
            name, detail = errno_name(exc), exc.strerror or str(exc)
            self.switch, follow = core_switch.write_failed(
                self.switch, key, op="remove", errno=name, detail=detail, now=self._clock()
            )
            log.error(
                "risk_latch_remove_failed errno=%s detail=%s; the latch holds: it asks "
                "for REDUCE_ONLY again",
                name,
                detail,
            )
            for notice in follow:
                self._execute(notice)
            return False
        self.switch, follow = core_switch.write_succeeded(self.switch, key, present=not removed)
        if removed:
            log.warning("risk_latch_removed by=%s reason=%s", action.set_by, action.reason)
        else:
            log.warning("risk_latch_kept: a newer latch was written since it was read")
        for notice in follow:
            self._execute(notice)
        return removed

    def _flags_changed_unread(self) -> bool:
        if self._flags_sig is _UNREAD:
            return False
        return self.files.flags_signature() != self._flags_sig

    # ------------------------------------------------------------------ reporting

    def health(self, *, to_wall: float) -> dict[str, Any]:
        """The ``kill_switch`` part of ``health_v2.json``: every failing write, plainly."""
        labels = core_switch.FILE_LABEL
        return {
            "stop_file": str(self.files.stop_file),
            "stop_file_on_disk": self.switch.stop_on_disk,
            "flags_invalid": self.switch.flags_invalid,
            "write_failures": {
                key: {
                    "file": labels[key],
                    "op": f.op,
                    "errno": f.errno,
                    "detail": f.detail,
                    "attempts": f.attempts,
                    "since": f.since + to_wall,
                    "next_try_at": f.retry_at + to_wall,
                    "message": f.message(key),
                }
                for key, f in sorted(self.switch.failures.items())
            },
        }

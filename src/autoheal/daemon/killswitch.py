"""The kill switch's shell: reads ``STOP.TXT``, ``global_flags.json`` and the guard's
``risk_latch.json``, writes the first two (and removes the latch on an operator's
clear), and reports every outcome to :mod:`autoheal.core.switch`, which decides what
it means.

Nothing here decides whether a missing file is an operator's removal or a failed
write of ours: it only reads the disk, executes the writes and says how each went,
as observations (``SwitchFilesRead``, ``SwitchWriteLanded``, ``SwitchWriteFailed``)
that the interpreter steps like every other fact. What the daemon knows of the files
is the core's (``RuntimeState.switch``). The folder watch that asks for a read on a
change is :mod:`autoheal.daemon.watch`.
"""

from __future__ import annotations

import errno as errno_names
import logging
import os
from collections.abc import Callable
from pathlib import Path

from autoheal.core import switch as core_switch
from autoheal.core.actions import RemoveRiskLatch, RemoveStop, WriteFlags, WriteStop
from autoheal.core.observations import SwitchFilesRead, SwitchWriteFailed, SwitchWriteLanded
from autoheal.core.switch import DiskView, FlagsDoc, LatchView, SwitchWrite
from autoheal.guard.scoped_record import flags_doc_with_halts
from autoheal.store.atomic import write_json_atomic
from autoheal.store.flags import (
    FLAGS_FILENAME,
    Flags,
    read_flags,
    read_risk_latch,
    read_stop_line,
    remove_risk_latch,
    remove_stop_file,
    risk_latch_present,
    stop_file_present,
    write_stop_file,
)

log = logging.getLogger("autoheal")

#: The flags file's signature before the daemon first read it.
_UNREAD = object()


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
        present = stop_file_present(self.stop_file)
        return DiskView(
            present,
            FlagsDoc(**read.named),
            invalid,
            None if latch is None else LatchView(latch.reason, latch.version),
            stop_set_by=core_switch.stop_set_by(read_stop_line(self.stop_file))
            if present
            else None,
        )

    def write_flags(self, flags: Flags) -> None:
        # The operator's scoped halts ride along: a daemon's write never drops them.
        doc = flags_doc_with_halts(self.runtime_dir, flags.to_doc())
        write_json_atomic(self.runtime_dir / FLAGS_FILENAME, doc)

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

    def write_stop(self, reason: str, set_by: str, *, now: float | None = None) -> None:
        write_stop_file(self.stop_file, reason, set_by=set_by, now=now)

    def remove_stop(self) -> None:
        remove_stop_file(self.stop_file)

    def remove_latch(self, version: tuple[int, ...]) -> bool:
        """Remove the risk latch if it is still ``version``; False when a newer one stands."""
        if len(version) != 3:
            return False  # not a version this layer made: never remove blind
        return remove_risk_latch(self.runtime_dir, (version[0], version[1], version[2]))


class KillSwitch:
    """Reads and writes the kill-switch files, and says what it found and how each went.

    It keeps no knowledge of the files (that is the core's ``RuntimeState.switch``),
    only the flags file's signature as it last read or wrote it, to tell an edit it
    has not read yet.

    Args:
        files: the kill-switch files.
        wall: unix seconds (the flags' ``since``).
    """

    def __init__(self, files: FileLayer, *, wall: Callable[[], float]) -> None:
        self.files = files
        self._wall = wall
        #: The flags file as the daemon last read or wrote it (``flags_signature``);
        #: ``_UNREAD`` until the first read.
        self._flags_sig: object = _UNREAD

    # ------------------------------------------------------------------ reading

    def read(self, *, startup: bool = False, late: bool = False) -> SwitchFilesRead:
        """Read the files now (``startup``: a daemon that just started; ``late``: a
        write found an edit nobody reported)."""
        # The signature first: a write landing after it reads as a change next time.
        sig = self.files.flags_signature()
        read = SwitchFilesRead(self.files.read(), startup=startup, late=late)
        self._flags_sig = sig
        return read

    def latch_changed(self, seen: LatchView | None) -> bool:
        """Whether the risk latch appeared or went since it was last ``seen`` (one ``lstat``).

        The latch is usually absent, so the watch cannot follow it file by file (and
        the runtime folder is not watched: heartbeats); the heartbeat asks this instead.
        """
        return risk_latch_present(self.files.runtime_dir) != (seen is not None)

    # ------------------------------------------------------------------ writing

    def write(
        self, action: SwitchWrite, *, just_read: bool = False
    ) -> SwitchWriteLanded | SwitchWriteFailed | SwitchFilesRead | None:
        """Carry out one kill-switch write and say how it went.

        Args:
            action: the write.
            just_read: the files were read in this same turn (a reconcile): no one can
                have changed the flags unseen since.

        Returns:
            The write's outcome; or, instead of writing the flags, a fresh read when
            someone (an operator's editor) wrote them since the daemon last read them
            and the watch has not told us yet: writing now would erase their act unseen.
            None for a latch removal with no latch seen (nothing to do).
        """
        if isinstance(action, RemoveRiskLatch):
            return self._remove_latch(action)
        if isinstance(action, WriteFlags) and not just_read and self._flags_changed_unread():
            log.info("flags_changed_before_write: reading global_flags.json first")
            return self.read(late=True)
        key = core_switch.FLAGS if isinstance(action, WriteFlags) else core_switch.STOP
        op = "remove" if isinstance(action, RemoveStop) else "write"
        tried: FlagsDoc | None = None
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
                    tried = as_written(flags)
                    self.files.write_flags(flags)
                    self._flags_sig = self.files.flags_signature()
                    log.info(
                        "flags_written failsafe_active=%s mode=%s reason=%s",
                        action.failsafe_active,
                        action.mode,
                        action.reason,
                    )
                    return SwitchWriteLanded(key, flags=as_written(flags))
                case WriteStop():
                    self.files.write_stop(action.reason, action.set_by, now=self._wall())
                    log.warning(
                        "stop_file_written path=%s reason=%s", self.files.stop_file, action.reason
                    )
                    return SwitchWriteLanded(key, present=True)
                case RemoveStop():
                    self.files.remove_stop()
                    log.warning(
                        "stop_file_removed path=%s by=%s reason=%s",
                        self.files.stop_file,
                        action.set_by,
                        action.reason,
                    )
                    return SwitchWriteLanded(key, present=False)
        except OSError as exc:
            # Logged by the interpreter, with the attempt the core counted.
            # A write can fail after its rename (the folder's fsync): then the file on
            # disk is ours, and the core must not read it back as an operator's edit.
            return SwitchWriteFailed(key, op, errno_name(exc), exc.strerror or str(exc), tried)
        return None

    def _remove_latch(
        self, action: RemoveRiskLatch
    ) -> SwitchWriteLanded | SwitchWriteFailed | None:
        """An operator's clear: remove the risk latch the daemon saw (and only that one)."""
        if not action.version:
            return None  # none seen: a latch that appeared since is read, and holds
        key = core_switch.LATCH
        try:
            removed = self.files.remove_latch(action.version)
        except OSError as exc:
            name, detail = errno_name(exc), exc.strerror or str(exc)
            log.error(
                "risk_latch_remove_failed errno=%s detail=%s; the latch holds: it asks "
                "for REDUCE_ONLY again",
                name,
                detail,
            )
            return SwitchWriteFailed(key, "remove", name, detail)
        if removed:
            log.warning("risk_latch_removed by=%s reason=%s", action.set_by, action.reason)
        else:
            log.warning("risk_latch_kept: a newer latch was written since it was read")
        return SwitchWriteLanded(key, present=not removed)

    def rewrote_flags(self) -> None:
        """The flags were rewritten by the daemon itself (their scoped halts): not an edit."""
        if self._flags_sig is not _UNREAD:
            self._flags_sig = self.files.flags_signature()

    def _flags_changed_unread(self) -> bool:
        if self._flags_sig is _UNREAD:
            return False
        return self.files.flags_signature() != self._flags_sig

"""The kill switch's shell: reads ``STOP.TXT``, ``global_flags.json`` and the guard's
``risk_latch.json``, writes the first two (and removes the latch on an operator's
clear), and reports every outcome to :mod:`autoheal.core.switch`, which decides what
it means.

Nothing here decides whether a missing file is an operator's removal or a failed
write of ours: it only reads the disk, executes the writes and says how each went.
It talks to the rest of the daemon through narrow ports (``state``, ``apply``,
``effects``, ``journal_event``), never the daemon itself.
"""

from __future__ import annotations

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
    RISK_LATCH_FILENAME,
    Flags,
    read_flags,
    read_risk_latch,
    read_stop_line,
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
        state: the core's current state.
        apply: steps the core with an operator's act (the files' meaning).
        execute: carries out a non-file action (notice, alert) from the switch.
        journal_event: records an operator's act in the journal.
        clock: monotonic seconds (retry backoff).
        wall: unix seconds (the flags' ``since``).
    """

    def __init__(
        self,
        files: FileLayer,
        *,
        state: Callable[[], RuntimeState],
        apply: Callable[[Observation], object],
        execute: Callable[[SwitchNotice], None],
        journal_event: Callable[..., None],
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.files = files
        self._state = state
        self._apply = apply
        self._execute = execute
        self._journal_event = journal_event
        self._clock = clock
        self._wall = wall
        self.switch = SwitchState()
        #: The flags file as the daemon last read or wrote it (``flags_signature``);
        #: ``_UNREAD`` until the first read.
        self._flags_sig: object = _UNREAD
        self._reconciling = False

    # ------------------------------------------------------------------ reading

    def reconcile(self, *, startup: bool = False) -> None:
        """Read the files, act on what an operator did, then write what is due."""
        self._reconciling = True
        try:
            # The signature first: a write landing after it reads as a change next time.
            sig = self.files.flags_signature()
            result = core_switch.interpret(
                self.switch, self._state(), self.files.read(), startup=startup
            )
            self.switch = result.switch
            self._flags_sig = sig
            for action in result.actions:
                self._execute(action)
            for event in result.events:
                log.warning("%s %s actor=%s", event.journal_kind, event.token, event.actor)
                self._journal_event(event.journal_kind, reason=event.token, actor=event.actor)
                self._apply(event.observation)
            self.sync()
        finally:
            self._reconciling = False

    def latch_changed(self) -> bool:
        """Whether the risk latch appeared or went since the last read (one ``lstat``).

        The latch is usually absent, so the watch cannot follow it file by file (and
        the runtime folder is not watched: heartbeats); the heartbeat asks this instead.
        """
        return risk_latch_present(self.files.runtime_dir) != (self.switch.latch_on_disk is not None)

    def sync(self) -> None:
        """Write whatever the files lack (a failed write's retry once its backoff ran out)."""
        for action in core_switch.due_writes(self.switch, self._state(), self._clock()):
            self.write(action)

    # ------------------------------------------------------------------ writing

    def write(self, action: SwitchWrite) -> bool:
        """Carry out one kill-switch write and report how it went; True when it landed."""
        if isinstance(action, RemoveRiskLatch):
            return self._remove_latch(action)
        if isinstance(action, WriteFlags) and self._flags_changed_unread():
            # Someone (an operator's editor) wrote the flags since the daemon last read
            # them, and the watch has not told us yet: writing now would erase their
            # act unseen. Read first; the reconcile writes whatever is then due.
            log.info("flags_changed_before_write: reading global_flags.json first")
            self.reconcile()
            return core_switch.FLAGS not in self.switch.failures
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
            return False
        for action_ in follow:
            self._execute(action_)
        return True

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
        if self._reconciling or self._flags_sig is _UNREAD:
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

    # ------------------------------------------------------------------ watching

    async def watch(
        self,
        *,
        on_journal_change: Callable[[], None],
        journal_names: set[str],
        on_watching: Callable[[bool], None] = lambda _watching: None,
    ) -> None:
        """React to changes at once (inotify); the heartbeat also reconciles.

        The same watch wakes the command queue when the journal's WAL changes (a CLI
        submitted a command), so neither needs a fast poll: ``on_watching(True)`` says
        changes are being seen, ``on_watching(False)`` that they are not (the caller
        polls faster meanwhile). On Linux the inotify descriptor sits on the event loop
        (:mod:`autoheal.daemon.dirwatch`): nothing wakes until a folder changes.
        Elsewhere, watchfiles (its thread takes the GIL every ``step=100`` ms).
        A folder that cannot be watched (the stop file's folder replaced by a plain
        file) is logged and tried again later; the heartbeat keeps reconciling.
        """
        import anyio

        from autoheal.daemon import dirwatch

        switch_names = {self.files.stop_file.name, FLAGS_FILENAME, RISK_LATCH_FILENAME}

        def changed(names: set[str]) -> None:
            if dirwatch.OVERFLOW in names or names & journal_names:
                on_journal_change()
            if dirwatch.OVERFLOW in names or names & switch_names:
                self.reconcile()

        failures = 0
        while True:
            dirs = {d for d in (self.files.runtime_dir, self.files.stop_file.parent) if d.is_dir()}
            started = anyio.current_time()
            try:
                if self.files.stop_file.parent not in dirs:
                    # Nothing could hear STOP.TXT appear: not watching (each beat reads).
                    raise NotADirectoryError(
                        f"the stop file's folder {self.files.stop_file.parent} is not a folder"
                    )
                if dirwatch.AVAILABLE:
                    # The runtime folder is not watched as a folder: its heartbeats would
                    # wake us every second each. Its files are watched one by one instead.
                    await dirwatch.watch(
                        {self.files.stop_file.parent},
                        [self.files.runtime_dir / n for n in (FLAGS_FILENAME, *journal_names)],
                        changed,
                        on_started=lambda: on_watching(True),
                    )
                else:
                    await self._watch_portably(dirs, changed, on_watching)
            except dirwatch.WatchLost as exc:
                # A file removed, or replaced faster than we followed it: usual, not an error.
                log.info("kill_switch_watch_lost detail=%s; watching again", exc)
            except (OSError, RuntimeError) as exc:
                log.error(
                    "kill_switch_watch_failed error=%s; the heartbeat reconciles meanwhile", exc
                )
            finally:
                on_watching(False)
            # Whatever changed while nothing watched is read now, not at the next beat.
            changed({dirwatch.OVERFLOW})
            # A watch that ran a while starts the backoff afresh; one failing at once backs off.
            failures = 0 if anyio.current_time() - started > 10.0 else failures + 1
            await anyio.sleep(min(30.0, 0.25 * 2**failures))

    async def _watch_portably(
        self,
        dirs: set[Path],
        changed: Callable[[set[str]], None],
        on_watching: Callable[[bool], None],
    ) -> None:
        import watchfiles

        on_watching(True)
        async for changes in watchfiles.awatch(*dirs, recursive=False, debounce=30, step=100):
            changed({path.rsplit("/", 1)[-1] for _, path in changes})

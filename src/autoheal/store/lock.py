"""One daemon per runtime directory: an exclusive ``flock`` on ``autoheal.lock``.

The lock dies with the process (the kernel drops it), so a SIGKILLed daemon never
leaves a stale lock behind; the file's content (the holder's PID) is only for the
message a second daemon prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from autoheal.store import layout as runtime_files

LOCK_FILENAME = runtime_files.LOCK


class LockHeldError(Exception):
    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"another autoheal daemon (pid {holder}) holds {path}")
        self.path = path
        self.holder = holder


class PidLock:
    """An exclusive, non-blocking ``flock`` on ``path``; the file holds the holder's PID.

    The kernel drops it with the process; the PID is only for the message of whoever
    finds it taken. Used for the runtime directory (one daemon) and for drill runs
    against a target (one at a time).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> str | None:
        """Take the lock: ``None`` when taken, else the holder's PID (as text)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            return holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the only descriptor drops the flock


class RuntimeLock(PidLock):
    """Exclusive lock on the runtime directory, held for the daemon's life."""

    def __init__(self, runtime_dir: Path) -> None:
        super().__init__(Path(runtime_dir) / LOCK_FILENAME)

    def acquire(self) -> None:
        """Raises: LockHeldError when another process holds it."""
        holder = self.try_acquire()
        if holder is not None:
            raise LockHeldError(self.path, holder)


def lock_holder(runtime_dir: Path) -> str | None:
    """The PID holding the daemon lock, or None when no daemon runs (the lock is free)."""
    path = Path(runtime_dir) / LOCK_FILENAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

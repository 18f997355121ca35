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

from autoheal import runtime_files

LOCK_FILENAME = runtime_files.LOCK


class LockHeldError(Exception):
    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"another autoheal daemon (pid {holder}) holds {path}")
        self.path = path
        self.holder = holder


class RuntimeLock:
    """Exclusive lock on the runtime directory, held for the daemon's life."""

    def __init__(self, runtime_dir: Path) -> None:
        self.path = Path(runtime_dir) / LOCK_FILENAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises: LockHeldError when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeldError(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


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

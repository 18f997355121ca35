"""An exclusive ``fcntl.flock`` around a read-modify-write of a shared JSON file.

Why a separate ``<file>.lock``: our writes replace the data file with ``os.replace``,
which swaps the inode, so a lock held on the data file itself would guard a file
that no longer has that name. The lock file is never replaced or removed, so every
process locks the same inode. ``flock`` locks belong to the open file description
and are released by the kernel when the holder dies, even on SIGKILL, so a crashed
trader can never wedge the others.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autoheal.store.atomic import FILE_MODE

__all__ = ["LockTimeout", "locked"]

_POLL_S = 0.01


class LockTimeout(TimeoutError):
    """The lock stayed held (a trader stopped while holding it?) past the timeout."""


@contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` (on ``path`` + ``.lock``) for the ``with`` body.

    Args:
        path: the data file being protected; its directory must exist.
        timeout: wait at most this long (polling every 10 ms); ``None`` waits as long
            as it takes.

    Raises:
        OSError: the lock file cannot be created.
        LockTimeout: still held by another process after ``timeout``.
    """
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    # The runtime's file mode (nothing for "other"), and never through a symlink.
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(lock_path, flags, FILE_MODE)
    try:
        _take(fd, lock_path, timeout)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _take(fd: int, lock_path: Path, timeout: float | None) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"{lock_path} is still locked after {timeout} s (a trading process "
                    "holding it may be stopped or hung)"
                ) from None
            time.sleep(_POLL_S)

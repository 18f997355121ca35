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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["locked"]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` (on ``path`` + ``.lock``) for the ``with`` body.

    Args:
        path: the data file being protected; its directory must exist.

    Raises:
        OSError: the lock file cannot be created.
    """
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

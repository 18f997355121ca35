"""Per-service log files: the child's stdout and stderr go straight into a file.

The child writes to the file itself, through a descriptor opened with
``O_APPEND``: no pipe through the daemon, so a service keeps logging (and never
gets SIGPIPE) while the daemon restarts, and the daemon spends no CPU on it.

The price is rotation. Before a start nobody writes the file, so it is rotated
by renaming (``name.log`` → ``name.log.1`` → … → ``name.log.N``). While a child
runs, a rename would leave it writing into ``name.log.1``, so periodic rotation
copies the file and truncates it in place (logrotate's ``copytruncate``); thanks
to ``O_APPEND`` the child's next write lands at the new end. Lines written
between the copy and the truncate are lost: the accepted cost of that scheme.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["open_log", "rotate_by_copy", "rotate_by_rename"]

LOG_MODE = 0o640


def open_log(path: Path) -> int:
    """Open (creating it and its directory) a log file for appending; return the descriptor.

    Raises:
        OSError: the directory or file cannot be created or opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, LOG_MODE)


def _backup(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def needs_rotation(path: Path, max_bytes: int) -> bool:
    try:
        return path.stat().st_size > max_bytes
    except FileNotFoundError:
        return False


def _shift_backups(path: Path, backups: int) -> None:
    """Make room for a new ``.1``: ``.N-1`` → ``.N`` … ``.1`` → ``.2``; the oldest is dropped."""
    for index in range(backups - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(_backup(path, index), _backup(path, index + 1))


def rotate_by_rename(path: Path, max_bytes: int, backups: int) -> bool:
    """Rotate a log that nobody writes (before a start), if it is over ``max_bytes``.

    Args:
        path: the live log file (``name.log``).
        max_bytes: rotate only when the file is larger than this.
        backups: how many rotated files to keep; 0 discards the old log.

    Returns:
        ``True`` when the log was rotated.

    Raises:
        OSError: a rename failed (permissions, read-only file system).
    """
    if not needs_rotation(path, max_bytes):
        return False
    if backups <= 0:
        path.unlink(missing_ok=True)
        return True
    _shift_backups(path, backups)
    os.replace(path, _backup(path, 1))
    return True


def rotate_by_copy(path: Path, max_bytes: int, backups: int) -> bool:
    """Rotate a log that a running child appends to (copy, then truncate in place).

    Args and Returns are those of :func:`rotate_by_rename`.

    Raises:
        OSError: the copy or the truncate failed.
    """
    if not needs_rotation(path, max_bytes):
        return False
    if backups > 0:
        _shift_backups(path, backups)
        shutil.copyfile(path, _backup(path, 1))
    os.truncate(path, 0)
    return True

"""What a service leaves on disk: its pidfile and lock files.

Two questions, both blocking (``/proc`` and file reads; the shell runs them in a
worker thread):

* :func:`prove_ours` — does the pidfile lead to a live process that is provably
  the service (alive, not a zombie, command line matching)? A PID that now
  belongs to another program is ``process_missing`` and is never signalled.
* :func:`remove_stale` — before a restart, remove the spec's lock files and
  pidfile when no live process of ours holds them. Only the paths the spec
  names are touched, never a directory, and a symlink is removed as a link (its
  target stays). A lock file is kept while someone holds a ``flock`` or POSIX
  lock on it, or while it names the PID of a live process of the service.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

import psutil

from autoheal.procs.identity import cmdline_matches, read_cmdline, read_pidfile
from autoheal.procs.model import PROCESS_MISSING, AdoptResult, ProcessIdentity, ServiceSpec

__all__ = ["prove_ours", "remove_stale"]


def _missing(detail: str) -> AdoptResult:
    return AdoptResult(None, PROCESS_MISSING, detail)


def prove_ours(spec: ServiceSpec, expected_cmdline: Sequence[str] | None = None) -> AdoptResult:
    """Read the spec's pidfile and prove that its PID runs the service.

    Args:
        spec: the service; ``spec.argv`` is the expected command line unless given.
        expected_cmdline: the command line to expect instead of ``spec.argv``.

    Returns:
        The identity when proven; otherwise ``process_missing`` with a detail.
    """
    pid = read_pidfile(spec.pidfile)
    if pid is None:
        return _missing(f"no valid pidfile at {spec.pidfile}")
    if pid == os.getpid():
        return _missing(f"pid {pid} is the supervisor itself")
    try:
        proc = psutil.Process(pid)
        create_time = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return _missing(f"pid {pid} has exited (zombie)")
    except psutil.ZombieProcess:
        return _missing(f"pid {pid} has exited (zombie)")
    except psutil.NoSuchProcess:
        return _missing(f"pid {pid} is not running")
    except (psutil.AccessDenied, OSError):
        return _missing(f"pid {pid} cannot be inspected, so it is not provably ours")
    cmdline = read_cmdline(proc)
    if cmdline is None:
        return _missing(f"pid {pid} has no readable command line, so it is not provably ours")
    expected = tuple(expected_cmdline) if expected_cmdline is not None else spec.argv
    if not cmdline_matches(expected, cmdline, spec.cwd):
        return _missing(f"pid {pid} belongs to another program")
    return AdoptResult(ProcessIdentity(pid, create_time, cmdline))


def _lock_is_held(path: Path) -> bool:
    """Whether another process holds a ``flock`` or POSIX lock on ``path`` right now."""
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, os.O_RDWR | flags)
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY | flags)
        except OSError:
            return False  # a dangling symlink, or unreadable: nothing we can test
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            return True
        except OSError:
            return False  # opened read-only: POSIX write locks cannot be tested
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _names_live_service(path: Path, spec: ServiceSpec) -> bool:
    """Whether a lock file's content is the PID of a live process of the service."""
    pid = read_pidfile(path)
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except (psutil.Error, OSError):
        return False
    cmdline = read_cmdline(proc)
    return cmdline is not None and cmdline_matches(spec.argv, cmdline, spec.cwd)


def _removable(path: Path) -> bool:
    """Only regular files and symlinks are ever removed (never a directory)."""
    return path.is_symlink() or path.is_file()


def remove_stale(spec: ServiceSpec, *, service_alive: bool) -> tuple[Path, ...]:
    """Remove the spec's stale lock files and pidfile; return what was removed.

    Args:
        spec: names the only files that may be removed.
        service_alive: a live process of the service is known (our own child);
            then nothing is removed.

    Returns:
        The removed paths, lock files first, the pidfile last.
    """
    if service_alive or prove_ours(spec).ok:
        return ()
    removed: list[Path] = []
    for lock in spec.lock_files:
        if not _removable(lock) or _lock_is_held(lock) or _names_live_service(lock, spec):
            continue
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
            removed.append(lock)
    if _removable(spec.pidfile):
        with contextlib.suppress(FileNotFoundError):
            spec.pidfile.unlink()
            removed.append(spec.pidfile)
    return tuple(removed)

"""Waiting for a process to exit, event-driven.

On Linux ≥ 5.3 a *pidfd* (``os.pidfd_open``) becomes readable the moment its
process exits, so the event loop wakes on the exit itself: no once-a-second
poll, no SIGCHLD handler (whose work-in-a-handler trouble circus #1228 shows).
It works for our own children and for adopted processes alike.

Where pidfds are unavailable (old kernels, a seccomp filter answering ENOSYS or
EPERM) we fall back to polling with a short interval that doubles up to a bound.

Our own children are reaped with ``Popen.poll()`` (``waitpid(WNOHANG)``) once the
pidfd says they exited, so no zombie is left behind. An unreaped child's PID
cannot be reused, which is also why a pidfd on it is race-free; for an adopted
process the identity is re-checked *after* the pidfd is opened.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess

import anyio
import anyio.to_thread

from autoheal.procs.identity import live_process

__all__ = ["PIDFD_SUPPORTED", "wait_child_exit", "wait_pid_gone"]

_FIRST_POLL_S = 0.002


class _Gone:
    """Marker: ``pidfd_open`` said there is no such process."""


_GONE = _Gone()


def _probe_pidfd_support() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError:
        return False
    os.close(fd)
    return True


#: Whether this kernel and sandbox let us open pidfds (checked once, at import).
PIDFD_SUPPORTED = _probe_pidfd_support()


def _open_pidfd(pid: int) -> int | _Gone | None:
    """A pidfd for ``pid``; ``_GONE`` when no such process; ``None`` when unsupported."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return _GONE
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return _GONE
        return None


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


async def wait_child_exit(
    popen: subprocess.Popen[bytes], *, use_pidfd: bool = True, max_poll_s: float = 0.05
) -> int:
    """Wait until our own child exits, reap it, and return its exit code.

    Args:
        popen: the child (never reaped by anyone else).
        use_pidfd: wait on a pidfd when the kernel supports it.
        max_poll_s: the longest sleep between polls in the fallback.

    Returns:
        The exit code, a negative signal number when a signal ended it.
    """
    if popen.returncode is not None:
        return popen.returncode
    fd = _open_pidfd(popen.pid) if use_pidfd and PIDFD_SUPPORTED else None
    if isinstance(fd, int):
        try:
            await anyio.wait_readable(fd)
        finally:
            _close(fd)
    delay = _FIRST_POLL_S
    while True:
        code = popen.poll()
        if code is not None:
            return code
        await anyio.sleep(delay)
        delay = min(delay * 2, max_poll_s)


async def wait_pid_gone(
    pid: int, create_time: float, *, use_pidfd: bool = True, max_poll_s: float = 0.05
) -> None:
    """Wait until a process we did not spawn has exited (or its PID was reused).

    Args:
        pid: the process.
        create_time: its start time; a different one means it is already gone.
        use_pidfd: wait on a pidfd when the kernel supports it.
        max_poll_s: the longest sleep between polls in the fallback.
    """
    fd = _open_pidfd(pid) if use_pidfd and PIDFD_SUPPORTED else None
    if isinstance(fd, _Gone):
        return
    try:
        # Check identity after opening: a pidfd opened on a reused PID names the new process.
        if await anyio.to_thread.run_sync(live_process, pid, create_time) is None:
            return
        if fd is not None:
            await anyio.wait_readable(fd)
            return
        delay = _FIRST_POLL_S
        while await anyio.to_thread.run_sync(live_process, pid, create_time) is not None:
            await anyio.sleep(delay)
            delay = min(delay * 2, max_poll_s)
    finally:
        if fd is not None:
            _close(fd)

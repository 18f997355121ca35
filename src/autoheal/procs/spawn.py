"""Starting a service: one blocking function, run in a worker thread by the shell.

Kept lean because restart latency is measured from SIGKILL to the replacement's
``exec``: ``subprocess.Popen`` forks with ``vfork`` on Linux (no preexec_fn, no
uid change) and returns only after the ``exec`` succeeded, so an exec failure is
an exception here, not a dead child later. Afterwards only ``/proc/<pid>/stat``
is read (no scan of ``/proc``), and the pidfile is
written atomically but without fsync: it describes a running process, which a
power cut ends anyway, so durability would only add milliseconds to a restart.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from autoheal.procs.errors import SpawnError
from autoheal.procs.identity import identity_of
from autoheal.procs.logs import open_log, rotate_by_rename
from autoheal.procs.model import ProcessIdentity, ServiceSpec
from autoheal.store.atomic import write_bytes_atomic

__all__ = ["spawn", "write_pidfile"]


def write_pidfile(path: Path, pid: int) -> None:
    """Write ``<pid>\\n`` to ``path`` atomically (plain text, as other tools expect).

    Raises:
        OSError: the directory cannot be created or the file written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, f"{pid}\n".encode("ascii"), durable=False)


def _spawn_error(exc: OSError, spec: ServiceSpec) -> SpawnError:
    """Map what ``Popen`` raised to a reason token (the child reports chdir and exec failures)."""
    detail = exc.strerror or str(exc)
    if exc.filename is not None and os.fspath(exc.filename) == os.fspath(spec.cwd):
        return SpawnError("cwd_not_found", f"{spec.cwd}: {detail}")
    if isinstance(exc, FileNotFoundError):
        return SpawnError("exec_not_found", f"{spec.argv[0]}: {detail}")
    if isinstance(exc, PermissionError):
        return SpawnError("permission_denied", f"{spec.argv[0]}: {detail}")
    return SpawnError("spawn_failed", f"{spec.argv[0]}: {detail}")


def spawn(spec: ServiceSpec) -> tuple[subprocess.Popen[bytes], ProcessIdentity]:
    """Start ``spec`` in its own session, output appended to its log, and write its pidfile.

    Either the service is running with its pidfile written, or nothing of it is
    left behind (a child whose pidfile cannot be written is killed and reaped).

    Returns:
        The child (to reap it later) and its identity.

    Raises:
        SpawnError: the argv is empty or invalid, the executable or cwd is missing,
            permission was denied, or the log or pidfile cannot be written.
    """
    if not spec.argv or not spec.argv[0]:
        raise SpawnError("invalid_argv", f"service {spec.name!r} has an empty argv")
    try:
        rotate_by_rename(spec.log_file, spec.log_max_bytes, spec.log_backups)
        log_fd = open_log(spec.log_file)
    except OSError as exc:
        raise SpawnError("log_unwritable", f"{spec.log_file}: {exc.strerror or exc}") from exc
    env = None  # inherit the daemon's environment as it is
    if spec.env or spec.env_remove:
        env = {k: v for k, v in os.environ.items() if k not in spec.env_remove}
        env.update(spec.env)
    try:
        popen = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise _spawn_error(exc, spec) from exc
    except ValueError as exc:  # a NUL byte in argv, an "=" in an env name
        raise SpawnError("invalid_spec", f"service {spec.name!r}: {exc}") from exc
    finally:
        os.close(log_fd)
    # The child is not reaped until we say so, so its PID (and start time) cannot be
    # reused under us even if it has already exited: reading them now is race-free.
    identity = identity_of(popen.pid, spec.argv) or ProcessIdentity(popen.pid, 0.0, spec.argv)
    try:
        write_pidfile(spec.pidfile, popen.pid)
    except OSError as exc:
        with contextlib.suppress(OSError):
            popen.kill()
        popen.wait()
        raise SpawnError("pidfile_unwritable", f"{spec.pidfile}: {exc.strerror or exc}") from exc
    return popen, identity

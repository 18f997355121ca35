"""Exec probe: run a command (an argv list, never a shell string); exit 0 is healthy.

Kubernetes' exec probe, monit's ``check program``. Each check starts the command in
a session of its own (so a timeout can kill what it started, too), with stdin and
stdout on ``/dev/null`` and stderr read into a bounded buffer:

==============================  ==================
exit code 0                     ok (value: the run time in s)
any other code, or a signal     ``exec_failed`` (detail: the code, stderr's first line)
no exit within ``timeout``      ``exec_timeout`` (the process group is SIGKILLed)
the program cannot be started   ``exec_failed`` (detail: the OS error)
==============================  ==================

The child is always reaped, whatever ends the check (an exit, the timeout, the
runner's cancellation). Its environment is the daemon's minus ``env_remove``: the
variables the daemon reads secrets from (:func:`autoheal.config.secret_envs`) never
reach it, as they never reach a service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence

import anyio

from autoheal.core.reasons import EXEC_FAILED, EXEC_TIMEOUT
from autoheal.probes.result import ProbeResult
from autoheal.procs.exits import wait_child_exit

__all__ = ["ExecProbe", "first_line"]

#: Bytes of stderr kept (the rest is read and dropped, so the child never blocks on it).
_STDERR_KEEP = 4096
#: Characters of stderr's first line shown in the detail.
_DETAIL_CHARS = 200
#: How long a killed child may take to be reaped before we stop waiting (it is SIGKILLed).
_REAP_S = 5.0


def first_line(data: bytes, limit: int = _DETAIL_CHARS) -> str:
    """The first non-empty line of ``data``, control characters dropped, at most ``limit``."""
    text = data.decode("utf-8", errors="replace")
    for line in text.splitlines():
        shown = "".join(c for c in line if c.isprintable()).strip()
        if shown:
            return shown[:limit]
    return ""


class ExecProbe:
    """Run ``argv`` once per check and judge its exit code.

    Args:
        argv: the program (an absolute path or a name on PATH) and its arguments.
        timeout: seconds the command may run.
        env_remove: names of the daemon's variables the command must not inherit.
        cwd: its working directory (the daemon's when None).
        environ: the environment to start from (the daemon's, ``os.environ``).
        clock: monotonic time, to measure the run time.
    """

    def __init__(
        self,
        argv: Sequence[str],
        timeout: float,
        *,
        env_remove: Collection[str],
        cwd: str | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.argv = tuple(argv)
        self.timeout = float(timeout)
        self.cwd = cwd
        source = os.environ if environ is None else environ
        self._env = {k: v for k, v in source.items() if k not in frozenset(env_remove)}
        self._clock = clock

    def __repr__(self) -> str:
        return f"ExecProbe({self.argv[0]!r}, timeout={self.timeout})"

    def timed_out(self, after: float) -> ProbeResult:
        """The runner's timeout fired first: the same verdict as our own."""
        return ProbeResult(
            False, EXEC_TIMEOUT, after, self.timeout, detail=f"no exit within {after:g} s"
        )

    async def check(self) -> ProbeResult:
        started = self._clock()
        try:
            # A plain Popen (vfork + exec, as services are spawned) and a pidfd for its
            # exit: asyncio's subprocesses would add a child-watcher thread per check.
            popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=self._env,
                start_new_session=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            return ProbeResult(
                False, EXEC_FAILED, None, None, detail=f"cannot start {self.argv[0]}: {why}"
            )
        try:
            stderr = b""
            with anyio.move_on_after(self.timeout) as scope:
                stderr = await _read_bounded(popen)
                code = await wait_child_exit(popen)
            if scope.cancelled_caught:
                return self.timed_out(self._clock() - started)
        finally:
            await _reap(popen)
        took = self._clock() - started
        if code == 0:
            return ProbeResult(True, "", took, self.timeout)
        said = first_line(stderr)
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        detail = f"{how}: {said}" if said else how
        return ProbeResult(False, EXEC_FAILED, float(code), 0.0, detail=detail)


async def _read_bounded(popen: subprocess.Popen[bytes]) -> bytes:
    """All of stderr until EOF, keeping the first :data:`_STDERR_KEEP` bytes."""
    if popen.stderr is None:
        return b""
    fd = popen.stderr.fileno()
    os.set_blocking(fd, False)
    kept = bytearray()
    while True:
        await anyio.wait_readable(fd)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return bytes(kept)
        if len(kept) < _STDERR_KEEP:
            kept += chunk[: _STDERR_KEEP - len(kept)]


async def _reap(popen: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the command's session and reap the command (shielded)."""
    with anyio.CancelScope(shield=True):
        if popen.poll() is None:
            # Not reaped yet, so its PID (the group's id) cannot have been reused.
            _kill_group(popen.pid)
            with anyio.move_on_after(_REAP_S):
                await wait_child_exit(popen)
        if popen.stderr is not None:
            popen.stderr.close()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone: nothing left to kill

"""The one subprocess harness: how drills, test fixtures and benchmarks start, stop and reap
the real processes of a stack (``autoheal run``, the fake exchange, the fault proxy, a
demo trader, any helper).

Three rules, each the answer to a way a stack once went wrong:

1. **Everything started here is a** :class:`Spawned`: one ``Popen`` whose output goes to
   a log file, whose identity (PID plus kernel start time) is taken at once, and whose
   :meth:`~Spawned.stop` always ends in SIGKILL after a grace period, then reaps it.
2. **Everything a stack owns is in a** :class:`ProcessRoster`, **by identity**: what it
   spawned, and what it learned of (a daemon's services, from a health document or from
   the daemon's descendants taken just before it is stopped, since they reparent once it
   is gone). :meth:`ProcessRoster.reap` kills whatever of them still runs, *whatever
   happened before*: an operator's ``stop`` that timed out under load, a daemon killed
   before it could stop its services, a rollback cut short by its own deadline. A PID
   the kernel gave to someone else since is never signalled (the proof is the start
   time, as for the daemon's own children: :mod:`autoheal.procs.identity`).
3. **Every wait has a deadline and a name** (:func:`wait_for`, :func:`await_for`): a
   stack that does not come up fails saying what it waited for, never hangs.

Everything here is synchronous and fast except the waits; the drills call the blocking
parts (a stop's grace period, a reap) through ``anyio.to_thread.run_sync`` and wait with
:func:`await_for`, which the blast-radius guard can cancel at once. The daemon never
imports this module (DESIGN.md §1: ``autoheal.daemon`` never imports ``drills``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import psutil

from autoheal.procs import identity
from autoheal.procs.model import ProcessIdentity

__all__ = [
    "PY",
    "DaemonProcess",
    "ProcessRoster",
    "Spawned",
    "autoheal_argv",
    "await_for",
    "child_env",
    "poll_until",
    "wait_for",
]

T = TypeVar("T")

PY = sys.executable
#: What a daemon started here must not inherit: it is a plain foreground process, not
#: the caller's systemd service (a test runner under systemd would lend it its socket).
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC")
#: A process's grace after SIGTERM, and after SIGKILL (only a process stuck in the
#: kernel outlives that, and then nothing more can be done).
STOP_TIMEOUT_S = 15.0
KILL_WAIT_S = 5.0
#: How long a stack's process may take to show it is up (a Python start on a busy host).
START_TIMEOUT_S = 15.0
POLL_S = 0.02


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child, less :data:`SYSTEMD_ENV`, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
    env.update(extra or {})
    return env


def autoheal_argv(*args: str, config: Path | None = None) -> list[str]:
    """``python -m autoheal ARGS [--config CFG]`` with this interpreter."""
    tail = [] if config is None else ["--config", str(config)]
    return [PY, "-m", "autoheal", *args, *tail]


def wait_for(
    condition: Callable[[], T | None], timeout: float, what: str, *, poll: float = POLL_S
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Raises:
        TimeoutError: ``timeout`` seconds passed; the message names ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


async def await_for(
    condition: Callable[[], T | None], timeout: float, what: str, *, poll: float = POLL_S
) -> T:
    """:func:`wait_for` for async code: sleeps with anyio, so it can be cancelled at once."""
    deadline = anyio.current_time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if anyio.current_time() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(poll)


async def poll_until(
    predicate: Callable[[], Awaitable[T]], timeout_s: float, *, poll: float = POLL_S
) -> T:
    """Await ``predicate`` until it returns something truthy or ``timeout_s`` passed;
    returns its last value either way (a drill records a miss, it does not raise)."""
    deadline = anyio.current_time() + timeout_s
    while True:
        value = await predicate()
        if value or anyio.current_time() >= deadline:
            return value
        await anyio.sleep(poll)


def _describe(proc: psutil.Process, what: str) -> str:
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        cmdline = what
    return f"{proc.pid} {cmdline or what}"[:130]


class ProcessRoster:
    """The processes a stack owns, by identity; :meth:`reap` kills what is left of them."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[ProcessIdentity, str]] = {}

    def __len__(self) -> int:
        return len(self._known)

    def add(self, pid: int, what: str = "", *, create_time: float | None = None) -> bool:
        """Own ``pid`` from now on (its start time read now unless given); ``False`` if it
        is already gone. A PID seen again with another start time is a new process."""
        if pid <= 0 or pid == os.getpid():
            return False
        if create_time is None:
            try:
                create_time = psutil.Process(pid).create_time()
            except (psutil.Error, OSError):
                return False
        known = self._known.get(pid)
        if (
            known is None
            or abs(known[0].create_time - create_time) > identity.CREATE_TIME_TOLERANCE_S
        ):
            self._known[pid] = (ProcessIdentity(pid, create_time, ()), what)
        return True

    def add_descendants(self, pid: int) -> int:
        """Own every live descendant of ``pid`` (a daemon's services run in sessions of
        their own, and reparent to init once it is gone: take them *before* stopping it)."""
        try:
            parent = psutil.Process(pid)
        except (psutil.Error, OSError):
            return 0
        found = identity.collect_descendants(parent)
        for child in found:
            self.add(child.pid, f"descendant of {pid}", create_time=child.create_time())
        return len(found)

    def add_components(self, health: Mapping[str, Any]) -> int:
        """Own the processes a daemon's health document names for its components.

        Only a process that already ran when the document was written (its start time
        not after the document's ``ts``) is taken: a PID the kernel gave to another
        process since could only have started later. Safe on a stale document, e.g. the
        last one a daemon that is gone left behind. Returns how many were taken.
        """
        ts = health.get("ts")
        comps = health.get("components")
        if (
            isinstance(ts, bool)
            or not isinstance(ts, int | float)
            or not isinstance(comps, Mapping)
        ):
            return 0
        taken = 0
        for name, comp in comps.items():
            pid = comp.get("pid") if isinstance(comp, Mapping) else None
            if not isinstance(pid, int) or isinstance(pid, bool) or pid in self._known:
                continue
            try:
                started = psutil.Process(pid).create_time()
            except (psutil.Error, OSError):
                continue
            if started <= ts + identity.CREATE_TIME_TOLERANCE_S:
                taken += self.add(pid, f"component {name}", create_time=started)
        return taken

    def add_pidfile(self, path: Path, what: str = "") -> bool:
        """Own the process a pidfile names, if it already ran when the file was written
        (the rule of :meth:`add_components`, with the file's mtime for ``ts``): a pidfile
        outlives its process, and its PID may be another's by now."""
        pid = identity.read_pidfile(path)
        try:
            written = path.stat().st_mtime
            started = psutil.Process(pid).create_time() if pid is not None else None
        except (psutil.Error, OSError):
            return False
        if pid is None or started is None or started > written + identity.CREATE_TIME_TOLERANCE_S:
            return False
        return self.add(pid, what or f"pidfile {path.name}", create_time=started)

    def running(self) -> list[psutil.Process]:
        """The owned processes that still run (same PID, same start time, not a zombie)."""
        out = []
        for ident, _what in self._known.values():
            proc = identity.live_process(ident.pid, ident.create_time)
            if proc is not None:
                out.append(proc)
        return out

    def reap(self, timeout_s: float = KILL_WAIT_S) -> list[str]:
        """SIGKILL every owned process that still runs (SIGCONT first: a frozen one) and
        wait for them; returns each one's ``"<pid> <command line>"``, empty when nothing
        was left. Safe to call any number of times, from a worker thread."""
        left = self.running()
        what = {pid: w for pid, (_i, w) in self._known.items()}
        described = [_describe(p, what.get(p.pid, "")) for p in left]
        identity.signal_each(left, signal.SIGCONT)
        identity.signal_each(left, signal.SIGKILL)
        # Wait for them to be gone, or zombies: one that is our child stays a zombie until
        # its ``Popen`` collects its exit status (reaping it here would lose that).
        deadline = time.monotonic() + timeout_s
        while identity.still_running(left) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return described


class Spawned:
    """One process started here: its ``Popen``, its log, its identity in ``roster``.

    Args:
        argv: the command line.
        log_path: stdout and stderr go there (appended); ``None``: inherited.
        env: its environment (default: :func:`child_env`).
        cwd: its working directory.
        roster: where its identity is recorded (a new one when ``None``).
        quiet_stdout: discard stdout, keep only stderr in the log.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        roster: ProcessRoster | None = None,
        quiet_stdout: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.roster = roster if roster is not None else ProcessRoster()
        environment = dict(env) if env is not None else child_env()
        if log_path is None:
            self.popen = subprocess.Popen(self.argv, env=environment, cwd=cwd)
        else:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:  # the child keeps its own descriptor
                out = subprocess.DEVNULL if quiet_stdout else log
                err = log if quiet_stdout else subprocess.STDOUT
                self.popen = subprocess.Popen(
                    self.argv, stdout=out, stderr=err, env=environment, cwd=cwd
                )
        self.roster.add(self.popen.pid, " ".join(self.argv)[:120])

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: int) -> None:
        """Send ``sig`` unless it has exited (an exited child's PID is not ours any more)."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (raises ``subprocess.TimeoutExpired`` after ``timeout``)."""
        return self.popen.wait(timeout)

    def stop(
        self, timeout_s: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM, *, thaw: bool = False
    ) -> int:
        """``sig`` (after SIGCONT when ``thaw``: a frozen process handles nothing), wait up
        to ``timeout_s``, then SIGKILL; returns the exit status. Blocks."""
        if self.popen.poll() is None:
            if thaw:
                self.popen.send_signal(signal.SIGCONT)
            self.popen.send_signal(sig)
            try:
                return self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def kill(self) -> int:
        """SIGKILL (if it still runs) and reap it; returns the exit status. Blocks."""
        if self.popen.poll() is None:
            self.popen.kill()
        return self.popen.wait(KILL_WAIT_S)

    def log_text(self) -> str:
        try:
            return "" if self.log_path is None else self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class DaemonProcess(Spawned):
    """``autoheal run [--chaos] --config CFG``; its services join the roster when stopped.

    Args:
        config: the config file.
        log_path: its stdout and stderr.
        chaos: run with ``--chaos`` (the daemon refuses it for a ``live`` config).
        env: its environment (default: :func:`child_env`).
        fd_limit: run it under ``prlimit --nofile=N:N`` (same PID, no ``preexec_fn``).
        cwd: its working directory.
        roster: where it and, when it is stopped, its services are recorded.
    """

    def __init__(
        self,
        config: Path,
        log_path: Path,
        *,
        chaos: bool = False,
        env: Mapping[str, str] | None = None,
        fd_limit: int | None = None,
        cwd: Path | None = None,
        roster: ProcessRoster | None = None,
    ) -> None:
        argv = autoheal_argv("run", *(["--chaos"] if chaos else []), config=config)
        if fd_limit is not None:
            argv = ["prlimit", f"--nofile={fd_limit}:{fd_limit}", "--", *argv]
        self.config = config
        super().__init__(argv, log_path, env=env, cwd=cwd, roster=roster)

    def own_services(self) -> int:
        """Put its live descendants in the roster now (while they are still its: once it is
        gone they belong to init, and only their PIDs and start times can name them)."""
        return self.roster.add_descendants(self.pid) if self.alive() else 0

    def stop(
        self, timeout_s: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM, *, thaw: bool = False
    ) -> int:
        self.own_services()
        return super().stop(timeout_s, sig, thaw=thaw)

"""Verified fakes for the shell: an in-memory :class:`FakeProcessControl`.

Shipped in the package (not under ``tests/``) so that drills and users can
reuse it; it imports no pytest. "Verified" because one contract suite
(``tests/procs/test_control_contract.py``) runs against both this
fake and the real :class:`autoheal.procs.ProcessControl`, so a behaviour the
daemon relies on cannot drift between them unnoticed (trio's contributing guide).

What is real and what is not:

* No process is ever spawned and no signal is ever sent. A "process" is a record
  with a fake PID and a fake start time; it "exits" when the test says so
  (:meth:`FakeProcessControl.exit`), when it is stopped, or right after start
  when :meth:`~FakeProcessControl.set_crash_on_start` asked for it.
* The files are real: ``start`` writes the spec's pidfile and creates its log
  file, ``clean_stale`` removes stale lock files and the pidfile, because the
  daemon and the tests read them.
* Fake PIDs start above the kernel's ``PID_MAX_LIMIT`` (2**22 on 64-bit Linux),
  so a fake pidfile read by real code can never name a real process, and can
  never get one signalled.

Known differences from the real control (see the contract suite):

* ``adopt`` proves only processes this fake started (the real one proves any
  process whose command line matches, e.g. one a previous daemon started).
* A missing executable is detected for registered names (:meth:`set_failing`)
  and for a path (``/`` in ``argv[0]``) that does not exist; a bare name is not
  looked up on ``PATH``.
* ``clean_stale`` does not test for ``flock``/POSIX locks held by others.
* ``stop`` takes no time (no grace period) and ``owned`` lists live processes
  (the real one: children not reaped yet, which briefly includes a dead one).
* ``rotate_logs`` never rotates.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.lowlevel

from autoheal.procs.errors import SpawnError
from autoheal.procs.identity import read_pidfile
from autoheal.procs.model import (
    PROCESS_MISSING,
    AdoptResult,
    ProcessIdentity,
    ProcessStatus,
    ServiceSpec,
    StopOutcome,
    StopResult,
)
from autoheal.procs.spawn import write_pidfile

__all__ = ["FAKE_PID_BASE", "FakeProcessControl"]

#: The first fake PID: above Linux's PID_MAX_LIMIT (4194304), so never a real process.
FAKE_PID_BASE = 5_000_000


@dataclass
class _FakeProcess:
    """One fake process: who it is, and how it ended (``code`` is set once it exited)."""

    name: str
    identity: ProcessIdentity
    exited: anyio.Event = field(default_factory=anyio.Event)
    code: int | None = None

    @property
    def alive(self) -> bool:
        return self.code is None

    def end(self, code: int) -> None:
        if self.code is None:
            self.code = code
            self.exited.set()


class FakeProcessControl:
    """The public async API of :class:`autoheal.procs.ProcessControl`, in memory.

    Pass it where a ``ProcessControl`` is expected (``Daemon(config, procs=fake)``)
    and drive the processes' fate from the test with :meth:`exit`,
    :meth:`set_crash_on_start`, :meth:`set_failing` and :meth:`set_ignore_stop`.

    Attributes:
        started: service names, one per successful ``start``, in order.
        started_at: the event loop's time (``anyio.current_time()``) of each of those
            starts: on a virtual clock, when the daemon restarted what.
        stops: service names, one per ``stop`` that found a running process, in order.
    """

    def __init__(self) -> None:
        self._next_pid = FAKE_PID_BASE
        self._procs: dict[int, _FakeProcess] = {}
        self._failing: dict[str, tuple[str, str]] = {}
        self._crash_on_start: dict[str, int] = {}
        self._ignore_stop: set[str] = set()
        self._foreign: set[int] = set()
        self.started: list[str] = []
        self.started_at: list[float] = []
        self.stops: list[str] = []

    # -- test controls ----------------------------------------------------------------

    def set_failing(
        self, argv0: str, reason: str = "exec_not_found", detail: str = "No such file or directory"
    ) -> None:
        """Make every later start of a spec whose ``argv[0]`` is ``argv0`` raise ``SpawnError``."""
        self._failing[argv0] = (reason, detail)

    def clear_failing(self, argv0: str) -> None:
        """Let ``argv0`` start again."""
        self._failing.pop(argv0, None)

    def set_crash_on_start(self, name: str, code: int | None = 1) -> None:
        """Make each later start of ``name`` exit at once with ``code``; ``None`` ends that."""
        if code is None:
            self._crash_on_start.pop(name, None)
        else:
            self._crash_on_start[name] = code

    def set_ignore_stop(self, name: str, ignore: bool = True) -> None:
        """Make service ``name`` ignore its stop signal, so ``stop`` reports ``killed``."""
        if ignore:
            self._ignore_stop.add(name)
        else:
            self._ignore_stop.discard(name)

    def exit(self, name_or_pid: str | int, code: int = 1) -> ProcessIdentity:
        """End a running fake process, as a crash or ``kill -9`` (``code=-9``) would.

        Args:
            name_or_pid: a service name (its newest running process) or a fake PID.
            code: the exit code ``wait_exit`` returns (negative: killed by that signal).

        Returns:
            The identity of the process that exited.

        Raises:
            LookupError: no running fake process matches.
        """
        proc = self._find_running(name_or_pid)
        if proc is None:
            raise LookupError(f"no running fake process {name_or_pid!r}")
        proc.end(code)
        return proc.identity

    def reuse_pid(
        self, pid: int, cmdline: tuple[str, ...] = ("/usr/bin/other-program",)
    ) -> ProcessIdentity:
        """Give an exited fake process's PID to another program, as the kernel does once
        PIDs wrap: a process with another start time and ``cmdline``, not ours (``status``
        says ``not_ours``, ``stop`` leaves it alone, ``owned`` omits it), alive until
        :meth:`exit` ends it.

        Returns:
            The other program's identity.

        Raises:
            LookupError: no fake process had ``pid``, or it still runs.
        """
        old = self._procs.get(pid)
        if old is None or old.alive:
            raise LookupError(f"pid {pid} is not an exited fake process")
        identity = ProcessIdentity(pid, old.identity.create_time + 0.5, cmdline)
        self._procs[pid] = _FakeProcess("", identity)  # no service's name
        self._foreign.add(pid)
        return identity

    def alive(self, pid: int) -> bool:
        """Whether the fake process with ``pid`` (ours or another program's) runs."""
        proc = self._procs.get(pid)
        return proc is not None and proc.alive

    def running(self, name: str) -> bool:
        """Whether a fake process of service ``name`` is running."""
        return self._find_running(name) is not None

    def current(self, name: str) -> ProcessIdentity | None:
        """The identity of the newest running process of service ``name``, if any."""
        proc = self._find_running(name)
        return None if proc is None else proc.identity

    def _find_running(self, name_or_pid: str | int) -> _FakeProcess | None:
        if isinstance(name_or_pid, int):
            proc = self._procs.get(name_or_pid)
            return proc if proc is not None and proc.alive else None
        live = [p for p in self._procs.values() if p.name == name_or_pid and p.alive]
        return live[-1] if live else None

    def _record(self, identity: ProcessIdentity) -> _FakeProcess | None:
        """The process ``identity`` names, if this fake started it (same PID and start time)."""
        proc = self._procs.get(identity.pid)
        if proc is None or proc.identity.create_time != identity.create_time:
            return None
        return proc

    # -- the ProcessControl API ---------------------------------------------------------

    async def start(self, spec: ServiceSpec) -> ProcessIdentity:
        """Start a fake process of ``spec``: check the spec, create the log, write the pidfile.

        Returns:
            The identity of the new fake process.

        Raises:
            SpawnError: ``invalid_argv``, ``cwd_not_found``, ``exec_not_found`` (or the
                reason given to :meth:`set_failing`), ``log_unwritable`` or
                ``pidfile_unwritable``; nothing was started.
        """
        await anyio.lowlevel.checkpoint()
        if not spec.argv or not spec.argv[0]:
            raise SpawnError("invalid_argv", f"service {spec.name!r} has an empty argv")
        # The real order: the log is opened before the exec is tried.
        try:
            spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            spec.log_file.touch()
        except OSError as exc:
            raise SpawnError("log_unwritable", f"{spec.log_file}: {exc.strerror or exc}") from exc
        program = spec.argv[0]
        if program in self._failing:
            reason, detail = self._failing[program]
            raise SpawnError(reason, f"{program}: {detail}")
        if not spec.cwd.is_dir():
            raise SpawnError("cwd_not_found", f"{spec.cwd}: No such file or directory")
        if os.sep in program and not Path(program).exists():
            raise SpawnError("exec_not_found", f"{program}: No such file or directory")
        pid = self._next_pid
        self._next_pid += 1
        try:
            write_pidfile(spec.pidfile, pid)
        except OSError as exc:
            raise SpawnError(
                "pidfile_unwritable", f"{spec.pidfile}: {exc.strerror or exc}"
            ) from exc
        # A counter, not a clock: identities differ even when two starts share an instant.
        identity = ProcessIdentity(pid, float(pid - FAKE_PID_BASE + 1), tuple(spec.argv))
        proc = _FakeProcess(spec.name, identity)
        self._procs[pid] = proc
        self.started.append(spec.name)
        self.started_at.append(anyio.current_time())
        crash = self._crash_on_start.get(spec.name)
        if crash is not None:
            proc.end(crash)
        return identity

    def owned(self) -> list[ProcessIdentity]:
        """The fake processes that have not exited (the real one: unreaped children)."""
        return [
            p.identity for pid, p in self._procs.items() if p.alive and pid not in self._foreign
        ]

    async def wait_exit(self, identity: ProcessIdentity) -> int | None:
        """Return once the process exits.

        Returns:
            Its exit code; ``None`` at once for a process this fake did not start.
        """
        proc = self._record(identity)
        if proc is None:
            await anyio.lowlevel.checkpoint()
            return None
        await proc.exited.wait()
        return proc.code

    async def status(self, identity: ProcessIdentity) -> ProcessStatus:
        """``running``/``exited`` for our own, ``not_ours`` for a reused PID, else ``missing``."""
        await anyio.lowlevel.checkpoint()
        proc = self._record(identity)
        if proc is not None:
            return ProcessStatus.RUNNING if proc.alive else ProcessStatus.EXITED
        other = self._procs.get(identity.pid)
        if other is not None and other.alive:
            return ProcessStatus.NOT_OURS
        return ProcessStatus.MISSING

    async def is_ours(self, identity: ProcessIdentity) -> bool:
        """Whether the process is running and is the one identified."""
        return await self.status(identity) is ProcessStatus.RUNNING

    async def stop(self, identity: ProcessIdentity, spec: ServiceSpec) -> StopResult:
        """End the process as ``spec.stop_signal`` (or SIGKILL, see :meth:`set_ignore_stop`) would.

        Returns:
            ``exited`` (code ``-stop_signal``), ``killed`` (code ``-9``), ``already_gone``
            (with the code it exited with) or ``not_ours``; ``elapsed_s`` is 0.
        """
        status = await self.status(identity)
        proc = self._record(identity)
        if status is ProcessStatus.NOT_OURS:
            return StopResult(StopOutcome.NOT_OURS, 0.0)
        if proc is None or not proc.alive:
            return StopResult(StopOutcome.ALREADY_GONE, 0.0, None if proc is None else proc.code)
        self.stops.append(proc.name)
        if proc.name in self._ignore_stop:
            proc.end(-signal.SIGKILL)
            return StopResult(StopOutcome.KILLED, 0.0, proc.code, killed=1)
        proc.end(-int(spec.stop_signal))
        return StopResult(StopOutcome.EXITED, 0.0, proc.code)

    async def adopt(
        self, spec: ServiceSpec, expected_cmdline: tuple[str, ...] | None = None
    ) -> AdoptResult:
        """Prove, through the spec's pidfile, a running fake process with the expected argv.

        Returns:
            The identity, or reason ``process_missing`` with a detail.
        """
        await anyio.lowlevel.checkpoint()
        pid = read_pidfile(spec.pidfile)
        if pid is None:
            return AdoptResult(None, PROCESS_MISSING, f"no valid pidfile at {spec.pidfile}")
        proc = self._procs.get(pid)
        if proc is None or not proc.alive:
            return AdoptResult(None, PROCESS_MISSING, f"pid {pid} is not running")
        expected = tuple(expected_cmdline) if expected_cmdline is not None else tuple(spec.argv)
        if proc.identity.cmdline != expected:
            return AdoptResult(None, PROCESS_MISSING, f"pid {pid} belongs to another program")
        return AdoptResult(proc.identity)

    async def clean_stale(self, spec: ServiceSpec) -> tuple[Path, ...]:
        """Remove the spec's lock files and pidfile unless a fake process of the service runs.

        Returns:
            The paths removed, lock files first, the pidfile last.
        """
        await anyio.lowlevel.checkpoint()
        if self.running(spec.name):
            return ()
        removed: list[Path] = []
        for path in (*spec.lock_files, spec.pidfile):
            # Like the real one: only regular files and symlinks, never a directory.
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
        return tuple(removed)

    async def rotate_logs(self, spec: ServiceSpec) -> bool:
        """Never rotates (a fake process writes no log).

        Returns:
            ``False``.
        """
        await anyio.lowlevel.checkpoint()
        return False

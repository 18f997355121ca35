"""The async face of process control: start, wait, stop, adopt, clean up.

One :class:`ProcessControl` per daemon. It remembers the children it spawned
(the ``Popen`` objects, to reap them) and nothing else: adopted processes are
known only by their :class:`ProcessIdentity`, which the caller keeps.

Every blocking call (``/proc`` reads, ``fork``/``exec``, file writes) runs in a
worker thread via ``anyio.to_thread.run_sync``; waiting for an exit is
event-driven (see :mod:`autoheal.procs.exits`).

Stopping a tree works like systemd's ``KillMode=control-group``:

1. prove the PID is still ours (start time), else signal nothing (``not_ours``);
2. collect every descendant *before* signalling, because children reparent to
   init when their parent dies and could no longer be found;
3. send ``stop_signal`` to the process group (only when the process leads its
   own group, which our ``start_new_session`` children do) and to each
   collected descendant, so those that left the group get it too; then SIGCONT,
   as systemd does, so a stopped (SIGSTOPped, hung) process handles it at once;
4. wait up to ``stop_timeout`` for the whole tree to be gone;
5. SIGKILL whatever is left: the group, the collected descendants and any
   descendant forked meanwhile; then reap our child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_thread
import psutil

from autoheal.procs import identity as ident
from autoheal.procs.exits import wait_child_exit, wait_pid_gone
from autoheal.procs.leftovers import prove_ours, remove_stale
from autoheal.procs.logs import needs_rotation, rotate_by_copy
from autoheal.procs.model import (
    AdoptResult,
    ProcessIdentity,
    ProcessStatus,
    ServiceSpec,
    StopOutcome,
    StopResult,
)
from autoheal.procs.spawn import spawn

__all__ = ["ProcessControl"]

#: After SIGKILL a process dies at once unless stuck in the kernel (D state); don't hang on it.
_KILL_WAIT_S = 5.0
#: Exit codes of reaped children kept for late callers of wait_exit/status.
_EXIT_MEMORY = 256


class ProcessControl:
    """Spawns, watches, stops and adopts service processes (psutil + pidfd).

    Args:
        use_pidfd: wait for exits on pidfds (Linux ≥ 5.3); ``False`` forces the
            polling fallback (also used automatically when pidfds are missing).
        max_poll_s: the longest interval of the polling fallback.
    """

    def __init__(self, *, use_pidfd: bool = True, max_poll_s: float = 0.05) -> None:
        self._use_pidfd = use_pidfd
        self._max_poll_s = max_poll_s
        # pid -> (identity, child, service name); only unreaped children of ours.
        self._children: dict[int, tuple[ProcessIdentity, subprocess.Popen[bytes], str]] = {}
        self._exit_codes: OrderedDict[tuple[int, float], int] = OrderedDict()
        self._parents = ident.ParentMap()  # one /proc walk for the stops of a shutdown

    # -- starting -----------------------------------------------------------------

    async def start(self, spec: ServiceSpec) -> ProcessIdentity:
        """Start the service: own session, log file, pidfile.

        Returns:
            The identity of the new process.

        Raises:
            SpawnError: nothing was started (see its ``reason``).
        """
        popen, identity = await anyio.to_thread.run_sync(spawn, spec)
        self._children[popen.pid] = (identity, popen, spec.name)
        return identity

    def owned(self) -> list[ProcessIdentity]:
        """The children we spawned and have not reaped yet."""
        return [entry[0] for entry in self._children.values()]

    # -- watching -----------------------------------------------------------------

    def _own_child(self, identity: ProcessIdentity) -> subprocess.Popen[bytes] | None:
        entry = self._children.get(identity.pid)
        if entry is None or entry[0].create_time != identity.create_time:
            return None
        return entry[1]

    def _reaped(self, identity: ProcessIdentity, popen: subprocess.Popen[bytes], code: int) -> int:
        """Forget a reaped child, remembering its exit code for late callers."""
        entry = self._children.get(identity.pid)
        if entry is not None and entry[1] is popen:
            del self._children[identity.pid]
            key = (identity.pid, identity.create_time)
            self._exit_codes[key] = code
            while len(self._exit_codes) > _EXIT_MEMORY:
                self._exit_codes.popitem(last=False)
        return code

    async def wait_exit(self, identity: ProcessIdentity) -> int | None:
        """Return as soon as the process exits.

        Returns:
            For our own child, its exit code (negative signal number when killed
            by a signal), and the child is reaped. For an adopted process, ``None``:
            only its parent can learn its exit code; it returns at once when the PID
            is already gone or no longer the identified process.
        """
        popen = self._own_child(identity)
        if popen is not None:
            code = await wait_child_exit(
                popen, use_pidfd=self._use_pidfd, max_poll_s=self._max_poll_s
            )
            return self._reaped(identity, popen, code)
        known = self._exit_codes.get((identity.pid, identity.create_time))
        if known is not None:
            return known
        await wait_pid_gone(
            identity.pid,
            identity.create_time,
            use_pidfd=self._use_pidfd,
            max_poll_s=self._max_poll_s,
        )
        return None

    async def status(self, identity: ProcessIdentity) -> ProcessStatus:
        """Classify the process; our own exited child is reaped and reported ``exited``."""
        if self._exit_code_now(identity) is not None:
            return ProcessStatus.EXITED
        if (identity.pid, identity.create_time) in self._exit_codes:
            return ProcessStatus.EXITED
        return await anyio.to_thread.run_sync(ident.status_of, identity)

    async def is_ours(self, identity: ProcessIdentity) -> bool:
        """Whether the PID is alive and still the process we identified (no PID reuse)."""
        return await self.status(identity) is ProcessStatus.RUNNING

    # -- stopping -----------------------------------------------------------------

    async def stop(self, identity: ProcessIdentity, spec: ServiceSpec) -> StopResult:
        """Stop the process tree: ``spec.stop_signal``, grace ``spec.stop_timeout``, SIGKILL.

        Only a PID that still proves to be ours is signalled.

        Returns:
            What happened, how long it took, and the exit code of our own child.
        """
        started_at = time.monotonic()

        def result(outcome: StopOutcome, code: int | None = None, killed: int = 0) -> StopResult:
            return StopResult(outcome, time.monotonic() - started_at, code, killed)

        status = await self.status(identity)
        if status is ProcessStatus.NOT_OURS:
            return result(StopOutcome.NOT_OURS)
        if status is not ProcessStatus.RUNNING:
            return result(StopOutcome.ALREADY_GONE, self._exit_code_now(identity))
        main = await anyio.to_thread.run_sync(
            ident.live_process, identity.pid, identity.create_time
        )
        if main is None:
            return result(StopOutcome.ALREADY_GONE, self._exit_code_now(identity))
        descendants = await anyio.to_thread.run_sync(
            ident.collect_descendants, main, self._parents
        )
        await anyio.to_thread.run_sync(_signal_tree, main, descendants, spec.stop_signal)

        code: int | None = None
        with anyio.move_on_after(spec.stop_timeout):
            code = await self.wait_exit(identity)
            await self._wait_all_gone(descendants)
            return result(StopOutcome.EXITED, code)

        main_alive = await self.status(identity) is ProcessStatus.RUNNING
        killed = await anyio.to_thread.run_sync(_kill_rest, main, descendants, main_alive)
        with anyio.move_on_after(_KILL_WAIT_S):
            code = await self.wait_exit(identity)
        if code is None:
            code = self._exit_code_now(identity)
        outcome = StopOutcome.KILLED if main_alive else StopOutcome.EXITED
        return result(outcome, code, killed)

    def _exit_code_now(self, identity: ProcessIdentity) -> int | None:
        """The exit code of our own child that is already gone (reaping it if needed)."""
        popen = self._own_child(identity)
        if popen is not None:
            code = popen.poll()
            return None if code is None else self._reaped(identity, popen, code)
        return self._exit_codes.get((identity.pid, identity.create_time))

    async def _wait_all_gone(self, procs: Sequence[psutil.Process]) -> None:
        for proc in procs:
            await wait_pid_gone(
                proc.pid,
                proc.create_time(),  # cached by collect_descendants: no /proc read here
                use_pidfd=self._use_pidfd,
                max_poll_s=self._max_poll_s,
            )

    # -- adopting and cleaning ----------------------------------------------------

    async def adopt(
        self, spec: ServiceSpec, expected_cmdline: tuple[str, ...] | None = None
    ) -> AdoptResult:
        """Adopt a process we did not start, through the spec's pidfile.

        The PID must be alive, not a zombie, and run the expected command line
        (``spec.argv`` unless given; see :func:`~autoheal.procs.identity.cmdline_matches`).
        A PID that belongs to another program is ``process_missing`` and is never
        signalled, here or later.

        Returns:
            The proven identity, or reason ``process_missing`` with a detail.
        """
        return await anyio.to_thread.run_sync(prove_ours, spec, expected_cmdline)

    async def clean_stale(self, spec: ServiceSpec) -> tuple[Path, ...]:
        """Before a restart: remove the spec's lock files and pidfile unless a live process of
        the service holds them.

        Returns:
            The paths removed.
        """
        alive = False
        for identity, _, name in list(self._children.values()):
            if name == spec.name and await self.status(identity) is ProcessStatus.RUNNING:
                alive = True
        return await anyio.to_thread.run_sync(lambda: remove_stale(spec, service_alive=alive))

    async def rotate_logs(self, spec: ServiceSpec) -> bool:
        """Rotate the service's log if it is over ``spec.log_max_bytes`` (safe while it runs).

        Returns:
            ``True`` when the log was rotated.

        Raises:
            OSError: the copy or truncate failed.
        """
        # A stat is cheaper than a thread hop: the copy goes to a thread only when due
        # (checked every few beats for every service: at 500 services, 500 hops each time).
        if not needs_rotation(spec.log_file, spec.log_max_bytes):
            return False
        return await anyio.to_thread.run_sync(
            rotate_by_copy, spec.log_file, spec.log_max_bytes, spec.log_backups
        )


def _leads_own_group(pid: int) -> bool:
    """Whether ``pid`` leads a process group that is not the supervisor's own."""
    try:
        return os.getpgid(pid) == pid and pid != os.getpgrp()
    except OSError:
        return False


def _signal_tree(main: psutil.Process, descendants: list[psutil.Process], sig: int) -> None:
    """Send ``sig`` (then SIGCONT) to the main process's group (or itself) and each descendant."""
    follow_up = () if sig in (signal.SIGKILL, signal.SIGCONT) else (signal.SIGCONT,)
    for each in (sig, *follow_up):
        if _leads_own_group(main.pid) and main.is_running():
            try:
                os.killpg(main.pid, each)
            except OSError:
                pass
        else:
            ident.signal_each([main], each)
        ident.signal_each(descendants, each)


def _kill_rest(main: psutil.Process, descendants: list[psutil.Process], main_alive: bool) -> int:
    """SIGKILL what is left of the tree; return how many processes got it."""
    rest = list(descendants)
    if main_alive:
        # Children forked during the grace period were not in the first collection.
        known = {proc.pid for proc in rest}
        rest.extend(p for p in ident.collect_descendants(main) if p.pid not in known)
    rest = ident.still_running(rest)
    if main_alive:
        rest.insert(0, main)
    if _group_still_ours(main, rest, main_alive):
        try:
            os.killpg(main.pid, signal.SIGKILL)
        except OSError:
            pass
    return ident.signal_each(rest, signal.SIGKILL)


def _group_still_ours(main: psutil.Process, alive: list[psutil.Process], main_alive: bool) -> bool:
    """Whether ``killpg(main.pid)`` can only hit the main process's own group.

    With the leader alive that is plain. With the leader gone, a PID is never
    reused while it still names a process group, so a live member of the group
    proves the group is the same one.
    """
    if main_alive:
        return _leads_own_group(main.pid)
    if main.pid == os.getpgrp():
        return False
    for proc in alive:
        try:
            if os.getpgid(proc.pid) == main.pid:
                return True
        except OSError:
            continue
    return False

"""The simulated processes: the verified fake process control, with seeded faults.

:class:`SimProcessControl` is :class:`~autoheal.testing.FakeProcessControl` (verified
against the real control by ``tests/procs/test_control_contract.py``) that also records,
for each start the daemon asks for, what the daemon knew then (its failsafe), and lets
a start be slow (the process is up, its first heartbeat comes later). Crashes, exit
codes, a broken binary (crash on start), a missing executable and a process that
ignores its stop signal are the fake's own controls. A hang is a live process whose
heartbeat stops (:func:`write_heartbeats`). PID reuse:
:meth:`SimProcessControl.reuse_pid_of` gives the PID of a service's process that
exited to another program (another command line, another start time), as the kernel
does once PIDs wrap, while the service's pidfile may still name it. The daemon must
neither adopt it nor signal it (:func:`foreign_harmed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import anyio

from autoheal.procs.model import ProcessIdentity, ServiceSpec
from autoheal.sim.invariants import StartRecord
from autoheal.store.atomic import write_json_atomic
from autoheal.testing import FakeProcessControl

__all__ = ["SimProcessControl", "foreign_harmed", "write_heartbeats"]


class SimProcessControl(FakeProcessControl):
    """The fake, plus a record of starts against the daemon's failsafe, and slow starts.

    Args:
        daemon_now: the running daemon's failsafe reason now (None when none holds), and
            whether it is starting (adopting or starting its services).
    """

    def __init__(self, daemon_now: Callable[[], tuple[str | None, bool]]) -> None:
        super().__init__()
        self._daemon_now = daemon_now
        #: Every start asked for (a spawn that then fails included), in order.
        self.records: list[StartRecord] = []
        #: pid → when its first heartbeat may come (a slow start).
        self.ready_at: dict[int, float] = {}
        #: name → the delay the next start of it gets.
        self.slow_next: dict[str, float] = {}
        #: pids whose heartbeat stopped while they live (a hang).
        self.hung: set[int] = set()
        #: name → for each process action dispatched and not started yet: when the
        #: core decided it, against the failsafe (oldest first; see ``Seat``).
        self.decided: dict[str, list[str]] = {}
        #: PIDs now another program's (:meth:`reuse_pid_of`).
        self.foreign: set[int] = set()
        #: name → the PID of its newest process.
        self.newest: dict[str, int] = {}

    def reuse_pid_of(self, name: str) -> int | None:
        """Give the PID of ``name``'s newest process, if it exited, to another program.

        Returns:
            The PID now another program's, or None (the newest still runs, or none was).
        """
        newest = self.newest.get(name)
        if newest is None or self.alive(newest) or newest in self.foreign:
            return None
        self.reuse_pid(newest)
        self.foreign.add(newest)
        return newest

    async def start(self, spec: ServiceSpec) -> ProcessIdentity:
        now = anyio.current_time()
        failsafe, boot = self._daemon_now()
        queued = self.decided.get(spec.name)
        decided = None if boot or not queued else queued.pop(0)
        self.records.append(StartRecord(now, spec.name, failsafe, boot, decided))
        identity = await super().start(spec)
        self.newest[spec.name] = identity.pid
        self.ready_at[identity.pid] = now + self.slow_next.pop(spec.name, 0.0)
        return identity

    def beating(self, name: str) -> int | None:
        """The pid of ``name``'s process if it runs, is not hung and is past its slow start."""
        identity = self.current(name)
        if identity is None or identity.pid in self.hung:
            return None
        if self.ready_at.get(identity.pid, 0.0) > anyio.current_time():
            return None
        return identity.pid


def foreign_harmed(procs: SimProcessControl, adopted: Iterable[int | None]) -> list[str]:
    """Another program's process ended (signalled by the daemon), or taken for a service."""
    out = []
    for pid in sorted(procs.foreign):
        if not procs.alive(pid):
            out.append(f"pid {pid}, another program's since its reuse, was ended")
    out += [
        f"pid {pid}, another program's, is held as a service"
        for pid in adopted
        if pid is not None and pid in procs.foreign
    ]
    return out


async def write_heartbeats(
    procs: SimProcessControl, files: dict[str, Path], epoch: float, every: float = 2.0
) -> None:
    """Each service's heartbeat file, as a healthy process writes it, while it beats."""
    seq = 0
    while True:
        seq += 1
        for name, path in files.items():
            pid = procs.beating(name)
            if pid is not None:
                doc = {
                    "component": name,
                    "pid": pid,
                    "ts": epoch + anyio.current_time(),
                    "seq": seq,
                }
                write_json_atomic(path, doc, durable=False)
        await anyio.sleep(every)

"""The real daemon, as the simulator runs it: started, SIGKILLed, stopped, restarted.

:class:`SimDaemon` is :class:`autoheal.daemon.loop.Daemon` with these seams, each an
override of one of its own steps, nothing else changed:

* ``_start`` first shows the simulator the interpreter (so a start can be checked
  against the daemon's failsafe, even the starts made while it boots) and lets it
  hear each process action as it is dispatched (was a failsafe holding when the core
  decided it?); ``_adopt_or_start`` says while it runs (a start by a starting daemon
  is told apart);
* ``_signals``: a real signal to the simulator's process (Ctrl-C, ``kill``) ends the
  run instead of stopping one simulated daemon gracefully (SIGHUP's reload is not
  simulated; the operator's reload goes through the config watch);
* ``_stop`` (the graceful stop: stop the services, write the last state and health)
  is skipped when the daemon is "SIGKILLed". A kill cancels the daemon's scope: its
  tasks unwind where they are, in-flight process work is abandoned, nothing is
  written on the way out; the runtime lock and the journal's connection are released
  by the ``finally`` blocks, as the kernel releases them for a killed process. The
  fake processes live on (the next daemon adopts them by their pidfiles), and the next
  daemon is a new :class:`SimDaemon` on the same runtime files.

Each daemon is one process to the command queue: :func:`claimer_identities` gives
each its own claimer identity (PID and start time), and tells the queue that the
earlier ones are gone, so a claim left by a killed daemon is settled
(``claimer_died``) by the next one, as on a real host.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from autoheal.core.actions import ProcessAction
from autoheal.core.commands import ProcessSeen
from autoheal.core.machine import Decision
from autoheal.core.observations import Observation
from autoheal.core.state import FailsafeState
from autoheal.daemon.commands import PendingCommand
from autoheal.daemon.interpreter import Interpreter, Item
from autoheal.daemon.loop import Daemon
from autoheal.daemon.parts import Parts
from autoheal.daemon.persist import Persist
from autoheal.daemon.reload import Reloader
from autoheal.daemon.systemd import SystemdNotifier
from autoheal.sim.replay import StepLog
from autoheal.store import commands as queue

__all__ = ["DAEMON_PID_BASE", "Seat", "SimDaemon", "claimer_identities"]

#: Simulated daemons' PIDs: above Linux's PID_MAX_LIMIT and the fake processes' range.
DAEMON_PID_BASE = 7_000_000


@dataclass
class Seat:
    """Where the simulator sees one daemon: its interpreter, and how it ended.

    ``on_dispatch`` hears each process action as the interpreter hands it to the
    process work, with when the core decided it: ``in_failsafe`` (a failsafe held
    before and after the step), ``same_step`` (the step that decided it also entered
    the failsafe), ``before`` (no failsafe held after the step), ``reentered`` (a
    failsafe held before and after, but not the same one: cleared and entered again).
    """

    interpreter: Interpreter | None = None
    persist: Persist | None = None
    booting: bool = False
    sigkill: bool = False
    on_dispatch: Callable[[ProcessAction, str], None] | None = None
    pids: Callable[[], dict[str, int | None]] = dict
    """The PIDs the daemon holds as its services' (``Services.pids``)."""
    resumed: FailsafeState | None = None
    """The failsafe in the state the daemon resumed (its state file), before any step."""
    steps: StepLog = field(default_factory=StepLog)
    """Every step of the core the interpreter made (:mod:`autoheal.sim.replay`)."""


@dataclass(frozen=True)
class SimDaemon(Daemon):
    seat: Seat = field(default_factory=Seat)

    async def _start(
        self,
        tg: TaskGroup,
        parts: Parts,
        systemd: SystemdNotifier,
        send: Callable[[Item], Awaitable[None]],
        reloader: Reloader,
    ) -> None:
        self.seat.interpreter = parts.interpreter
        self.seat.pids = parts.services.pids
        self.seat.resumed = parts.runtime.state.failsafe
        self.seat.persist = parts.persist
        seat, work, runtime = self.seat, parts.processes, parts.runtime
        dispatch, step = work.dispatch, runtime.step
        when: dict[int, str] = {}  # id of an action not dispatched yet → when decided

        def stepped(obs: Observation, now: float) -> tuple[Decision, bool]:
            seat.steps.record(runtime.state, obs, now, runtime.policy)
            held = runtime.state.failsafe
            before = held is not None
            decision, changed = step(obs, now)
            after = decision.state.failsafe is not None
            # A step that ends with no failsafe decided outside one (a clear restarts
            # the parked components in the step that clears).
            label = "before" if not after else "in_failsafe" if before else "same_step"
            if label == "in_failsafe" and decision.state.failsafe != held:
                label = "reentered"  # cleared and entered again within the step
            for action in decision.actions:
                when[id(action)] = label
            return decision, changed

        def heard(action: ProcessAction, command: PendingCommand | None) -> None:
            label = when.pop(id(action), "before")
            if seat.on_dispatch is not None:
                seat.on_dispatch(action, label)
            dispatch(action, command)

        runtime.step = stepped  # type: ignore[method-assign]
        work.dispatch = heard  # type: ignore[method-assign]
        await super()._start(tg, parts, systemd, send, reloader)

    async def _adopt_or_start(self, parts: Parts) -> None:
        self.seat.booting = True
        try:
            await super()._adopt_or_start(parts)
        finally:
            self.seat.booting = False

    async def _signals(
        self,
        signals: AsyncIterator[signal.Signals],
        shutdown: anyio.CancelScope,
        reloader: Reloader,
    ) -> None:
        async for signum in signals:
            # The simulator's own process was signalled (Ctrl-C, kill): end the run; a
            # simulated daemon is stopped by the simulator, never by a real signal.
            raise KeyboardInterrupt(signal.Signals(signum).name)

    async def _stop(self, parts: Parts, systemd: SystemdNotifier) -> None:
        if self.seat.sigkill:
            return  # SIGKILL: no graceful stop
        await super()._stop(parts, systemd)


@dataclass
class Incarnations:
    """The simulated daemons' identities: the newest is alive, the others are gone."""

    count: int = 0
    alive: bool = False

    def identity(self) -> tuple[int, float]:
        return DAEMON_PID_BASE + self.count, float(self.count)

    def observe(self, pid: int, real: object) -> ProcessSeen:
        if DAEMON_PID_BASE <= pid < DAEMON_PID_BASE + 1_000_000:
            if self.alive and pid == DAEMON_PID_BASE + self.count:
                return ProcessSeen(exists=True, start_time=float(self.count))
            return ProcessSeen(exists=False)
        return real(pid)  # type: ignore[operator, no-any-return]


@contextmanager
def claimer_identities(incarnations: Incarnations) -> Iterator[None]:
    """For the run: the queue's claimer identity and its "is the claimer gone" are the
    simulated daemons' (restored on exit)."""
    own, settle = queue.own_identity, queue.settle_dead_claims
    observe = functools.partial(incarnations.observe, real=queue.observe_process)
    queue.own_identity = incarnations.identity
    queue.settle_dead_claims = functools.partial(settle, observe=observe)
    try:
        yield
    finally:
        queue.own_identity, queue.settle_dead_claims = own, settle

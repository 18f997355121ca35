"""The interpreter: facts and commands in, the core steps, its actions carried out.

Every source of facts is a task of its own and sends into one memory stream:
probe runners, exit watchers, process work (``SpawnFinished``), the command
queue, the fleet agent, the heartbeat's :data:`TICK`. One consumer takes the items
in order (:meth:`Interpreter.consume`) and applies each (:meth:`Interpreter.apply`):
the core decides (:class:`~autoheal.daemon.runtime.Runtime`), and each action goes
to the part that carries it out, by its type (:meth:`Interpreter.execute`): process
work to its own task (``processes``), kill-switch writes to ``killswitch`` (whose
outcome the core hears of), notices, alerts and transition lines to ``effects``.

A command is answered as the core's decision says (``Decision.reply_after``): by the
process action it names (in that action's task), or here, once the actions are
carried out. The shell never guesses.

The same interpreter runs a direct command (no daemon): :meth:`Interpreter.settle`
applies what the process work reports until none runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from autoheal.config import Config
from autoheal.core.actions import (
    Action,
    ClearAlert,
    LogSwitchEvent,
    LogTransition,
    RaiseAlert,
    RemoveRiskLatch,
    RemoveStop,
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
    WriteFlags,
    WriteStop,
)
from autoheal.core.bot_api import bot_mode
from autoheal.core.commands import SCOPED_COMMANDS, is_chaos
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.liveness import stale_after_s
from autoheal.core.observations import (
    DeadlineReached,
    Observation,
    SpawnFinished,
    SwitchFilesRead,
    SwitchWriteFailed,
)
from autoheal.core.switch import LATCH, SwitchWrite, due_writes
from autoheal.daemon.bot_api import BotApi
from autoheal.daemon.clock import Clock
from autoheal.daemon.commands import CommandBridge, PendingCommand, observation_for
from autoheal.daemon.effects import Effects
from autoheal.daemon.injector import FaultInjector
from autoheal.daemon.killswitch import KillSwitch
from autoheal.daemon.persist import Persist
from autoheal.daemon.processes import ProcessWork
from autoheal.daemon.runtime import Runtime
from autoheal.daemon.scoped import run_scoped_command

__all__ = ["TICK", "Executors", "Interpreter", "Item", "Tick"]

log = logging.getLogger("autoheal")

#: The most queued items applied before the state is saved and health written.
BATCH_MAX = 1000


@dataclass(frozen=True, slots=True)
class Tick:
    """The heartbeat's item: the consumer turns (it proves the loop lives); no fact."""


TICK = Tick()

#: What the consumer takes from the stream.
Item = Observation | PendingCommand | Tick


@dataclass(frozen=True, slots=True)
class Executors:
    """The parts that carry out the core's actions and the operator's commands.

    Attributes:
        killswitch: the kill-switch files.
        effects: notices, alerts, transition lines, journal events.
        processes: process actions, each in its task.
        commands: the command queue's results.
        injector: the fault injector of a ``--chaos`` daemon, else None.
        bot_api: the sender of ``[bot_api]``'s calls, told of each new mode, else None.
    """

    killswitch: KillSwitch
    effects: Effects
    processes: ProcessWork
    commands: CommandBridge
    injector: FaultInjector | None = None
    bot_api: BotApi | None = None


class Interpreter:
    """Steps the core and carries out its decisions (see the module docstring).

    Args:
        runtime: the core's state.
        executors: who carries out what.
        clock: the daemon's clock.
        persist: the state file and the health document.
        config: the config in force (the beat's interval, for the watchdog).
    """

    def __init__(
        self,
        runtime: Runtime,
        executors: Executors,
        *,
        clock: Clock,
        persist: Persist,
        config: Callable[[], Config],
    ) -> None:
        self.runtime = runtime
        self._x = executors
        self._clock = clock
        self._persist = persist
        self._config = config
        self._batching = False
        self._reading_switch = False
        #: A read a switch write asked for, held until the decision's actions are done.
        self._unread: SwitchFilesRead | None = None
        self._applying = 0
        #: When the consumer last turned (the watchdog's proof that the loop lives).
        self.last_iteration = clock.now()

    # ------------------------------------------------------------------ the core

    def apply(self, obs: Observation, command: PendingCommand | None = None) -> bool:
        """Step the core and carry out its actions. Returns False when a command was refused.

        Args:
            obs: a fact, or the observation of ``command``.
            command: the operator's command ``obs`` stands for, if any: answered as the
                core decides.
        """
        switch = self.runtime.state.switch
        try:
            decision, changed = self.runtime.step(obs, self._clock.now())
        except (IllegalCommandError, CommandRefusedError) as exc:
            if command is not None:
                self._x.commands.fail(command, exc)
            return False
        outer, self._unread = self._unread, None
        self._applying += 1
        try:
            for action in decision.actions:
                # The core names the one action whose outcome answers the command, if any.
                answers = command is not None and action is decision.reply_after
                if self._unread is not None and isinstance(action, SwitchWrite):
                    continue  # stale: the read below decides, the sync writes what is due
                self.execute(action, command if answers else None)
        finally:
            self._applying -= 1
            deferred, self._unread = self._unread, outer
        if changed:
            self._persist.mark_state()
            if not self._batching or command is not None:  # saved before it is answered
                self._persist.save_state()
        elif decision.state.switch != switch:  # the health document shows it
            self._persist.mark_health()
        bot = self._x.bot_api
        if bot is not None:
            if isinstance(obs, SpawnFinished) and obs.ok:
                bot.restarted(obs.component)
            if changed:
                bot.observe(bot_mode(decision.state))
        if deferred is not None:
            # An edit the watch had not told us of, found by one of this decision's
            # writes: read now that the decision is carried out (the journal holds the
            # core's steps in the order they were taken), before a command is answered.
            self._read_switch(deferred)
        if command is not None and decision.reply_after is None:
            self._x.commands.succeed(command, {"dor": self.runtime.dor()})
        return True

    def execute(self, action: Action, command: PendingCommand | None) -> None:
        """Hand ``action`` to the part that carries it out (``command``: it answers that)."""
        match action:
            case RestartProcess() | StartProcess() | StopProcess():
                self._x.processes.dispatch(action, command)
            case WriteFlags() | WriteStop() | RemoveStop() | RemoveRiskLatch():
                self._write_switch(action)
                self._persist.mark_health()
            case RaiseAlert() | ClearAlert():
                self._x.effects.execute(action)
                self._persist.mark_health()
            case SendNotice() | LogTransition() | LogSwitchEvent():
                self._x.effects.execute(action)

    # ------------------------------------------------------------------ the kill switch

    def reconcile_switch(self, *, startup: bool = False) -> None:
        """Read the kill-switch files (the core steps what an operator did), then write
        what is due."""
        self._read_switch(self._x.killswitch.read(startup=startup))

    def _read_switch(self, read: SwitchFilesRead) -> None:
        reading, self._reading_switch = self._reading_switch, True
        try:
            self.apply(read)
            self.sync_switch()
        finally:
            self._reading_switch = reading

    def sync_switch(self) -> None:
        """Write whatever the files lack (a failed write's retry once its backoff ran out)."""
        state = self.runtime.state
        for action in due_writes(state.switch, state, self._clock.now()):
            self._write_switch(action)

    def _write_switch(self, action: SwitchWrite) -> None:
        outcome = self._x.killswitch.write(action, just_read=self._reading_switch)
        if outcome is None:
            return
        if isinstance(outcome, SwitchFilesRead):
            # An edit the watch has not told us of yet: read it (and write what is then
            # due) once the decision being carried out is done (``apply``).
            if not self._applying:
                self._read_switch(outcome)
            elif self._unread is None:
                self._unread = outcome
            return
        self.apply(outcome)
        if isinstance(outcome, SwitchWriteFailed) and outcome.key != LATCH:
            failure = self.runtime.state.switch.failures[outcome.key]
            log.error(
                "%s_%s_failed errno=%s detail=%s attempt=%d retry_in_s=%.1f; "
                "the failsafe holds in memory and in every file that can be written",
                outcome.key,
                outcome.op,
                outcome.errno,
                outcome.detail,
                failure.attempts,
                failure.retry_at - self._clock.now(),
            )

    # ------------------------------------------------------------------ items

    def take(self, item: Item) -> None:
        """Apply one item of the stream."""
        if isinstance(item, Tick):
            return
        if isinstance(item, PendingCommand):
            self._command(item)
        else:
            self.apply(item)

    def _command(self, pending: PendingCommand) -> None:
        commands = self._x.commands
        if not commands.start(pending):
            return  # its start could not be recorded: not run, answered as failed
        command = pending.command
        if is_chaos(command.type):
            if self._x.injector is None:
                commands.fail_reason(
                    pending,
                    "chaos_disabled",
                    "the daemon was not started with --chaos; chaos commands are refused",
                    refused=True,
                )
                return
            self._x.injector(pending)
            return
        if command.type in SCOPED_COMMANDS:
            run_scoped_command(self._x.killswitch, commands, pending, self._clock.wall())
            self._persist.mark_health()  # the health document shows the scoped halts
            return
        obs = observation_for(command)
        if obs is None:
            commands.fail_reason(
                pending, "unknown_command", f"unknown command type {command.type!r}"
            )
            return
        self.apply(obs, pending)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within: a change marks the state due (saved once, at the next flush)."""
        batching, self._batching = self._batching, True
        try:
            yield
        finally:
            self._batching = batching

    async def consume(self, receive: MemoryObjectReceiveStream[Item]) -> None:
        """The one consumer: items in order, and the core's deadlines.

        It sleeps until an item arrives or the core's ``wake_at``, never on a tick: the
        heartbeat's :data:`TICK` is what proves each beat that it still turns.
        """
        persist, processes, clock = self._persist, self._x.processes, self._clock
        while True:
            self.last_iteration = now = clock.now()
            timeout = math.inf
            if self.runtime.wake_at is not None:
                timeout = max(0.0, self.runtime.wake_at - now)
            if persist.dirty() and processes.in_flight == 0:
                timeout = min(timeout, max(0.0, persist.flush_after - now))
            item: Item | None = None
            with clock.move_on_at(now + timeout):
                item = await receive.receive()
            with self.batch():
                self.take(DeadlineReached() if item is None else item)
                # What else is queued already joins this batch: one save, one document.
                for _ in range(BATCH_MAX):
                    try:
                        self.take(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
            # While a restart's spawn runs, its SpawnFinished (or the next beat) flushes:
            # at 500 services a flush is about 15 ms of serialising that would otherwise
            # sit between the exit and the new process. And flushes take at most
            # FLUSH_DUTY of the loop's time: a burst of changes is written together.
            tick = isinstance(item, Tick)
            if (
                persist.dirty()
                and (processes.in_flight == 0 or tick)
                and (clock.now() >= persist.flush_after or tick)
            ):
                persist.flush()

    async def settle(self, receive: MemoryObjectReceiveStream[Item]) -> None:
        """Direct mode: apply what the process work reports, until none runs."""
        processes = self._x.processes
        while True:
            await processes.idle()
            try:
                item = receive.receive_nowait()
            except anyio.WouldBlock:
                if processes.in_flight == 0:
                    return
                continue
            self.take(item)

    def loop_healthy(self) -> bool:
        """Whether the consumer turned recently (``WATCHDOG=1`` is sent only then)."""
        interval = self._config().daemon.heartbeat_interval
        return self._clock.now() - self.last_iteration < stale_after_s(interval)

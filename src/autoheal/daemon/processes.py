"""The core's process actions, carried out: one task per action, never on the consumer.

Stopping a process tree takes up to its grace period (30 s), so each
``StopProcess``, ``StartProcess`` and ``RestartProcess`` runs in a task of its own
in the daemon's task group, under the component's lock (two never interleave), and
reports back through the observation stream as a ``SpawnFinished``, like every
other fact. Probing and the kill switch never wait for it.

An operator's command whose answer the core tied to this very action
(``Decision.reply_after``) is answered here, with the outcome: the new PID, why the
spawn failed, or the stop. Nothing else is answered here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from autoheal.config import DEBUG_INVOCATION, Config
from autoheal.core.actions import ProcessAction, RestartProcess, StopProcess
from autoheal.core.observations import Observation, SpawnFinished
from autoheal.daemon.commands import CommandBridge, PendingCommand
from autoheal.daemon.persist import Persist
from autoheal.daemon.services import Services

__all__ = ["ProcessWork"]


class ProcessWork:
    """Runs process actions in tasks and reports each outcome.

    Args:
        services: the service processes.
        config: the config in force (which heartbeat files a restart must remove).
        task_group: where each action's task runs.
        observe: sends an observation to the consumer.
        poke: makes a component's probes check now (right after a spawn).
        commands: finishes the command an action answers.
        persist: told that a PID changed (the health document shows PIDs).
    """

    def __init__(
        self,
        services: Services,
        *,
        config: Callable[[], Config],
        task_group: TaskGroup,
        observe: Callable[[Observation], Awaitable[None]],
        poke: Callable[[str], None],
        commands: CommandBridge,
        persist: Persist,
    ) -> None:
        self._services = services
        self._config = config
        self._tg = task_group
        self._observe = observe
        self._poke = poke
        self._commands = commands
        self._persist = persist
        #: Process actions running now (the consumer defers flushes meanwhile).
        self.in_flight = 0
        self._idle = anyio.Event()
        self._idle.set()

    def dispatch(self, action: ProcessAction, command: PendingCommand | None) -> None:
        """Start ``action`` in its own task; ``command`` is the one it answers, if any."""
        self.in_flight += 1
        if self._idle.is_set():
            self._idle = anyio.Event()
        self._tg.start_soon(self._run, action, command)

    async def idle(self) -> None:
        """Return once no process action runs (the direct mode's end)."""
        await self._idle.wait()

    async def spawn_new(self, name: str, *, debug: bool = False) -> tuple[bool, str]:
        """Start ``name``; a replaced process's heartbeat must not verify its successor.

        ``debug``: the core's restart after a failure (``RestartProcess.debug``): the
        service's ``debug_environment`` and ``AUTOHEAL_DEBUG_INVOCATION=1`` are added.
        """
        svc = self._config().services[name]
        stale = tuple(pc.path for pc in svc.probes if pc.path is not None)
        extra = None
        if debug and svc.debug_environment is not None:
            extra = {**svc.debug_environment, DEBUG_INVOCATION: "1"}
        return await self._services.start(name, stale_files=stale, extra_env=extra)

    async def _run(self, action: ProcessAction, command: PendingCommand | None) -> None:
        try:
            await self._work(action, command)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def _work(self, action: ProcessAction, command: PendingCommand | None) -> None:
        name = action.component
        services = self._services
        async with services.busy(name):
            services.forget_own_exits(name)
            if isinstance(action, RestartProcess | StopProcess):
                await services.stop(name, action.reason)
            if isinstance(action, StopProcess):
                if command is not None:
                    self._commands.succeed(command, {"stopped": name})
                self._persist.mark_health()
                return
            debug = isinstance(action, RestartProcess) and action.debug
            ok, reason = await self.spawn_new(name, debug=debug)
            self._persist.mark_health()
            await self._observe(SpawnFinished(name, ok, reason))
            self._poke(name)
            if command is None:
                return
            if ok:
                identity = services.identity(name)
                pid = identity.pid if identity else None
                self._commands.succeed(command, {"component": name, "pid": pid})
            else:
                self._commands.fail_reason(command, reason)

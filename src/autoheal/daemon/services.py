"""The shell's side of the supervised processes: who is running, starting, stopping, exits.

One :class:`Services` per daemon. It knows each component's current process
identity and a *generation* counter: every stop or replacement we do ourselves
bumps it, so the exit watcher of a process we are replacing stays silent and
only an exit nobody asked for becomes a ``ProcessExited`` observation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from autoheal.core import Observation, ProcessExited
from autoheal.core import reasons as R
from autoheal.daemon.effects import JournalEvent
from autoheal.procs import ProcessControlLike, ProcessIdentity, ServiceSpec, SpawnError

log = logging.getLogger("autoheal")


@dataclass
class _Proc:
    identity: ProcessIdentity | None = None
    generation: int = 0
    busy: anyio.Lock = field(default_factory=anyio.Lock)


class Services:
    """Starts, stops, adopts and watches the service processes.

    Args:
        specs: the process spec per component (shared with the daemon; reload updates it).
        control: the psutil/pidfd process control.
        observe: sends an observation to the daemon's loop.
        journal_event: records a journal event.
        task_group: where exit watchers run (the daemon's).
        watch_exits: False in the CLI's direct mode, where nobody stays to watch.
    """

    def __init__(
        self,
        specs: Mapping[str, ServiceSpec],
        control: ProcessControlLike,
        *,
        observe: Callable[[Observation], Awaitable[None]],
        journal_event: JournalEvent,
        task_group: TaskGroup,
        watch_exits: bool = True,
        may_spawn: Callable[[], bool] = lambda: True,
    ) -> None:
        self.specs = specs
        self._may_spawn = may_spawn
        self.control = control
        self._observe = observe
        self._journal = journal_event
        self._watch_exits = watch_exits
        self._procs: dict[str, _Proc] = {}
        self._task_group = task_group
        self.stopping = False

    def _proc(self, name: str) -> _Proc:
        return self._procs.setdefault(name, _Proc())

    def __contains__(self, name: str) -> bool:
        return name in self.specs

    def identity(self, name: str) -> ProcessIdentity | None:
        return self._proc(name).identity

    def pid(self, name: str) -> int | None:
        """The live PID of ``name``, or None; a plain read, safe from a worker thread."""
        proc = self._procs.get(name)
        return None if proc is None or proc.identity is None else proc.identity.pid

    def pids(self) -> dict[str, int | None]:
        return {n: (p.identity.pid if p.identity else None) for n, p in self._procs.items()}

    def busy(self, name: str) -> anyio.Lock:
        """Held while a component's process work runs, so two never interleave."""
        return self._proc(name).busy

    def forget_own_exits(self, name: str) -> None:
        """What happens to the current process next is our doing, not a failure."""
        self._proc(name).generation += 1

    async def adopt(self, name: str) -> bool:
        """Take over a process a previous daemon left, if its pidfile proves it is ours."""
        adopted = await self.control.adopt(self.specs[name])
        if adopted.identity is None:
            if adopted.detail and self.specs[name].pidfile.exists():
                log.warning("pidfile_not_ours component=%s detail=%s", name, adopted.detail)
            return False
        self._proc(name).identity = adopted.identity
        log.info("process_adopted component=%s pid=%d", name, adopted.identity.pid)
        self._watch(name, adopted.identity)
        return True

    async def stop(self, name: str, reason: str) -> None:
        proc = self._proc(name)
        spec = self.specs[name]
        identity = proc.identity
        if identity is None:
            identity = (await self.control.adopt(spec)).identity
        if identity is None:
            return
        proc.generation += 1
        result = await self.control.stop(identity, spec)
        proc.identity = None
        log.info(
            "process_stopped component=%s pid=%d outcome=%s elapsed=%.3fs reason=%s",
            name,
            identity.pid,
            result.outcome,
            result.elapsed_s,
            reason,
        )
        self._journal(
            "process_stopped",
            component=name,
            reason=reason,
            data={"pid": identity.pid, "outcome": str(result.outcome)},
        )

    async def start(
        self,
        name: str,
        *,
        stale_files: tuple[Path, ...] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> tuple[bool, str]:
        """Clean stale locks and pidfile (and ``stale_files``), then spawn.

        ``extra_env``: variables added for this spawn only (a debug restart's); their
        values are never logged, only their names.

        The spawn is asked for (``may_spawn``) right before it is made, after every
        wait: a failsafe that began meanwhile withholds it.

        Returns:
            ``(True, "")``, ``(False, "spawn_failed")``, or ``(False, "failsafe_active")``
            when withheld; never raises for a failed spawn.
        """
        spec = self.specs[name]
        await self.control.clean_stale(spec)
        for path in stale_files:
            path.unlink(missing_ok=True)
        if not self._may_spawn():
            log.warning("spawn_withheld component=%s reason=%s", name, R.FAILSAFE_ACTIVE)
            return False, R.FAILSAFE_ACTIVE
        if extra_env:
            spec = replace(spec, env={**spec.env, **extra_env})
            log.info("debug_restart component=%s env=%s", name, ",".join(sorted(extra_env)))
        try:
            identity = await self.control.start(spec)
        except SpawnError as exc:
            log.error("spawn_failed component=%s reason=%s detail=%s", name, exc.reason, exc.detail)
            self._journal("spawn_failed", component=name, reason=exc.reason)
            return False, "spawn_failed"
        self._proc(name).identity = identity
        log.info("process_started component=%s pid=%d", name, identity.pid)
        self._journal("process_started", component=name, data={"pid": identity.pid})
        self._watch(name, identity)
        return True, ""

    def _watch(self, name: str, identity: ProcessIdentity) -> None:
        if self._watch_exits:
            self._task_group.start_soon(
                self._watch_exit, name, identity, self._proc(name).generation
            )

    async def _watch_exit(self, name: str, identity: ProcessIdentity, generation: int) -> None:
        code = await self.control.wait_exit(identity)
        proc = self._proc(name)
        if proc.generation != generation or proc.identity != identity or self.stopping:
            return  # we stopped or replaced it ourselves
        proc.identity = None
        log.warning("process_exited component=%s pid=%d code=%s", name, identity.pid, code)
        await self._observe(ProcessExited(name, "process_exited", code))

    async def rotate_logs(self) -> None:
        """Rotate every running service's log that grew past its size (copy, then truncate)."""
        for name, spec in list(self.specs.items()):
            if self._proc(name).identity is None:
                continue
            try:
                if await self.control.rotate_logs(spec):
                    log.info("log_rotated component=%s path=%s", name, spec.log_file)
            except OSError as exc:
                log.error("log_rotate_failed component=%s error=%s", name, exc)

    async def stop_all(self, waves: list[list[str]]) -> None:
        """Stop the running services wave after wave; those of one wave together."""
        for wave in waves:
            async with anyio.create_task_group() as tg:
                for name in wave:
                    if self._proc(name).identity is not None:
                        tg.start_soon(self.stop, name, "daemon_shutdown")

    def running(self, name: str) -> bool:
        return self._proc(name).identity is not None

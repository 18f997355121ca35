"""The daemon's lifetime: open, build, start every task in one task group, interpret, stop.

One interpreter (:mod:`autoheal.daemon.interpreter`) for both modes:

* ``autoheal run`` (:meth:`Daemon.run`): take the runtime directory's lock, open
  the journal and the notifier, restore the state, build the parts
  (:mod:`autoheal.daemon.parts`), then in one task group: the signals, the kill
  switch's first read, the services adopted or started, the probes, the beat, the
  folder watch, the config watch, the command queue, the fault injector, the
  webhooks, Alertmanager, the fleet agent, the status server, the watchdog. The
  consumer runs until SIGTERM; then the services are stopped and the last state and
  health document written.
* a command with no daemon running (:meth:`Daemon.run_command`, the CLI's direct
  mode, under the lock its caller took): the same parts with no tasks of their own;
  the command is applied and its process work awaited, then the files written.

Every sleep, timeout and deadline is on the one clock (:mod:`autoheal.daemon.clock`),
so the whole daemon runs on virtual time in tests.
"""

from __future__ import annotations

import functools
import gc
import logging
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus

from autoheal.config import Config
from autoheal.core.bot_api import bot_mode
from autoheal.core.observations import FleetDetached, SpawnFinished
from autoheal.core.queries import starts_at_boot
from autoheal.core.resume import CLEARED, ENTERED, JournaledNotice, failsafe_to_resume
from autoheal.core.state import RuntimeState, initial_state
from autoheal.daemon import files, wiring
from autoheal.daemon.beat import (
    Beat,
    Readiness,
    kill_switch_beat,
    rotate_logs,
    systemd_status,
)
from autoheal.daemon.clock import Clock, LoopClock
from autoheal.daemon.commands import PendingCommand
from autoheal.daemon.injector import InjectorFactory
from autoheal.daemon.interpreter import Interpreter, Item
from autoheal.daemon.parts import Parts, build, make_notifier
from autoheal.daemon.reload import Reloader
from autoheal.daemon.statusweb import StatusDoor, serve
from autoheal.daemon.systemd import SystemdNotifier, watchdog_loop
from autoheal.daemon.watch import DirectoryWatch
from autoheal.procs import ProcessControl, ProcessControlLike
from autoheal.store.flags import FLAGS_FILENAME, RISK_LATCH_FILENAME
from autoheal.store.journal import JOURNAL_FILENAME, Journal, JournalError
from autoheal.store.lock import LockHeldError, RuntimeLock
from autoheal.terminal import clean

__all__ = ["Daemon", "run_daemon"]

log = logging.getLogger("autoheal")

#: The journal's files: a change means a command may wait in the queue.
JOURNAL_NAMES = (JOURNAL_FILENAME, f"{JOURNAL_FILENAME}-wal")


@dataclass(frozen=True)
class Daemon:
    """Runs one runtime directory. Construct, then ``await daemon.run()``.

    Attributes:
        config: the validated config.
        chaos: the fault injector's factory (``run --chaos``; the daemon never imports
            :mod:`autoheal.chaos`), else None: every ``chaos_*`` command is refused.
        procs: the process control (:class:`~autoheal.testing.FakeProcessControl` in
            tests); the real one by default.
        clock: the one clock; the event loop's by default.
        freeze_gc: freeze what start-up built out of the collector's way (only
            ``autoheal run``, which owns its process, asks).
    """

    config: Config
    chaos: InjectorFactory | None = None
    procs: ProcessControlLike = field(default_factory=ProcessControl)
    clock: Clock = field(default_factory=LoopClock)
    freeze_gc: bool = False

    def _restore(self) -> RuntimeState:
        """Make the runtime folders, remove stale temp files, and load the saved state."""
        paths = self.config.paths
        paths.runtime_dir.mkdir(parents=True, exist_ok=True)
        (paths.runtime_dir / "logs").mkdir(exist_ok=True)
        for folder in {paths.runtime_dir, paths.stop_file.parent, paths.runtime_dir / "runtime"}:
            files.remove_stale_temp_files(folder, now_wall=self.clock.wall())
        policy = wiring.build_policy(self.config)
        to_wall = self.clock.wall() - self.clock.now()
        restored = files.load_state(paths.runtime_dir, policy, to_wall=to_wall)
        return initial_state(policy) if restored is None else restored

    # ------------------------------------------------------------------ autoheal run

    async def run(
        self, *, task_status: TaskStatus[Interpreter] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled, or SIGTERM/SIGINT; ``task_status`` gets the interpreter."""
        runtime_dir = self.config.paths.runtime_dir
        runtime_dir.mkdir(parents=True, exist_ok=True)
        lock = RuntimeLock(runtime_dir)
        lock.acquire()
        systemd = SystemdNotifier.from_env(unset_environment=True)
        try:
            with Journal.open(runtime_dir, group=self.config.daemon.journal_group) as journal:
                notifier = make_notifier(self.config, journal, self.clock, webhooks=True)
                state = self._restore()
                send, receive = anyio.create_memory_object_stream[Item](max_buffer_size=10_000)
                shutdown = anyio.CancelScope()
                # The receiver stays open until the services are stopped: a second SIGTERM
                # during shutdown is then queued and ignored, where the default action would
                # kill the daemon half-way and orphan the services it was stopping.
                with anyio.open_signal_receiver(
                    signal.SIGTERM, signal.SIGINT, signal.SIGHUP
                ) as signals:
                    parts: Parts | None = None
                    try:
                        with shutdown:
                            async with send, receive, anyio.create_task_group() as tg:
                                parts = build(
                                    self.config,
                                    state,
                                    clock=self.clock,
                                    procs=self.procs,
                                    journal=journal,
                                    notifier=notifier,
                                    task_group=tg,
                                    send=send.send,
                                    chaos=self.chaos,
                                )
                                reloader = self._reloader(tg, parts)
                                tg.start_soon(self._signals, signals, shutdown, reloader)
                                await self._start(tg, parts, systemd, send.send, reloader)
                                task_status.started(parts.interpreter)
                                await parts.interpreter.consume(receive)
                    finally:
                        if parts is not None:
                            await self._stop(parts, systemd)
        finally:
            lock.release()
            log.info("stopped")

    def _reloader(self, tg: TaskGroup, parts: Parts) -> Reloader:
        def restart_probes(config: Config, known: set[str]) -> None:
            parts.probing.restart(tg, config, known)

        return Reloader(
            parts.settings,
            interpreter=parts.interpreter,
            persist=parts.persist,
            restart_probes=restart_probes,
            injector=parts.injector,
            journal_event=parts.effects.journal_event,
            clock=self.clock,
        )

    async def _signals(
        self,
        signals: AsyncIterator[signal.Signals],
        shutdown: anyio.CancelScope,
        reloader: Reloader,
    ) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                log.info("sighup: reloading %s", self.config.path)
                await reloader.reload()
                continue
            log.info("shutdown signal=%s", signal.Signals(signum).name)
            shutdown.cancel()
            return

    async def _start(
        self,
        tg: TaskGroup,
        parts: Parts,
        systemd: SystemdNotifier,
        send: Callable[[Item], Awaitable[None]],
        reloader: Reloader,
    ) -> None:
        """Everything between taking the lock and serving: order matters here."""
        config, interpreter, persist = parts.settings.config, parts.interpreter, parts.persist
        # A failsafe the state lost but the journal holds is resumed (core.resume).
        resumed = failsafe_to_resume(parts.runtime.state, _last_failsafe_notice(parts.journal))
        if resumed is not None:
            interpreter.apply(resumed)
        # A failsafe on disk survives the daemon; nothing on disk loosens the resumed state.
        interpreter.reconcile_switch(startup=True)
        await self._adopt_or_start(parts)
        parts.probing.start(tg, config)
        watch = self._watch(parts)
        beat = Beat(
            clock=self.clock,
            interval=config.daemon.heartbeat_interval,
            send=send,
            runtime_dir=config.paths.runtime_dir,
            facts=parts.facts,
            each=(
                kill_switch_beat(watch, parts.killswitch, interpreter),
                rotate_logs(tg, parts.services.rotate_logs),
                Readiness(
                    parts.runtime,
                    all_reported=parts.probing.all_reported,
                    running=parts.services.running,
                    facts=parts.facts,
                    persist=persist,
                    notifier=systemd,
                ),
                persist.on_beat,
                systemd_status(systemd, parts.runtime),
            ),
        )
        tg.start_soon(beat.run)
        tg.start_soon(watch.run)
        tg.start_soon(reloader.watch, config.daemon.heartbeat_interval)
        tg.start_soon(parts.commands.poll)
        if parts.injector is not None:
            parts.injector.start(tg)
        if parts.notifier.sender is not None:
            tg.start_soon(parts.notifier.sender.run)
        if parts.bot_api is not None:
            parts.bot_api.observe(bot_mode(parts.runtime.state))
            tg.start_soon(parts.bot_api.run)
        self._start_alertmanager(tg, config, parts)
        self._start_fleet(tg, config, parts, send)
        if parts.metrics is not None:
            door = StatusDoor(
                parts.journal, poke=parts.commands.poke, config=parts.settings.current
            )
            await serve(tg, config, persist=persist, metrics=parts.metrics, door=door)
        interval = systemd.watchdog_interval()
        if interval:
            tg.start_soon(
                functools.partial(
                    watchdog_loop,
                    systemd,
                    interpreter.loop_healthy,
                    interval=interval / 2,
                    sleep_fn=self.clock.sleep,
                )
            )
        persist.write_all()
        beat.first()
        # What start-up built (config, specs, probe runners, tasks) lives as long as the
        # daemon: out of the collector's way, a full collection at 500 services stops
        # the loop for tens of milliseconds less (benchmarks/scale.py, loop lag).
        if self.freeze_gc:
            gc.collect()
            gc.freeze()
        log.info(
            "started pid=%d runtime_dir=%s chaos=%s %s",
            parts.facts.pid,
            config.paths.runtime_dir,
            parts.facts.chaos,
            parts.runtime.summary(),
        )

    def _watch(self, parts: Parts) -> DirectoryWatch:
        """One watch: the kill-switch files and the journal (a command was submitted)."""
        paths = parts.settings.config.paths
        watch = DirectoryWatch(
            folders=[paths.stop_file.parent],
            files=[paths.runtime_dir / n for n in (FLAGS_FILENAME, *JOURNAL_NAMES)],
            clock=self.clock,
            on_watching=parts.commands.watching,
        )
        watch.subscribe(JOURNAL_NAMES, parts.commands.poke)
        switch_names = (paths.stop_file.name, FLAGS_FILENAME, RISK_LATCH_FILENAME)
        watch.subscribe(switch_names, parts.interpreter.reconcile_switch)
        return watch

    async def _adopt_or_start(self, parts: Parts) -> None:
        """At start: adopt what a previous daemon left running, start what should run.

        The state is saved once at the end, not once per service.
        """
        config, interpreter = parts.settings.config, parts.interpreter
        with interpreter.batch():
            for name in wiring.start_order(config):
                if await parts.services.adopt(name):
                    interpreter.apply(SpawnFinished(name, True))
                    continue
                autostart = config.services[name].autostart
                if not starts_at_boot(parts.runtime.state.components[name], autostart=autostart):
                    continue
                ok, reason = await parts.processes.spawn_new(name)
                interpreter.apply(SpawnFinished(name, ok, reason))
        parts.persist.flush()

    def _start_alertmanager(self, tg: TaskGroup, config: Config, parts: Parts) -> None:
        """Alertmanagers get state (the health document's problems), not events."""
        specs = [w for w in config.webhooks if w.format == "alertmanager"]
        if not specs:
            return
        from autoheal.daemon.alertmanager import AlertFiles, AlertmanagerPusher
        from autoheal.daemon.notify import WebhookSpec

        pusher = AlertmanagerPusher(
            [WebhookSpec(w.name, w.url, w.format, w.secret_env, w.timeout) for w in specs],
            parts.persist.health_doc,
            instance=socket.gethostname(),
            clock=self.clock,
            files=AlertFiles(config.paths.runtime_dir),
        )
        tg.start_soon(pusher.run)

    def _start_fleet(
        self,
        tg: TaskGroup,
        config: Config,
        parts: Parts,
        send: Callable[[Item], Awaitable[None]],
    ) -> None:
        if config.fleet is None:
            if parts.runtime.state.fleet.lost:
                # [fleet] removed: nothing will ever read the switch again.
                parts.interpreter.apply(FleetDetached())
            return
        from autoheal.daemon.fleet import FleetAgent  # Redis is imported only with [fleet]
        from autoheal.daemon.fleet_scoped import FleetScopedApplier

        agent = FleetAgent(
            config.fleet,
            observe=send,
            execute=parts.effects.execute,
            state=parts.runtime.current,
            health=parts.persist.health_doc,
            journal_event=parts.effects.journal_event,
            beat=config.daemon.heartbeat_interval,
            clock=self.clock,
            scoped=FleetScopedApplier(
                config.paths.runtime_dir,
                rewrote_flags=parts.killswitch.rewrote_flags,
                journal_event=parts.effects.journal_event,
                wall=self.clock.wall,
            ).apply,
        )
        tg.start_soon(agent.run)

    async def _stop(self, parts: Parts, systemd: SystemdNotifier) -> None:
        config = parts.settings.config
        parts.facts.stopping = True
        parts.services.stopping = True
        systemd.stopping()
        with anyio.CancelScope(shield=True):
            if parts.injector is not None:
                await parts.injector.heal_all()
            if config.daemon.stop_services_on_exit:
                await parts.services.stop_all(wiring.stop_waves(config))
            parts.persist.write_all()

    # ------------------------------------------------------------------ a direct command

    async def run_command(self, pending: PendingCommand, journal: Journal) -> None:
        """Direct mode: apply one command and wait for its process work (no daemon loop).

        The caller holds the runtime's lock and owns ``journal``. No exit watchers or
        probes run: the next daemon adopts the new process by its pidfile.
        """
        notifier = make_notifier(self.config, journal, self.clock, webhooks=False)
        state = self._restore()
        send, receive = anyio.create_memory_object_stream[Item](max_buffer_size=100)
        async with send, receive, anyio.create_task_group() as tg:
            parts = build(
                self.config,
                state,
                clock=self.clock,
                procs=self.procs,
                journal=journal,
                notifier=notifier,
                task_group=tg,
                send=send.send,
                watch_exits=False,
            )
            parts.interpreter.reconcile_switch(startup=True)
            for name in parts.settings.specs:
                await parts.services.adopt(name)
            parts.interpreter.take(pending)
            await parts.interpreter.settle(receive)
        parts.persist.write_all()


def run_daemon(config: Config, *, chaos: InjectorFactory | None = None) -> int:
    """Entry for ``autoheal run``: returns the exit code; ``chaos`` is the fault injector."""
    try:
        anyio.run(Daemon(config, chaos=chaos, freeze_gc=True).run)
    except LockHeldError as exc:
        print(clean(f"autoheal: {exc}"), flush=True, file=sys.stderr)
        return 1
    except ExceptionGroup as group:
        # A task group failing on the disk (full, read-only) says so in one line.
        oserrors, rest = group.split(OSError)
        if rest is not None or oserrors is None:
            raise
        print(clean(f"autoheal: run: {oserrors.exceptions[0]}"), flush=True, file=sys.stderr)
        return 1
    return 0


def _last_failsafe_notice(journal: Journal) -> JournaledNotice | None:
    """The journal's last word on a failsafe (unreadable: none, and the state decides)."""
    try:
        event = journal.last_notice((ENTERED, CLEARED))
    except (sqlite3.Error, JournalError) as exc:
        log.error("journal_read_failed what=last_failsafe_notice error=%s", exc)
        return None
    if event is None or not isinstance(event.data, dict):
        return None
    return JournaledNotice(
        str(event.data.get("kind", "")), event.component or "", str(event.data.get("message", ""))
    )
